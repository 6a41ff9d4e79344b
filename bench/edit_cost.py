"""What one partial edit costs the bot's CPU, piece by piece.

A streaming answer sends a `chat.update` about once a second, each after a token taken from
the workspace's shared bucket in Redis. This runs that path in-process against the fake Slack
and the real Redis, and prints the CPU time per call (the fake Slack serves from a process of
its own, so only the bot's side is counted) for:

  take     the Redis token take alone (`RedisBuckets.take`)
  api      slack_sdk's `AsyncWebClient.api_call("chat.update")` alone
  send     the scheduler's sender (`api_call`, the answer read, the metrics counted)
  edit     a whole partial edit as the streamer offers it: the scheduler's lane, the token
           take, the render callback, the send

`--parallel N` runs N messages' edits at once (as N answers do), so wake-ups are shared.

    python -m bench.edit_cost [--calls 600] [--parallel 1 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis

from bench.harness import REDIS_URL, UNLIMITED_BUDGETS
from bot import event_loop, log_setup
from bot.clock import SystemClock
from bot.config import Settings
from bot.metrics import Metrics
from bot.rate_buckets import Bucket, Rate, RedisBuckets
from bot.runtime import slack_client, slack_session
from bot.slack_calls import Content, SlackSchedulers, limits_for, sender
from tests.fakes.slack import FakeSlack

TEXT = ("A streamed answer of a few paragraphs, " * 75)[:3000]
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": TEXT[:2900]}}]
UNLIMITED = {
    "SLACK_BOT_TOKEN": "xoxb-bench",
    "SLACK_SIGNING_SECRET": "bench",
    "CUSTOMGPT_API_KEY": "bench",
    "CUSTOMGPT_PROJECT_ID": "1",
    **UNLIMITED_BUDGETS,
}


class SlackProcess:
    """The fake Slack in a process of its own, so none of its CPU is counted as the bot's."""

    def __enter__(self) -> str:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.edit_cost", "--serve-slack"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        return self._process.stdout.readline().strip()

    def __exit__(self, *_: object) -> None:
        self._process.terminate()
        self._process.wait()


async def serve_slack() -> None:
    async with FakeSlack() as slack:
        print(slack.api_url, flush=True)
        await asyncio.Event().wait()


async def per_call(calls: int, parallel: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Microseconds of this thread's CPU per call, `parallel` callers at once."""

    async def caller(index: int) -> None:
        for _ in range(calls // parallel):
            await one(index)

    await asyncio.gather(*(caller(i) for i in range(parallel)))  # warm-up
    start = time.thread_time()
    await asyncio.gather(*(caller(i) for i in range(parallel)))
    return (time.thread_time() - start) / (calls // parallel * parallel) * 1e6


async def row(api_url: str, calls: int, parallel: int) -> dict[str, float]:
    os.environ.update(UNLIMITED, SLACK_API_URL=api_url)
    settings = Settings.from_env()
    session = slack_session()
    client = slack_client(session, settings)
    store = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    buckets = RedisBuckets(store)
    metrics = Metrics()
    team = f"TBENCH{uuid.uuid4().hex[:8].upper()}"
    schedulers = SlackSchedulers(client, buckets, limits_for(settings), SystemClock(), metrics)
    calls_for = schedulers.for_team(team)
    channel = "CBENCH"
    ts = [await calls_for.post(channel, None, Content(f"message {i}")) for i in range(parallel)]
    bucket = (Bucket("update", Rate(1e9, 1_000_000_000)),)
    send = sender(client, metrics)

    def params(i: int) -> dict[str, Any]:
        return {"channel": channel, "ts": ts[i], "text": TEXT, "blocks": BLOCKS}

    async def take(_: int) -> float:
        return await buckets.take(team, bucket, time.time(), partial=True)

    async def api(i: int) -> Any:
        return await client.api_call("chat.update", json=params(i))

    async def send_one(i: int) -> Any:
        return await send("chat.update", params(i))

    async def edit(i: int) -> Any:
        content = Content(TEXT, BLOCKS)
        ticket = calls_for.offer_edit(channel, ts[i], lambda: content, time.monotonic())
        return await ticket.settled

    try:
        return {
            "take": await per_call(calls, parallel, take),
            "api": await per_call(calls, parallel, api),
            "send": await per_call(calls, parallel, send_one),
            "edit": await per_call(calls, parallel, edit),
        }
    finally:
        await schedulers.close()
        await session.close()
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--parallel", type=int, nargs="*", default=[1, 20])
    parser.add_argument("--repeat", type=int, default=3, help="rows per size; the best is kept")
    parser.add_argument("--serve-slack", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_slack:
        asyncio.run(serve_slack())
        return
    log_setup.configure("INFO", [])  # as the bot runs by default (LOG_LEVEL=INFO)
    print(f"$ python -m bench.edit_cost --calls {args.calls} --parallel", *args.parallel)
    print("µs of the bot's CPU per call (best of", args.repeat, "runs)")
    print(f"{'parallel':>8} | {'take':>6} {'api':>6} {'send':>6} {'edit':>6}")
    with SlackProcess() as api_url:
        for parallel in args.parallel:
            runs = [event_loop.run(row(api_url, args.calls, parallel)) for _ in range(args.repeat)]
            best = {key: min(run[key] for run in runs) for key in runs[0]}
            print(
                f"{parallel:>8} | {best['take']:>6.0f} {best['api']:>6.0f} "
                f"{best['send']:>6.0f} {best['edit']:>6.0f}"
            )


if __name__ == "__main__":
    main()
