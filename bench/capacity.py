"""How many answers one bot process carries at once, and what each one costs it.

The bot runs as its own process (`python -m bot`, a fresh one per row), configured only
through its environment, with Slack's limits out of the way: the fake Slack throttles
nothing and the bot's own Slack budgets are raised (see BOT_SETTINGS). This process runs the
fake Slack, the fake CustomGPT (each answer over real SSE) and the driver, which sends N
signed mentions at once over up to 50 channels and watches the bot from outside: its memory
and CPU time in /proc, its event loop through the latency of `GET /healthz`.

    python -m bench.capacity [--concurrent 100 500 1000] [--cpu 1 20 100] [--seconds 60]
                             [--channels 50] [--row-timeout SECONDS] [--bot-env KEY=VALUE ...]

Two kinds of row:
  answers N   N answers of `--seconds` seconds at once, a chunk every 0.5 s: do they all
              finish, how much memory does each hold, how fast is each mention acknowledged
  cpu N       N answers of 3,000 characters in 4-character chunks at 50 chunks a second
              (750 chunks over 15 s): the bot's CPU time per answer, and its loop lag

Columns:
  done        answers complete: every word in order across the thread's replies, no typing
              marker left, feedback buttons on the last reply
  notice      questions with a failure notice in their thread (a reply with ":warning:",
              ":hourglass:", "restarted", "couldn't", "try again" or "ask again")
  no reply    questions whose thread never got a bot message
  unfin       replied to, no failure notice, yet not complete when the row ended
  ack p50/max milliseconds for the bot to answer each signed mention (Slack wants < 3 s)
  RSS idle    the bot's resident memory before the burst (after one warm-up answer), MiB
  peak        the most it held during the row (sampled every 0.5 s), MiB
  KiB/ans     (peak - idle) / N
  idle        CPU milliseconds a second the idle bot spends (these probes included): the mean
              of 10 s watched before the burst and 10 s after the answers are done
  CPU s       the bot's CPU time over the row (all its threads, to the nanosecond)
  ms/ans      (CPU s - idle x wall) / N: what each answer cost the bot
  lag p50/p99/max
              milliseconds for `GET /healthz` (sampled every 0.1 s): the bot's event-loop lag
              plus one small HTTP request (the probe asks nothing else). The mentions
              arrive all at once, and their acks and the answers' start-up take the first
              few hundred milliseconds: a note gives the p99 of the probes sent from 1 s on
  bench CPU   this process's CPU seconds over the row (fakes and driver); near `wall` means
              the fakes, not the bot, set the pace
  wall        seconds from the first mention to the end of the row
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.harness import (
    CGPT_KEY,
    PROJECT_ID,
    REDIS_URL,
    SECRET,
    UNLIMITED_BUDGETS,
    BotProcess,
    clean_env,
    delete_team_keys,
    free_port,
    is_complete,
    parse_env,
    percentile,
    raise_open_files_limit,
    redis_reachable,
    run_main,
    shown_settings,
    stop_on_signals,
    visible,
)
from tests.driver import SlackSender, next_ts, sign
from tests.fakes.customgpt import FakeCustomGPT, ScriptedAnswer
from tests.fakes.slack import FakeMessage, FakeSlack

#: The bot's Slack budgets raised out of the way, so what is measured is the bot itself.
BOT_SETTINGS = UNLIMITED_BUDGETS | {"SLACK_UPDATE_INTERVAL": "1.0", "LOG_LEVEL": "INFO"}

LONG_CHUNK_DELAY = 0.5
CPU_CHARACTERS = 3000
CPU_CHUNK = 4
CPU_RATE = 50.0  # chunks a second
#: What marks a reply as a failure notice (the bot's notices say one of these).
FAILURE_MARKS = (":warning:", ":hourglass:", "restarted", "couldn't", "try again", "ask again")

BACKLOG = 4096  # the fakes' listening sockets: a thousand connections at once never wait
RSS_EVERY = 0.5
LAG_EVERY = 0.1
HEALTH_TIMEOUT = 10.0
IDLE_BASELINE = 10.0  # seconds the idle bot is watched (CPU rate, lag) before a burst
SETTLED = 1.0  # seconds after the mentions from which the lag is given apart (a note)
WARM_UP_TIMEOUT = 30.0
POLL = 0.2
QUIET = 1.0  # seconds without a Slack call before the answers are checked
CHECK_EVERY = 1.0
MAX_QUESTIONS = 2000
MAX_SECONDS = 600

PAGE_KIB = 1024


# -- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One row's questions: how many, how each answer streams, over how many channels."""

    kind: str  # "answers" or "cpu"
    n: int
    channels: int
    chunk_delay: float

    @property
    def label(self) -> str:
        return f"{self.kind} {self.n}"


