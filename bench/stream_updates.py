"""How many Slack calls an answer costs, and how fast its words appear.

Runs the real bot (HTTP server, Bolt, streamer, Redis) against the local fake Slack and fake
CustomGPT, sends signed mentions, and prints one row per scenario:

    python -m bench.stream_updates [--chunks 30] [--chunk-delay 0.1] [--interval 1.0]
                                   [--concurrent 1 10 50] [--budget 50] [--slack-429s 0]

Columns: answers, chunks each, chat.update calls (total and per answer), edits refused by
Slack (429), time to the placeholder, time to the first visible words and to the final text
(medians, from the moment the mention was sent), and the peak chat.update calls seen in any
60-second window across the workspace.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass

import redis.asyncio as redis
from aiohttp import ClientSession, web

from bot.app import build_app
from bot.config import Settings
from bot.runtime import Runtime
from bot.server import web_app
from bot.slack_format import TYPING_MARKER
from tests.driver import RunningBot, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Row:
    answers: int
    chunks: int
    updates: int
    refused: int
    placeholder_ms: float
    first_words_ms: float
    final_ms: float
    peak_per_minute: int


class Timeline:
    """Wall-clock moments at which the fake Slack saw each kind of call, per thread."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self.seen: dict[int, float] = {}

    def watch(self) -> None:
        original = self.slack._notify

        async def stamped() -> None:
            now = time.perf_counter()
            for call in self.slack.calls:
                self.seen.setdefault(call.index, now)
            await original()

        self.slack._notify = stamped  # type: ignore[method-assign]


async def scenario(
    answers: int,
    chunks: int,
    chunk_delay: float,
    interval: float,
    budget: int,
    slack_429s: int = 0,
) -> Row:
    team = f"TBENCH{uuid.uuid4().hex[:6].upper()}"
    async with FakeSlack(team_id=team) as slack, FakeCustomGPT() as customgpt:
        customgpt.add_project(1, "Bench Docs")
        slack.rate_limit("chat.update", times=slack_429s, retry_after=1)
        timeline = Timeline(slack)
        timeline.watch()
        settings = Settings.from_env(
            {
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_SIGNING_SECRET": "bench-secret",
                "SLACK_API_URL": slack.api_url,
                "CUSTOMGPT_API_KEY": "test-key",
                "CUSTOMGPT_API_URL": customgpt.api_url,
                "CUSTOMGPT_PROJECT_ID": "1",
                "REDIS_URL": REDIS_URL,
                "SLACK_UPDATE_INTERVAL": str(interval),
                "SLACK_UPDATE_BUDGET": str(budget),
            }
        )
        runtime = await Runtime.open(settings)
        runner = web.AppRunner(web_app(build_app(runtime), runtime), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        bot = RunningBot(runtime, runner, ClientSession(), team)
        try:
            words = [f"word{n} " for n in range(chunks)]
            for _ in range(answers):
                customgpt.queue_answer(words, chunk_delay=chunk_delay)
            sent: dict[str, float] = {}
            for index in range(answers):
                ts = next_ts()
                sent[ts] = time.perf_counter()
                await bot.mention("benchmark question", channel=f"C{index}", ts=ts)
            await bot.idle()
            return measure(slack, timeline, sent, chunks)
        finally:
            await bot.close()
            client = redis.Redis.from_url(REDIS_URL)
            keys = [k async for k in client.scan_iter(match=f"cgpt:{team}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


def measure(slack: FakeSlack, timeline: Timeline, sent: dict[str, float], chunks: int) -> Row:
    placeholder, first_words, final = [], [], []
    for call in slack.calls:
        at = timeline.seen.get(call.index)
        if at is None or not call.ok:
            continue
        if call.method == "chat.postMessage" and call.params.get("thread_ts") in sent:
            placeholder.append(at - sent[call.params["thread_ts"]])
    by_ts = {m.ts: m for m in slack.messages}
    for call in slack.calls_to("chat.update"):
        at = timeline.seen.get(call.index)
        message = by_ts.get(str(call.params.get("ts")))
        if at is None or not call.ok or message is None or message.thread_ts not in sent:
            continue
        started = sent[message.thread_ts]
        text = str(call.params.get("blocks") or call.params.get("text"))
        if "word0" in text and not any(t == message.thread_ts for t, _ in first_words):
            first_words.append((message.thread_ts, at - started))
        if TYPING_MARKER not in text and "word" in text:
            final.append(at - started)
    updates = slack.calls_to("chat.update")
    stamps = sorted(timeline.seen[c.index] for c in updates if c.index in timeline.seen)
    peak = max((sum(1 for s in stamps if start <= s < start + 60) for start in stamps), default=0)
    return Row(
        answers=len(sent),
        chunks=chunks,
        updates=len(updates),
        refused=sum(1 for c in updates if not c.ok),
        placeholder_ms=1000 * statistics.median(placeholder),
        first_words_ms=1000 * statistics.median(t for _, t in first_words),
        final_ms=1000 * statistics.median(final),
        peak_per_minute=peak,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--chunk-delay", type=float, default=0.1)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument(
        "--slack-429s", type=int, default=0, help="chat.update calls Slack refuses (Retry-After 1)"
    )
    args = parser.parse_args()
    print(
        f"chunk delay {args.chunk_delay}s, SLACK_UPDATE_INTERVAL {args.interval}s, "
        f"SLACK_UPDATE_BUDGET {args.budget}/min, Slack 429s {args.slack_429s}"
    )
    print(
        f"{'answers':>7} {'chunks':>6} {'updates':>7} {'per ans':>7} {'429s':>5} "
        f"{'placeholder':>11} {'first words':>11} {'final':>9} {'peak/min':>8}"
    )
    for answers in args.concurrent:
        row = await scenario(
            answers, args.chunks, args.chunk_delay, args.interval, args.budget, args.slack_429s
        )
        print(
            f"{row.answers:>7} {row.chunks:>6} {row.updates:>7} {row.updates / row.answers:>7.1f} "
            f"{row.refused:>5} {row.placeholder_ms:>9.0f}ms {row.first_words_ms:>9.0f}ms "
            f"{row.final_ms:>7.0f}ms {row.peak_per_minute:>8}"
        )


if __name__ == "__main__":
    asyncio.run(main())
