"""What one lone streamed answer costs the bot's CPU, code against code, side by side.

A lone answer costs the bot some 50 to 70 ms, and this 2-core machine's speed drifts from
hour to hour by more than a change to the bot moves it; `bench.capacity`'s `cpu 1` row also
subtracts an idle rate five times the answer's own (its /healthz probes, ten a second). Here
each checkout named runs as its own bot process, with its own fakes and no probes, all at
the same time, and each is asked the same lone answers in step (3,000 characters in
4-character chunks at 50 a second, as `cpu` rows are): whatever the machine does, it does to
every checkout alike. Before each answer the idle bot is watched for `--idle` seconds; an
answer's cost is its window's CPU time less that idle rate over the window.

    python -m bench.lone_answer [--answers 6] [--idle 4] [--against CHECKOUT ...]

`--against` adds a bot importing the bot package from another checkout (a `git worktree` of
the commit to compare); the current checkout always runs. Rows are named by commit (`+`:
with changes not committed). Columns: the median, least and most CPU milliseconds per
answer, and the idle bot's CPU milliseconds a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.capacity import (
    BACKLOG,
    BOT_SETTINGS,
    CPU_RATE,
    Question,
    Shape,
    TimedSender,
    answered,
    chunks_for,
    cpu_seconds,
    warm_up,
)
from bench.harness import (
    CGPT_KEY,
    PROJECT_ID,
    REPO_ROOT,
    BotProcess,
    clean_env,
    delete_team_keys,
    free_port,
    redis_reachable,
    run_main,
    stop_on_signals,
)
from tests.driver import next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack

ANSWER_TIMEOUT = 60.0
SHAPE = Shape("cpu", 1, 1, 1 / CPU_RATE)


@dataclass
class Bench:
    """One checkout's bot, its fakes and what its answers cost."""

    checkout: Path
    slack: FakeSlack
    cgpt: FakeCustomGPT
    bot: BotProcess
    sender: TimedSender
    costs: list[float] = field(default_factory=list)
    idle_rates: list[float] = field(default_factory=list)


async def idle_rate(bot: BotProcess, seconds: float) -> float:
    before, started = cpu_seconds(bot.pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(bot.pid) - before) / (time.monotonic() - started)


async def one_answer(bench: Bench, index: int, idle: float) -> None:
    rate = await idle_rate(bench.bot, idle)
    question = Question(index, "CLONE", next_ts(), f"lone question q{index}")
    answer = bench.cgpt.queue_answer(chunks_for(SHAPE, index, 0), chunk_delay=SHAPE.chunk_delay)
    before, started = cpu_seconds(bench.bot.pid), time.monotonic()
    await bench.sender.mention(question.prompt, channel=question.channel, ts=question.ts)
    deadline = started + ANSWER_TIMEOUT
    if not await answered(bench.slack, bench.bot, question, answer, deadline):
        raise RuntimeError(f"{bench.checkout}: answer {index} did not complete")
    wall = time.monotonic() - started
    bench.costs.append(cpu_seconds(bench.bot.pid) - before - rate * wall)
    bench.idle_rates.append(rate)


async def run(checkouts: Sequence[Path], answers: int, idle: float, logs: Path) -> list[Bench]:
    teams = [f"TLONE{uuid.uuid4().hex[:8].upper()}" for _ in checkouts]
    benches: list[Bench] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
            )
            for team, checkout in zip(teams, checkouts, strict=True):
                slack = await stack.enter_async_context(
                    FakeSlack(team_id=team, limits=None, backlog=BACKLOG)
                )
                cgpt = await stack.enter_async_context(
                    FakeCustomGPT(api_key=CGPT_KEY, backlog=BACKLOG)
                )
                cgpt.add_project(PROJECT_ID, "Lone Docs")
                env = clean_env(slack, cgpt, BOT_SETTINGS | {"PYTHONPATH": str(checkout)})
                env["PORT"] = str(free_port())
                bot = BotProcess(env, logs / f"{team}.log")
                # Stopped before its fakes close (the stack unwinds in reverse).
                stack.push_async_callback(bot.stop)
                benches.append(Bench(checkout, slack, cgpt, bot, TimedSender(bot.url, team, http)))
                await bot.start(http)
            for bench in benches:
                await warm_up(bench.sender, bench.slack, bench.cgpt, bench.bot)
            for index in range(answers):
                await asyncio.gather(*(one_answer(b, index, idle) for b in benches))
        return benches
    finally:
        for team in teams:
            await delete_team_keys(team)


def commit_of(checkout: Path) -> str:
    """The checkout's commit (with `+` when it has changes), as the table names it."""
    git = ["git", "-C", str(checkout)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], **GIT).stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain"], **GIT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return checkout.name
    return head + ("+" if changed else "")


GIT: dict[str, Any] = {"capture_output": True, "text": True, "check": True}


def render(benches: Sequence[Bench]) -> str:
    lines = [f"{'commit':<12} {'answers':>7} | {'median':>6} {'least':>6} {'most':>6} | idle"]
    for bench in benches:
        ms = [cost * 1000 for cost in bench.costs]
        lines.append(
            f"{commit_of(bench.checkout):<12} {len(ms):>7} | {statistics.median(ms):>6.1f} "
            f"{min(ms):>6.1f} {max(ms):>6.1f} | {statistics.mean(bench.idle_rates) * 1000:>4.1f}"
        )
    return "\n".join(lines)


async def main(argv: Sequence[str] | None = None) -> int:
    parse = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parse.add_argument("--answers", type=int, default=6)
    parse.add_argument("--idle", type=float, default=4.0, help="seconds watched before each")
    parse.add_argument("--against", type=Path, nargs="*", default=[], metavar="CHECKOUT")
    args = parse.parse_args(argv)
    if args.answers < 1 or args.idle <= 0:
        parse.error("--answers 1 or more, --idle above 0")
    if not await redis_reachable():
        return 2
    logs = Path(tempfile.mkdtemp(prefix="bench-lone-"))
    print(f"$ python -m bench.lone_answer --answers {args.answers} --idle {args.idle:g}", end="")
    print(" --against", *args.against) if args.against else print()
    print(f"bot logs in {logs}")
    stop_on_signals(asyncio.current_task())
    checkouts = [REPO_ROOT, *(path.resolve() for path in args.against)]
    print(render(await run(checkouts, args.answers, args.idle, logs)))
    return 0


if __name__ == "__main__":
    run_main(main)
