"""Many questions at once, measured as the people asking see them.

The bot runs as its own process (`python -m bot`, or two of them sharing Redis), configured
only through its environment. This process runs the fake Slack, with Slack's rate limits
(`SlackLimits.slack()`), the fake CustomGPT, streaming each answer over real SSE, and a
driver that sends N signed mentions at once, alternating replicas. A row ends when every
answer is complete or its time is up. Beside each row, the same questions answered by the
NAIVE policy many bots use (placeholder, an edit every 20 chunks, retry each 429 after
Retry-After, a final edit), run in this process against a fresh fake with the same limits.

    python -m bench.burst [--n 1 10 40 100 200] [--spread 1 10] [--replicas 1 2] [--half]
                          [--chunks 30] [--chunk-delay 0.2] [--row-timeout SECONDS]
                          [--bot-env KEY=VALUE ...] [--no-naive] [--idle-stop 30]

Columns (times in seconds, from the moment a question was sent):
  done        answers complete: every word in order across the thread's replies, no typing
              marker left, feedback buttons on the last reply
  no reply    questions whose thread never got a bot message
  unfinished  replied to, but not complete when the row ended
  calls/ans   Slack Web API calls received (refused ones included) per question
  final       p50 / p95 time until the answer stood complete in Slack
  stale       p50 / p95, over every chunk, from CustomGPT sending it to Slack first showing
              a version of the reply that contains it
  last        time until the last answer was complete (from the first question)
  bound       what the emulated limits impose on `last`: the stream's duration plus the
              wait for one post per answer, per channel and per workspace (see docs)
  ratio       last / bound
  429s        refusals for rate, by method
A note after a row says why it ended early: "timed out", "idle 30s" (no Slack call and no
stream open for that long: nothing more was coming), or a bot process exited.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shlex
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import (
    BOT_TOKEN,
    CGPT_KEY,
    PROJECT_ID,
    REDIS_URL,
    SECRET,
    TOKEN,
    BotProcess,
    clean_env,
    delete_team_keys,
    free_port,
    is_complete,
    parse_env,
    percentile,
    redis_reachable,
    run_main,
    shown_settings,
    stop_on_signals,
    visible,
)
from bot import slack_format
from tests.driver import SlackSender, next_ts
from tests.fakes.customgpt import FakeCustomGPT, ScriptedAnswer
from tests.fakes.slack import Bucket, FakeMessage, FakeSlack, SlackLimits

POLL = 0.2
QUIET = 1.0  # seconds without a Slack call before a finished row is measured
QUIET_MAX = 10.0

MAX_QUESTIONS = 1000
MAX_CHUNKS = 1000

NAIVE_EDIT_EVERY = 20
NAIVE_TRIES = 8


# -- scenario and settings ------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    n: int
    spread: int
    replicas: int
    half: bool

    def channel(self, index: int) -> str:
        return f"CB{index % self.spread}"

    @property
    def label(self) -> str:
        return "half" if self.half else "full"


@dataclass(frozen=True)
class Options:
    chunks: int
    chunk_delay: float
    row_timeout: float | None
    bot_env: dict[str, str]
    naive: bool
    idle_stop: float = 30.0

    @property
    def stream_seconds(self) -> float:
        return max(0, self.chunks - 1) * self.chunk_delay


def limits_for(scenario: Scenario) -> SlackLimits:
    """Slack's shape; the half variant refills chat.update at 25/min, half of what the bot
    is told (SLACK_UPDATE_BUDGET 50)."""
    limits = SlackLimits.slack()
    if scenario.half:
        assert limits.chat_update is not None
        limits = replace(limits, chat_update=Bucket(limits.chat_update.burst, 25))
    return limits


def lower_bound(scenario: Scenario, limits: SlackLimits, options: Options) -> float:
    """The stream's duration, then one post per answer: the answers beyond a channel's (and
    the workspace's) burst wait for the bucket to refill. What posting each answer whole at
    its end would take at best (the overload mode's floor)."""
    per_channel = math.ceil(scenario.n / scenario.spread)
    queued = 0.0
    for bucket, count in (
        (limits.post_per_channel, per_channel),
        (limits.post_per_workspace, scenario.n),
    ):
        if bucket is not None and bucket.per_second > 0:
            queued = max(queued, max(0, count - bucket.burst) / bucket.per_second)
    return options.stream_seconds + queued


def row_timeout(scenario: Scenario, options: Options) -> float:
    if options.row_timeout is not None:
        return options.row_timeout
    return 3 * lower_bound(scenario, limits_for(scenario), options) + 60


# -- questions and what Slack shows -----------------------------------------------------------


@dataclass
class Question:
    index: int
    channel: str
    ts: str
    sent_at: float = math.nan

    @property
    def prompt(self) -> str:
        return f"burst question q{self.index}"


def answer_words(answer_index: int, chunks: int) -> list[str]:
    """Words no other answer has (`a3w07`), so a reply is checked word by word."""
    return [f"a{answer_index}w{k:02d} " for k in range(chunks)]


class Answers:
    """Which scripted answer each question got (matched by its prompt) and its state."""

    def __init__(self, slack: FakeSlack, cgpt: FakeCustomGPT, questions: list[Question]):
        self.slack = slack
        self.cgpt = cgpt
        self.questions = questions
        self.complete_at: dict[int, float] = {}
        self.created = slack.clock.now()

    def served(self, question: Question) -> ScriptedAnswer | None:
        found = None
        for answer in self.cgpt.served:
            if answer.request is not None and answer.request.body.get("prompt") == question.prompt:
                found = answer
        return found

    def idle_for(self) -> float:
        """Seconds since the last Slack call, 0 while a CustomGPT stream is still open."""
        if any(not answer.finished.is_set() for answer in self.cgpt.served):
            return 0.0
        last = max(self.created, self.slack.calls[-1].at if self.slack.calls else -math.inf)
        return self.slack.clock.now() - last

    def threads(self) -> dict[tuple[str, str], list[FakeMessage]]:
        by_thread: dict[tuple[str, str], list[FakeMessage]] = {}
        for message in self.slack.messages:
            if not message.deleted and message.thread_ts is not None:
                by_thread.setdefault((message.channel, message.thread_ts), []).append(message)
        return by_thread

    def refresh(self) -> bool:
        """Note the answers complete now; True once every one is."""
        threads = self.threads()
        for question in self.questions:
            if question.index in self.complete_at:
                continue
            replies = threads.get((question.channel, question.ts), [])
            answer = self.served(question)
            if answer is not None and is_complete(replies, answer):
                self.complete_at[question.index] = max(m.edited_at[-1] for m in replies)
        return len(self.complete_at) == len(self.questions)


def first_shown(replies: list[FakeMessage]) -> dict[str, float]:
    """When each word first appeared in any version of any reply."""
    seen: dict[str, float] = {}
    for message in replies:
        for (text, blocks), at in zip(message.edits, message.edited_at, strict=True):
            for match in TOKEN.finditer(visible(text, blocks)):
                word = match.group(0)
                seen[word] = min(seen.get(word, at), at)
    return seen


# -- one row's numbers -----------------------------------------------------------------------


@dataclass
class Row:
    policy: str
    scenario: Scenario
    done: int = 0
    no_reply: int = 0
    unfinished: int = 0
    calls: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    final: list[float] = field(default_factory=list)
    stale: list[float] = field(default_factory=list)
    last: float | None = None
    bound: float = 0.0
    note: str = ""


def measure(
    policy: str,
    scenario: Scenario,
    answers: Answers,
    started: float,
    bound: float,
) -> Row:
    answers.refresh()
    row = Row(policy, scenario, bound=bound)
    threads = answers.threads()
    for question in answers.questions:
        replies = threads.get((question.channel, question.ts), [])
        if question.index in answers.complete_at:
            row.done += 1
            row.final.append(answers.complete_at[question.index] - question.sent_at)
        elif replies:
            row.unfinished += 1
        else:
            row.no_reply += 1
        answer = answers.served(question)
        if answer is None:
            continue
        shown = first_shown(replies)
        for word, sent in zip(answer.chunks, answer.sent_at, strict=False):
            if word.strip() in shown:
                row.stale.append(max(0.0, shown[word.strip()] - sent))
    calls = [c for c in answers.slack.calls if c.at >= started and c.method != "auth.test"]
    row.calls = len(calls)
    row.refused = Counter(c.method for c in calls if c.ratelimited)
    if row.done == len(answers.questions) and answers.complete_at:
        row.last = max(answers.complete_at.values()) - started
    return row


HEADER = (
    f"{'policy':<6} {'rep':>3} {'N':>4} {'spread':>6} {'limits':>6} | {'done':>4} "
    f"{'no reply':>8} {'unfinished':>10} | {'calls/ans':>9} | {'final p50':>9} {'p95':>6} | "
    f"{'stale p50':>9} {'p95':>6} | {'last':>6} {'bound':>6} {'ratio':>5} | 429s"
)


def render(row: Row) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    s = row.scenario
    ratio = "-" if row.last is None or row.bound <= 0 else f"{row.last / row.bound:.2f}"
    refused = " ".join(f"{m}:{n}" for m, n in sorted(row.refused.items())) or "0"
    replicas = str(s.replicas) if row.policy == "bot" else "-"
    line = (
        f"{row.policy:<6} {replicas:>3} {s.n:>4} {s.spread:>6} {s.label:>6} | {row.done:>4} "
        f"{row.no_reply:>8} {row.unfinished:>10} | {row.calls / max(1, s.n):>9.1f} | "
        f"{seconds(percentile(row.final, 0.5)):>9} {seconds(percentile(row.final, 0.95)):>6} | "
        f"{seconds(percentile(row.stale, 0.5)):>9} {seconds(percentile(row.stale, 0.95)):>6} | "
        f"{seconds(row.last):>6} {row.bound:>6.1f} {ratio:>5} | {refused}"
    )
    return f"{line}  ({row.note})" if row.note else line


# -- the bot as processes --------------------------------------------------------------------


def bot_env(slack: FakeSlack, cgpt: FakeCustomGPT, options: Options) -> dict[str, str]:
    """The bot's whole configuration, from a clean slate: nothing of ours leaks in."""
    defaults = {"SLACK_UPDATE_BUDGET": "50", "SLACK_UPDATE_INTERVAL": "1.0", "LOG_LEVEL": "INFO"}
    return clean_env(slack, cgpt, defaults | options.bot_env)


# -- running a row ----------------------------------------------------------------------------


def new_team() -> str:
    return f"TBURST{uuid.uuid4().hex[:8].upper()}"


@contextlib.asynccontextmanager
async def fakes(
    scenario: Scenario, options: Options, team: str
) -> AsyncIterator[tuple[FakeSlack, FakeCustomGPT]]:
    """A fresh fake Slack (with the row's limits) and CustomGPT, one scripted answer per
    question."""
    async with (
        FakeSlack(team_id=team, limits=limits_for(scenario)) as slack,
        FakeCustomGPT(api_key=CGPT_KEY) as cgpt,
    ):
        cgpt.add_project(PROJECT_ID, "Burst Docs")
        for index in range(scenario.n):
            cgpt.queue_answer(answer_words(index, options.chunks), chunk_delay=options.chunk_delay)
        yield slack, cgpt


def questions_for(scenario: Scenario) -> list[Question]:
    return [Question(i, scenario.channel(i), next_ts()) for i in range(scenario.n)]


async def wait_until_done(
    answers: Answers, deadline: float, idle_stop: float, stopped: Callable[[], bool]
) -> str:
    """Poll (a benchmark, not a test) until every answer is complete, the answering side
    `stopped`, nothing has happened for `idle_stop` seconds (no Slack call, no stream open:
    the rest will never come), or time is up; then wait for Slack to go quiet, so calls
    trailing the last answer are counted too. Returns why the row ended early, or ""."""
    why = ""
    # Polled: checking every answer on each Slack call would cost O(N) a call, and a bot
    # process exiting wakes nothing.
    while not answers.refresh():
        if stopped():
            why = "stopped"
        elif time.monotonic() >= deadline:
            why = "timed out"
        elif answers.idle_for() >= idle_stop:
            why = f"idle {idle_stop:.0f}s"
        if why:
            break
        await asyncio.sleep(POLL)
    quiet_until = time.monotonic() + QUIET_MAX
    while time.monotonic() < quiet_until and answers.idle_for() < QUIET:  # noqa: ASYNC110
        await asyncio.sleep(POLL)
    return why


async def run_bot_row(scenario: Scenario, options: Options, logs: Path) -> Row:
    team = new_team()
    limits = limits_for(scenario)
    bots: list[BotProcess] = []
    try:
        async with fakes(scenario, options, team) as (slack, cgpt), aiohttp.ClientSession() as http:
            for replica in range(scenario.replicas):
                env = bot_env(slack, cgpt, options) | {"PORT": str(free_port())}
                name = f"{team}-{replica}.log"
                bots.append(BotProcess(env, logs / name))
            await asyncio.gather(*(b.start(http) for b in bots))
            senders = [SlackSender(b.url, SECRET, team, http) for b in bots]
            questions = questions_for(scenario)
            answers = Answers(slack, cgpt, questions)
            started = slack.clock.now()

            async def ask(question: Question) -> None:
                question.sent_at = slack.clock.now()
                sender = senders[question.index % len(senders)]
                await sender.mention(question.prompt, channel=question.channel, ts=question.ts)

            sent = await asyncio.gather(*(ask(q) for q in questions), return_exceptions=True)
            failures = [s for s in sent if isinstance(s, BaseException)]
            deadline = time.monotonic() + row_timeout(scenario, options)
            ended = await wait_until_done(
                answers, deadline, options.idle_stop, lambda: any(b.exited for b in bots)
            )
            # Measured before the bots stop: a stopping bot edits the answers still in flight.
            row = measure("bot", scenario, answers, started, lower_bound(scenario, limits, options))
            notes = [f"{len(failures)} mentions not delivered: {failures[0]!r}"] if failures else []
            if any(b.exited for b in bots):
                notes.append("a bot process exited")
            elif ended:
                notes.append(ended)
            row.note = "; ".join(notes)
            return row
    finally:
        await asyncio.gather(*(b.stop() for b in bots), return_exceptions=True)
        await delete_team_keys(team)


class NaiveBot:
    """What many Slack bots do: post a placeholder, edit every 20 chunks, and on a 429 wait
    Retry-After and retry the same call (8 tries), then a final edit. No shared budget."""

    def __init__(self, http: aiohttp.ClientSession, slack: FakeSlack, cgpt: FakeCustomGPT):
        self.http = http
        self.slack = slack
        self.cgpt = cgpt

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
        for _ in range(NAIVE_TRIES):
            async with self.http.post(
                self.slack.api_url + method, json=params, headers=headers
            ) as response:
                body = await response.json(content_type=None)
                retry_after = response.headers.get("Retry-After")
            if body.get("ok"):
                return dict(body)
            if body.get("error") != "ratelimited":
                return None
            await asyncio.sleep(float(retry_after or 1))
        return None

    async def answer(self, question: Question) -> None:
        posted = await self.call(
            "chat.postMessage",
            {"channel": question.channel, "thread_ts": question.ts, "text": "Thinking…"},
        )
        if posted is None:
            return
        ts = str(posted["ts"])
        text = ""
        chunks = 0
        async for chunk in self.stream(question.prompt):
            text += chunk
            chunks += 1
            if chunks % NAIVE_EDIT_EVERY == 0:
                partial, blocks = slack_format.answer_blocks(text, typing=True)
                await self.call(
                    "chat.update",
                    {"channel": question.channel, "ts": ts, "text": partial, "blocks": blocks},
                )
        final, blocks = slack_format.answer_blocks(text, feedback_value="naive")
        await self.call(
            "chat.update", {"channel": question.channel, "ts": ts, "text": final, "blocks": blocks}
        )

    async def stream(self, prompt: str) -> Any:
        """The answer's chunks, read from CustomGPT's SSE stream."""
        auth = {"Authorization": f"Bearer {CGPT_KEY}"}
        base = f"{self.cgpt.api_url}/projects/{PROJECT_ID}/conversations"
        async with self.http.post(base, json={"name": "naive"}, headers=auth) as created:
            session_id = (await created.json())["data"]["session_id"]
        url = f"{base}/{session_id}/messages?stream=1&lang=en"
        async with self.http.post(url, json={"prompt": prompt}, headers=auth) as response:
            async for raw in response.content:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                data = json.loads(line.removeprefix("data:"))
                if data.get("status") == "progress":
                    yield str(data.get("message", ""))


async def run_naive_row(scenario: Scenario, options: Options) -> Row:
    team = new_team()
    limits = limits_for(scenario)
    async with fakes(scenario, options, team) as (slack, cgpt), aiohttp.ClientSession() as http:
        naive = NaiveBot(http, slack, cgpt)
        questions = questions_for(scenario)
        answers = Answers(slack, cgpt, questions)
        started = slack.clock.now()

        async def ask(question: Question) -> None:
            question.sent_at = slack.clock.now()
            await naive.answer(question)

        tasks = [asyncio.create_task(ask(q)) for q in questions]
        try:
            deadline = time.monotonic() + row_timeout(scenario, options)
            ended = await wait_until_done(
                answers, deadline, options.idle_stop, lambda: all(t.done() for t in tasks)
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        row = measure("naive", scenario, answers, started, lower_bound(scenario, limits, options))
        row.note = "" if ended == "stopped" else ended  # the naive client gave up: no news
        return row


# -- the run ----------------------------------------------------------------------------------


def scenarios(args: argparse.Namespace) -> Iterator[tuple[Scenario, bool]]:
    """Every row, with whether the naive row for its (N, spread, limits) follows it."""
    for half in (False, True) if args.half else (False,):
        for spread in args.spread:
            for n in args.n:
                for position, replicas in enumerate(args.replicas):
                    last = position == len(args.replicas) - 1
                    yield Scenario(n, spread, replicas, half), last


def print_settings(args: argparse.Namespace, options: Options, logs: Path) -> None:
    limits = SlackLimits.slack()
    shown_env = shown_settings(options.bot_env)
    print("$ python -m bench.burst " + shlex.join(sys.argv[1:]))
    print(
        f"answers: {options.chunks} chunks, {options.chunk_delay}s apart "
        f"({options.stream_seconds:.1f}s a stream); Slack limits: chat.update "
        f"{limits.chat_update}, chat.postMessage per channel {limits.post_per_channel} and "
        f"per workspace {limits.post_per_workspace}, reactions {limits.reactions}"
    )
    half = "; half rows: the fake refills chat.update at 25/min" if args.half else ""
    print(
        "bot settings: SLACK_UPDATE_BUDGET=50 SLACK_UPDATE_INTERVAL=1.0"
        + "".join(f" {k}={v}" for k, v in shown_env.items())
        + half
    )
    timeout = "3 x bound + 60s" if options.row_timeout is None else f"{options.row_timeout}s"
    print(f"row timeout: {timeout}; Redis {REDIS_URL}; bot logs in {logs}")
    print(HEADER, flush=True)


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.burst",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 40, 100, 200])
    parser.add_argument("--spread", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--half", action="store_true", help="also rows with half the edits")
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--chunk-delay", type=float, default=0.2)
    parser.add_argument("--row-timeout", type=float, help="seconds (default 3 x bound + 60)")
    parser.add_argument("--bot-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive policy rows")
    parser.add_argument(
        "--idle-stop",
        type=float,
        default=30.0,
        help="end a row after this many seconds with no Slack call and no stream open",
    )
    args = parser.parse_args(argv)
    if not (
        1 <= min(args.n) <= max(args.n) <= MAX_QUESTIONS
        and 1 <= min(args.spread)
        and 1 <= args.chunks <= MAX_CHUNKS
        and 0 <= args.chunk_delay <= 10
    ):
        parser.error(
            f"--n 1..{MAX_QUESTIONS}, --spread 1 or more, --chunks 1..{MAX_CHUNKS}, "
            "--chunk-delay 0..10 s"
        )
    options = Options(
        chunks=args.chunks,
        chunk_delay=args.chunk_delay,
        row_timeout=args.row_timeout,
        bot_env=parse_env(args.bot_env),
        naive=not args.no_naive,
        idle_stop=args.idle_stop,
    )
    if not await redis_reachable():
        return 2

    logs = Path(tempfile.mkdtemp(prefix="bench-burst-"))
    print_settings(args, options, logs)
    stop_on_signals(asyncio.current_task())
    for scenario, naive_follows in scenarios(args):
        print(render(await run_bot_row(scenario, options, logs)), flush=True)
        if naive_follows and options.naive:
            print(render(await run_naive_row(scenario, options)), flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
