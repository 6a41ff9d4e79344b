"""What resolving a workspace's CustomGPT key costs each question, and what the keys the
process learns cost every log line.

Every question (and command, click, watch) first asks `CustomGPTKeys.account_for(team)`: one
store read of the workspace's sealed key (made for shared-key workspaces too: a key of their
own would win), then a client reused while the record is unchanged (a Fernet decryption only
the first time, or after the key changed). Each key the process learned is also redacted from
every log line and Slack text. Measured over the real Redis:

    python -m bench.key_resolution [--teams 1 100 1000] [--rounds 20]

Columns: workspaces with their own key, resolutions timed, median and 99th percentile
microseconds per resolution for a workspace with its own key and for one served by the shared
key, the median of a first resolution (read and decrypted: a new process, a key just changed),
and the microseconds to redact one 200-character log line once all those keys are known.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
import uuid

import aiohttp
from cryptography.fernet import Fernet

from bot import log_setup
from bot.clock import SystemClock
from bot.config import Settings
from bot.customgpt_keys import CustomGPTKeys
from bot.store import RedisStore

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e6, p99 * 1e6


async def _timed(keys: CustomGPTKeys, teams: list[str], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        for team in teams:
            started = time.perf_counter()
            await keys.account_for(team)
            samples.append(time.perf_counter() - started)
    return samples


def _redaction_cost(lines: int = 2000) -> float:
    """Microseconds to redact one ordinary log line (no secret in it, the usual case)."""
    line = "answered in C0123456789: 1234 characters, 3 messages, 12 edits " * 3
    started = time.perf_counter()
    for _ in range(lines):
        log_setup.redact_text(line)
    return (time.perf_counter() - started) / lines * 1e6


async def measure(team_count: int, rounds: int) -> tuple[float, ...]:
    run = uuid.uuid4().hex[:8].upper()
    own = [f"TBENCH{run}O{i}" for i in range(team_count)]
    shared_only = [f"TBENCH{run}S{i}" for i in range(team_count)]
    settings = Settings(
        slack_bot_token="xoxb-bench",
        slack_signing_secret="bench",
        customgpt_api_key="shared-bench-key",
        customgpt_key_encryption_keys=(Fernet.generate_key().decode(),),
    )
    store = RedisStore.from_url(REDIS_URL)
    async with aiohttp.ClientSession() as session:
        writer = CustomGPTKeys(settings, store, session, SystemClock())
        for index, team in enumerate(own):
            await writer.connect(team, f"bench-key-{index:06d}", "UBENCH")
        fresh = CustomGPTKeys(settings, store, session, SystemClock())
        first = await _timed(fresh, own, 1)
        own_samples = await _timed(fresh, own, rounds)
        shared_samples = await _timed(fresh, shared_only, rounds)
        for team in own:
            await store.delete_prefix(f"cgpt:{team}:")
    await store.close()
    return (
        len(own_samples),
        *_percentiles(own_samples),
        *_percentiles(shared_samples),
        _percentiles(first)[0],
        _redaction_cost(),
    )


async def main(team_counts: list[int], rounds: int) -> None:
    logging.getLogger("bot").setLevel(logging.ERROR)  # one "connected" line per key otherwise
    print(
        f"{'teams':>6} {'resolutions':>11} {'own med µs':>10} {'own p99 µs':>10} "
        f"{'shared med':>10} {'shared p99':>10} {'first med':>9} {'redact µs':>9}"
    )
    for count in team_counts:
        n, own_med, own_p99, shared_med, shared_p99, first_med, redact = await measure(
            count, rounds
        )
        print(
            f"{count:>6} {int(n):>11} {own_med:>10.0f} {own_p99:>10.0f} "
            f"{shared_med:>10.0f} {shared_p99:>10.0f} {first_med:>9.0f} {redact:>9.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teams", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.teams, arguments.rounds))
