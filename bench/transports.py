"""The three transports (`SLACK_STREAMING=update|native|auto`) under one burst, side by side.

The bot runs as its own process (`python -m bot`), configured only through its environment,
against the fake Slack with Slack's limits (`SlackLimits.slack()`: chat.update Tier 3,
chat.startStream and chat.stopStream Tier 2 each, chat.appendStream Tier 4, posts per channel
and per workspace; over a limit, HTTP 429 with Retry-After) and the fake CustomGPT, streaming
each answer over real SSE. N questions are sent at once: half in DM threads (each asker in a
DM of their own, where `auto` may stream natively), half as mentions spread over channels
(threads others watch, where `auto` keeps `chat.update`). Every transport answers the same
burst, each in a fresh fake workspace.

    python -m bench.transports [--n 40 100] [--transports update native auto]
                               [--channels 10] [--chunks 30] [--chunk-delay 0.2]
                               [--row-timeout 600] [--idle-stop 30] [--bot-env KEY=VALUE ...]

Columns (times in seconds, from the moment a question was sent):
  done       answers complete: every word in order across the thread's replies, no typing
             marker left, feedback buttons on the last reply
  native     answers that started a native stream (accepted chat.startStream calls)
  429s       calls Slack refused for their rate (by method, after the total)
  final      p50 / p95 time until the answer stood complete in Slack, over all questions,
             then over DM-thread and channel-thread questions apart
  calls/ans  Slack Web API calls received (refused ones included, auth.test left out) per
             question
After each N, `auto` is compared with the better of `update` and `native` on both p50 and p95
of time to final text (target: within 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.burst import Answers, Question, answer_words, new_team, wait_until_done
from bench.harness import (
    CGPT_KEY,
    PROJECT_ID,
    REDIS_URL,
    SECRET,
    BotProcess,
    clean_env,
    delete_team_keys,
    free_port,
    parse_env,
    percentile,
    redis_reachable,
    run_main,
    shown_settings,
    stop_on_signals,
)
from tests.driver import SlackSender, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack, SlackLimits

TRANSPORTS = ("update", "native", "auto")
TARGET = 1.10  # `auto` within 10% of the better transport


@dataclass(frozen=True)
class Options:
    chunks: int
    chunk_delay: float
    channels: int
    row_timeout: float
    idle_stop: float
    bot_env: dict[str, str]


@dataclass(frozen=True)
class Burst:
    """Which questions go where: even indexes in DM threads, odd ones in channels."""

    n: int
    channels: int

    @staticmethod
    def in_dm(index: int) -> bool:
        return index % 2 == 0

    def channel(self, index: int) -> str:
        # Each DM asker has a DM channel of their own (and so a post budget of their own).
        return f"DB{index}" if self.in_dm(index) else f"CB{(index // 2) % self.channels}"

    def questions(self) -> list[Question]:
        return [Question(i, self.channel(i), next_ts()) for i in range(self.n)]


@dataclass
class Row:
    transport: str
    n: int
    done: int = 0
    native: int = 0
    calls: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    final: list[float] = field(default_factory=list)
    final_dm: list[float] = field(default_factory=list)
    final_channel: list[float] = field(default_factory=list)
    note: str = ""

    def p(self, q: float, values: list[float] | None = None) -> float | None:
        return percentile(self.final if values is None else values, q)


HEADER = (
    f"{'transport':<9} {'N':>4} | {'done':>4} {'native':>6} {'429s':>4} | "
    f"{'final p50':>9} {'p95':>6} | {'DM p50':>6} {'p95':>6} | {'chan p50':>8} {'p95':>6} | "
    f"{'calls/ans':>9} | 429s by method"
)


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(row: Row) -> str:
    refused = " ".join(f"{m}:{k}" for m, k in sorted(row.refused.items())) or "-"
    line = (
        f"{row.transport:<9} {row.n:>4} | {row.done:>4} {row.native:>6} "
        f"{sum(row.refused.values()):>4} | {seconds(row.p(0.5)):>9} {seconds(row.p(0.95)):>6} | "
        f"{seconds(row.p(0.5, row.final_dm)):>6} {seconds(row.p(0.95, row.final_dm)):>6} | "
        f"{seconds(row.p(0.5, row.final_channel)):>8} "
        f"{seconds(row.p(0.95, row.final_channel)):>6} | {row.calls / max(1, row.n):>9.1f} | "
        f"{refused}"
    )
    return f"{line}  ({row.note})" if row.note else line


def verdict(rows: dict[str, Row]) -> str | None:
    """`auto` against the better of the other two, on p50 and p95 of time to final text."""
    auto = rows.get("auto")
    others = [rows[t] for t in ("update", "native") if t in rows]
    if auto is None or not others:
        return None
    parts = []
    for label, q in (("p50", 0.5), ("p95", 0.95)):
        best = min((o for o in others if o.done == o.n), key=lambda o: o.p(q) or 0, default=None)
        mine = auto.p(q)
        if best is None or mine is None or not best.p(q):
            parts.append(f"{label} -")
            continue
        ratio = mine / float(best.p(q) or 1)
        parts.append(f"{label} {ratio:.2f} x {best.transport}")
    complete = "all complete" if auto.done == auto.n else f"{auto.n - auto.done} incomplete"
    zero = "0 x 429" if not auto.refused else f"{sum(auto.refused.values())} x 429"
    return f"auto at N={auto.n}: {complete}, {zero}, " + ", ".join(parts)


def measure(transport: str, burst: Burst, answers: Answers, started: float) -> Row:
    answers.refresh()
    row = Row(transport, burst.n)
    for question in answers.questions:
        if question.index not in answers.complete_at:
            continue
        row.done += 1
        took = answers.complete_at[question.index] - question.sent_at
        row.final.append(took)
        (row.final_dm if burst.in_dm(question.index) else row.final_channel).append(took)
    calls = [c for c in answers.slack.calls if c.at >= started and c.method != "auth.test"]
    row.calls = len(calls)
    row.refused = Counter(c.method for c in calls if c.ratelimited)
    row.native = sum(1 for c in calls if c.method == "chat.startStream" and c.ok)
    return row


async def run_row(transport: str, burst: Burst, options: Options, logs: Path) -> Row:
    team = new_team()
    bot: BotProcess | None = None
    try:
        async with (
            FakeSlack(team_id=team, limits=SlackLimits.slack()) as slack,
            FakeCustomGPT(api_key=CGPT_KEY) as cgpt,
            aiohttp.ClientSession() as http,
        ):
            cgpt.add_project(PROJECT_ID, "Burst Docs")
            for index in range(burst.n):
                cgpt.queue_answer(
                    answer_words(index, options.chunks), chunk_delay=options.chunk_delay
                )
            settings = {
                "SLACK_UPDATE_INTERVAL": "1.0",
                "LOG_LEVEL": "INFO",
                "SLACK_STREAMING": transport,
            }
            env = clean_env(slack, cgpt, settings | options.bot_env) | {"PORT": str(free_port())}
            bot = BotProcess(env, logs / f"{team}-{transport}.log")
            await bot.start(http)
            sender = SlackSender(bot.url, SECRET, team, http)
            questions = burst.questions()
            answers = Answers(slack, cgpt, questions)
            started = slack.clock.now()

            async def ask(question: Question) -> None:
                question.sent_at = slack.clock.now()
                user = f"UB{question.index}"
                if burst.in_dm(question.index):
                    await sender.message(
                        question.prompt,
                        channel=question.channel,
                        channel_type="im",
                        user=user,
                        thread_ts=question.ts,
                    )
                else:
                    await sender.mention(
                        question.prompt, channel=question.channel, user=user, ts=question.ts
                    )

            sent = await asyncio.gather(*(ask(q) for q in questions), return_exceptions=True)
            failures = [s for s in sent if isinstance(s, BaseException)]
            running = bot
            ended = await wait_until_done(
                answers,
                time.monotonic() + options.row_timeout,
                options.idle_stop,
                lambda: running.exited,
            )
            row = measure(transport, burst, answers, started)
            notes = [f"{len(failures)} not delivered: {failures[0]!r}"] if failures else []
            if bot.exited:
                notes.append("the bot process exited")
            elif ended:
                notes.append(ended)
            row.note = "; ".join(notes)
            return row
    finally:
        if bot is not None:
            await bot.stop()
        await delete_team_keys(team)


def print_settings(options: Options, logs: Path) -> None:
    limits = SlackLimits.slack()

    def tier(bucket: Any) -> str:
        return f"{bucket.burst} then {bucket.per_minute:g}/min"

    print("$ python -m bench.transports " + shlex.join(sys.argv[1:]))
    print(
        f"answers: {options.chunks} chunks, {options.chunk_delay}s apart; questions: half in "
        f"DM threads (one DM each), half mentions over {options.channels} channels"
    )
    print(
        f"Slack limits (fake): chat.update {tier(limits.chat_update)}; chat.startStream and "
        f"chat.stopStream {tier(limits.stream_start_stop)} each; chat.appendStream "
        f"{tier(limits.stream_append)}; chat.postMessage {tier(limits.post_per_channel)} per "
        f"channel, {tier(limits.post_per_workspace)} per workspace (per workspace, 429 + "
        "Retry-After beyond)"
    )
    shown = "".join(f" {k}={v}" for k, v in shown_settings(options.bot_env).items())
    print(f"bot settings: defaults, SLACK_UPDATE_INTERVAL=1.0{shown}; bot logs in {logs}")
    print(f"row timeout {options.row_timeout:g}s; Redis {REDIS_URL}")
    print(HEADER, flush=True)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, nargs="+", default=[40, 100])
    parser.add_argument(
        "--transports", nargs="+", default=list(TRANSPORTS), choices=list(TRANSPORTS)
    )
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--chunk-delay", type=float, default=0.2)
    parser.add_argument("--row-timeout", type=float, default=600.0)
    parser.add_argument("--idle-stop", type=float, default=30.0)
    parser.add_argument("--bot-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if not (1 <= min(args.n) <= max(args.n) <= 1000 and args.channels >= 1):
        parser.error("--n 1..1000, --channels 1 or more")
    options = Options(
        chunks=args.chunks,
        chunk_delay=args.chunk_delay,
        channels=args.channels,
        row_timeout=args.row_timeout,
        idle_stop=args.idle_stop,
        bot_env=parse_env(args.bot_env),
    )
    if not await redis_reachable():
        return 2
    logs = Path(tempfile.mkdtemp(prefix="bench-transports-"))
    print_settings(options, logs)
    stop_on_signals(asyncio.current_task())
    for n in args.n:
        burst = Burst(n, options.channels)
        rows: dict[str, Row] = {}
        for transport in args.transports:
            rows[transport] = await run_row(transport, burst, options, logs)
            print(render(rows[transport]), flush=True)
        summary = verdict(rows)
        if summary:
            print(summary, flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