def long_answer(index: int, seconds: float) -> list[str]:
    """A chunk every 0.5 s for `seconds`: one word each (`a3w007 `)."""
    count = max(1, round(seconds / LONG_CHUNK_DELAY))
    return [f"a{index}w{k:03d} " for k in range(count)]


def cpu_answer(index: int) -> list[str]:
    """3,000 characters of words no other answer has, cut into 4-character chunks
    (chunk boundaries fall inside words, as a model's tokens do)."""
    words: list[str] = []
    length = 0
    while length < CPU_CHARACTERS:
        word = f"a{index}w{len(words):03d} "
        words.append(word)
        length += len(word)
    text = "".join(words)[:CPU_CHARACTERS]
    return [text[i : i + CPU_CHUNK] for i in range(0, len(text), CPU_CHUNK)]


def chunks_for(shape: Shape, index: int, seconds: float) -> list[str]:
    return long_answer(index, seconds) if shape.kind == "answers" else cpu_answer(index)


@dataclass
class Row:
    shape: Shape
    done: int = 0
    notice: int = 0
    no_reply: int = 0
    unfinished: int = 0
    settled: int = 0  # complete or with a notice: nothing more is coming
    acks: list[float] = field(default_factory=list)
    rss_idle_kib: int = 0
    rss_peak_kib: int = 0
    cpu: float = 0.0
    cpu_net: float = 0.0
    idle_rate: float = 0.0  # CPU seconds a second, idle (probes included)
    lags: list[float] = field(default_factory=list)
    bench_cpu: float = 0.0
    bench_lags: list[float] = field(default_factory=list)
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)


HEADER = (
    f"{'row':<12} {'chan':>4} | {'done':>4} {'notice':>6} {'no reply':>8} {'unfin':>5} | "
    f"{'ack p50':>7} {'max':>6} | {'RSS idle':>8} {'peak':>6} {'KiB/ans':>7} | "
    f"{'idle':>4} {'CPU s':>6} {'ms/ans':>6} | {'lag p50':>7} {'p99':>5} {'max':>6} | "
    f"{'bench CPU':>9} {'wall':>5}"
)


def render(row: Row) -> str:
    def ms(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value * 1000:>{width}.0f}"

    s = row.shape
    grown = max(0, row.rss_peak_kib - row.rss_idle_kib)
    line = (
        f"{s.label:<12} {s.channels:>4} | {row.done:>4} {row.notice:>6} {row.no_reply:>8} "
        f"{row.unfinished:>5} | {ms(percentile(row.acks, 0.5), 7)} "
        f"{ms(max(row.acks, default=None), 6)} | {row.rss_idle_kib / 1024:>8.1f} "
        f"{row.rss_peak_kib / 1024:>6.1f} {grown / s.n:>7.1f} | {row.idle_rate * 1000:>4.0f} "
        f"{row.cpu:>6.2f} "
        f"{row.cpu_net / s.n * 1000:>6.1f} | {ms(percentile(row.lags, 0.5), 7)} "
        f"{ms(percentile(row.lags, 0.99), 5)} {ms(max(row.lags, default=None), 6)} | "
        f"{row.bench_cpu:>9.2f} {row.wall:>5.0f}"
    )
    return f"{line}  ({'; '.join(row.notes)})" if row.notes else line


# -- watching the bot from outside -------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident memory now (VmRSS), KiB; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time the process's threads have used so far, to the nanosecond (the scheduler's
    own count in /proc/<pid>/task/*/schedstat): utime and stime come in 10 ms ticks, too
    coarse for one answer and for the idle rate subtracted from it."""
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return math.nan
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Watcher:
    """Samples the bot while a row runs: its peak RSS every 0.5 s, and every 0.1 s how long
    `GET /healthz` takes (and how late this process's own timer fired, to tell a busy bench
    from a busy bot). Each loop ends when `stop` is set."""

    def __init__(self, bot: BotProcess, http: aiohttp.ClientSession) -> None:
        self.bot = bot
        self.http = http
        self.peak_kib = 0
        self.lags: list[float] = []
        self.asked: list[float] = []  # when each `lags` probe was sent (monotonic)
        self.bench_lags: list[float] = []
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __enter__(self) -> Watcher:
        self._tasks = [
            asyncio.create_task(self._memory()),
            asyncio.create_task(self._health()),
        ]
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for task in self._tasks:
            task.cancel()

    async def _every(self, seconds: float) -> bool:
        """Wait `seconds` (or less if stopped); False once stopped."""
        try:
            async with asyncio.timeout(seconds):
                await self.stop.wait()
        except TimeoutError:
            return True
        return False

    async def _memory(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, rss_kib(self.bot.pid))
            if not await self._every(RSS_EVERY):
                return

    async def _health(self) -> None:
        url = f"{self.bot.url}/healthz"
        timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)
        while True:
            asked = time.monotonic()
            try:
                async with self.http.get(url, timeout=timeout) as response:
                    await response.read()
                self.lags.append(time.monotonic() - asked)
            except (aiohttp.ClientError, TimeoutError):
                self.lags.append(time.monotonic() - asked)
            self.asked.append(asked)
            wait_from = time.monotonic()
            if not await self._every(LAG_EVERY):
                return
            self.bench_lags.append(max(0.0, time.monotonic() - wait_from - LAG_EVERY))


class TimedSender(SlackSender):
    """Signs like Slack and notes each request's round trip: from the moment it is handed to
    the HTTP client (signed, ready) to the bot's whole response read."""

    def __init__(self, url: str, team: str, session: aiohttp.ClientSession) -> None:
        super().__init__(url, SECRET, team, session)
        self.round_trips: list[float] = []

    async def post(
        self, path: str, body: str, content_type: str, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        all_headers = {"Content-Type": content_type, **sign(self.secret, body), **(headers or {})}
        sent = time.monotonic()
        async with self.session.post(self.url + path, data=body, headers=all_headers) as resp:
            await resp.read()
        self.round_trips.append(time.monotonic() - sent)
        return resp


# -- one row --------------------------------------------------------------------------------


@dataclass
class Question:
    index: int
    channel: str
    ts: str
    prompt: str


def threads_of(slack: FakeSlack) -> dict[tuple[str, str], list[FakeMessage]]:
    by_thread: dict[tuple[str, str], list[FakeMessage]] = {}
    for message in slack.messages:
        if not message.deleted and message.thread_ts is not None:
            by_thread.setdefault((message.channel, message.thread_ts), []).append(message)
    return by_thread


def by_prompt(answers: Sequence[ScriptedAnswer]) -> dict[str, ScriptedAnswer]:
    return {
        str(a.request.body.get("prompt")): a
        for a in answers
        if a.request is not None and a.request.body.get("prompt")
    }


def is_notice(message: FakeMessage) -> bool:
    shown = (message.text + "\n" + visible(message.text, message.blocks)).lower()
    return any(mark in shown for mark in FAILURE_MARKS)


def count_outcomes(
    row: Row, slack: FakeSlack, questions: Sequence[Question], answers: Sequence[ScriptedAnswer]
) -> None:
    threads = threads_of(slack)
    served = by_prompt(answers)
    row.done = row.notice = row.no_reply = row.unfinished = row.settled = 0
    for question in questions:
        replies = threads.get((question.channel, question.ts), [])
        answer = served.get(question.prompt)
        noticed = any(is_notice(m) for m in replies)
        complete = answer is not None and is_complete(replies, answer)
        row.notice += noticed
        row.settled += noticed or complete
        if complete:
            row.done += 1
        elif not replies:
            row.no_reply += 1
        elif not noticed:
            row.unfinished += 1


def slack_idle_for(slack: FakeSlack, since: float) -> float:
    last = max(since, slack.calls[-1].at if slack.calls else -math.inf)
    return slack.clock.now() - last


async def wait_for_answers(
    row: Row,
    slack: FakeSlack,
    bot: BotProcess,
    questions: Sequence[Question],
    answers: Sequence[ScriptedAnswer],
    deadline: float,
    idle_stop: float,
) -> None:
    """Poll (a benchmark, not a test) until every answer stands complete, the bot exits,
    nothing has happened for `idle_stop` seconds (no Slack call, no stream open), or time is
    up. Completeness is checked only while no stream is open and Slack is quiet: a check
    walks every message, too much to do five times a second at a thousand answers."""
    since = slack.clock.now()
    checked = -math.inf
    while True:
        streaming = any(a.request is not None and not a.finished.is_set() for a in answers)
        idle = 0.0 if streaming else slack_idle_for(slack, since)
        if bot.exited:
            row.notes.append("the bot process exited")
            return
        if time.monotonic() >= deadline:
            row.notes.append("timed out")
            return
        if idle >= QUIET and time.monotonic() - checked >= CHECK_EVERY:
            checked = time.monotonic()
            count_outcomes(row, slack, questions, answers)
            if row.settled == len(questions):
                return
        if idle >= idle_stop:
            row.notes.append(f"idle {idle_stop:.0f}s")
            return
        await asyncio.sleep(POLL)


async def warm_up(
    sender: SlackSender, slack: FakeSlack, cgpt: FakeCustomGPT, bot: BotProcess
) -> None:
    """One short answer first, so the row does not count what the first answer of a fresh
    process loads (imports, connection pools, caches) as the cost of the burst."""
    answer = cgpt.queue_answer([f"a999999w{k} " for k in range(4)], chunk_delay=0.3)
    question = Question(-1, "CWARM", next_ts(), "capacity warm-up")
    await sender.mention(question.prompt, channel=question.channel, ts=question.ts)
    if not await answered(slack, bot, question, answer, time.monotonic() + WARM_UP_TIMEOUT):
        raise RuntimeError("the warm-up answer did not complete; see the bot's log")


async def answered(
    slack: FakeSlack,
    bot: BotProcess,
    question: Question,
    answer: ScriptedAnswer,
    deadline: float,
) -> bool:
    """Poll until one question's answer stands complete and Slack has been quiet (True), or
    the bot exits or `deadline` (monotonic) passes (False)."""
    while time.monotonic() < deadline and not bot.exited:
        replies = threads_of(slack).get((question.channel, question.ts), [])
        if is_complete(replies, answer) and slack_idle_for(slack, -math.inf) >= QUIET:
            return True
        await asyncio.sleep(POLL)
    return False


async def idle_cpu_rate(bot: BotProcess, http: aiohttp.ClientSession) -> float:
    """CPU seconds a second the idle bot spends, /healthz probes included (subtracted from
    the row's CPU time, so `ms/ans` is what the answers cost)."""
    with Watcher(bot, http):
        before = cpu_seconds(bot.pid)
        started = time.monotonic()
        await asyncio.sleep(IDLE_BASELINE)
        return (cpu_seconds(bot.pid) - before) / (time.monotonic() - started)


@dataclass(frozen=True)
class Options:
    seconds: float
    channels: int
    row_timeout: float | None
    idle_stop: float
    bot_env: dict[str, str]


def row_timeout(shape: Shape, options: Options) -> float:
    if options.row_timeout is not None:
        return options.row_timeout
    stream = len(chunks_for(shape, 0, options.seconds)) * shape.chunk_delay
    return 3 * stream + 60


@dataclass
class Rig:
    """One row's fakes, bot and HTTP clients."""

    slack: FakeSlack
    cgpt: FakeCustomGPT
    bot: BotProcess
    sender: TimedSender
    probe: aiohttp.ClientSession


async def run_row(shape: Shape, options: Options, logs: Path) -> Row:
    row = Row(shape)
    # What the previous row's fakes held (a thousand answers' messages) is collected now,
    # not in the middle of this row's burst, where it stalled this process for half a second.
    gc.collect()
    team = f"TCAP{uuid.uuid4().hex[:8].upper()}"
    # One connection per mention, closed after its response, as Slack delivers events: a
    # thousand idle keep-alive connections would sit in the bot's memory and inflate RSS.
    mentions = aiohttp.TCPConnector(limit=0, force_close=True)
    try:
        async with (
            FakeSlack(team_id=team, limits=None, backlog=BACKLOG) as slack,
            FakeCustomGPT(api_key=CGPT_KEY, backlog=BACKLOG) as cgpt,
            aiohttp.ClientSession(connector=mentions) as http,
            aiohttp.ClientSession() as probe,
        ):
            cgpt.add_project(PROJECT_ID, "Capacity Docs")
            env = clean_env(slack, cgpt, BOT_SETTINGS | options.bot_env)
            env["PORT"] = str(free_port())
            bot = BotProcess(env, logs / f"{team}.log", many_files=True)
            try:
                await bot.start(probe)
                sender = TimedSender(bot.url, team, http)
                await burst(row, options, Rig(slack, cgpt, bot, sender, probe))
            finally:
                # Before the fakes close: a bot cut off from them would fail answers and
                # fill its log with errors of the benchmark's making.
                await bot.stop()
        return row
    finally:
        await delete_team_keys(team)


async def burst(row: Row, options: Options, rig: Rig) -> None:
    """Warm up and watch the idle bot, then send the row's mentions all at once and measure
    until the answers are done (or the row ends otherwise)."""
    shape, bot = row.shape, rig.bot
    await warm_up(rig.sender, rig.slack, rig.cgpt, bot)
    row.idle_rate = await idle_cpu_rate(bot, rig.probe)
    questions = [
        Question(i, f"CC{i % shape.channels}", next_ts(), f"capacity question q{i}")
        for i in range(shape.n)
    ]
    answers = [
        rig.cgpt.queue_answer(
            chunks_for(shape, q.index, options.seconds), chunk_delay=shape.chunk_delay
        )
        for q in questions
    ]
    row.rss_idle_kib = rss_kib(bot.pid)
    rig.sender.round_trips.clear()
    with Watcher(bot, rig.probe) as watcher:
        cpu_before, bench_before = cpu_seconds(bot.pid), own_cpu_seconds()
        started = time.monotonic()
        sent = await asyncio.gather(
            *(rig.sender.mention(q.prompt, channel=q.channel, ts=q.ts) for q in questions),
            return_exceptions=True,
        )
        failures = [s for s in sent if isinstance(s, BaseException)]
        if failures:
            row.notes.append(f"{len(failures)} mentions not acknowledged: {failures[0]!r}")
        deadline = started + row_timeout(shape, options)
        await wait_for_answers(row, rig.slack, bot, questions, answers, deadline, options.idle_stop)
        row.wall = time.monotonic() - started
        row.cpu = cpu_seconds(bot.pid) - cpu_before
        row.bench_cpu = own_cpu_seconds() - bench_before
        row.rss_peak_kib = max(watcher.peak_kib, rss_kib(bot.pid))
    row.acks = list(rig.sender.round_trips)
    row.lags, row.bench_lags = watcher.lags, watcher.bench_lags
    # The mentions all arrive at once: their acks and the answers' start-up fill the first
    # few hundred milliseconds, and take the few worst probes. Past that, the streaming.
    probes = zip(watcher.asked, watcher.lags, strict=True)
    later = [lag for asked, lag in probes if asked >= started + SETTLED]
    if (later_p99 := percentile(later, 0.99)) is not None:
        row.notes.append(f"lag p99 from {SETTLED:.0f} s on {later_p99 * 1000:.0f} ms")
    count_outcomes(row, rig.slack, questions, answers)  # measured before the bot stops
    # The idle rate again, now that the answers are done: the mean of the two is what is
    # subtracted, so a periodic job that happened to fall in one window weighs half.
    row.idle_rate = (row.idle_rate + await idle_cpu_rate(bot, rig.probe)) / 2
    row.cpu_net = max(0.0, row.cpu - row.idle_rate * row.wall)
    if row.bench_cpu > 0.8 * row.wall:
        row.notes.append("the bench process was busy: the fakes may have set the pace")
    bench_lag = percentile(row.bench_lags, 0.99)
    if bench_lag is not None and bench_lag > 0.05:
        row.notes.append(f"bench timer lag p99 {bench_lag * 1000:.0f} ms")
    worst = max(row.bench_lags, default=0.0)
    if worst > 0.1:
        row.notes.append(f"bench timer lag max {worst * 1000:.0f} ms")


# -- the run ----------------------------------------------------------------------------------


def shapes(args: argparse.Namespace) -> list[Shape]:
    rows = [Shape("answers", n, min(n, args.channels), LONG_CHUNK_DELAY) for n in args.concurrent]
    rows += [Shape("cpu", n, min(n, args.channels), 1 / CPU_RATE) for n in args.cpu]
    return rows


def print_settings(options: Options, logs: Path, open_files: int) -> None:
    settings = shown_settings(BOT_SETTINGS | options.bot_env)
    long_chunks = len(long_answer(0, options.seconds))
    cpu_chunks = len(cpu_answer(0))
    print("$ python -m bench.capacity " + shlex.join(sys.argv[1:]))
    print(
        f"answers rows: {long_chunks} chunks {LONG_CHUNK_DELAY}s apart "
        f"({(long_chunks - 1) * LONG_CHUNK_DELAY:.1f}s a stream); cpu rows: "
        f"{CPU_CHARACTERS} characters in {cpu_chunks} chunks of {CPU_CHUNK}, "
        f"{CPU_RATE:.0f} a second; fake Slack without rate limits"
    )
    print("bot settings: " + " ".join(f"{k}={v}" for k, v in settings.items()))
    timeout = "3 x stream + 60s" if options.row_timeout is None else f"{options.row_timeout}s"
    print(
        f"row timeout: {timeout}; open files: {open_files}; Redis {REDIS_URL}; bot logs in {logs}"
    )
    print(HEADER, flush=True)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parse.add_argument("--concurrent", type=int, nargs="*", default=[100, 500, 1000])
    parse.add_argument("--cpu", type=int, nargs="*", default=[1, 20, 100])
    parse.add_argument("--seconds", type=float, default=60.0, help="length of a long answer")
    parse.add_argument("--channels", type=int, default=50)
    parse.add_argument("--row-timeout", type=float, help="seconds (default 3 x stream + 60)")
    parse.add_argument(
        "--idle-stop",
        type=float,
        default=30.0,
        help="end a row after this many seconds with no Slack call and no stream open",
    )
    parse.add_argument("--bot-env", action="append", default=[], metavar="KEY=VALUE")
    return parse


async def main(argv: Sequence[str] | None = None) -> int:
    parse = parser()
    args = parse.parse_args(argv)
    sizes = [*args.concurrent, *args.cpu]
    if not (
        sizes
        and 1 <= min(sizes) <= max(sizes) <= MAX_QUESTIONS
        and 1 <= args.channels
        and LONG_CHUNK_DELAY <= args.seconds <= MAX_SECONDS
    ):
        parse.error(
            f"sizes 1..{MAX_QUESTIONS} (at least one row), --channels 1 or more, "
            f"--seconds {LONG_CHUNK_DELAY}..{MAX_SECONDS}"
        )
    options = Options(
        seconds=args.seconds,
        channels=args.channels,
        row_timeout=args.row_timeout,
        idle_stop=args.idle_stop,
        bot_env=parse_env(args.bot_env),
    )
    if not await redis_reachable():
        return 2
    open_files = raise_open_files_limit()
    logs = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    print_settings(options, logs, open_files)
    stop_on_signals(asyncio.current_task())
    for shape in shapes(args):
        print(render(await run_row(shape, options, logs)), flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
