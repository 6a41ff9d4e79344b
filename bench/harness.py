"""What the benchmarks that run the bot as its own process share: starting and stopping
`python -m bot` with a clean environment, the bot's Redis keys, and reading what a person in
the thread sees (is the answer there, whole and finished?).

Both `bench.burst` and `bench.capacity` use it; the bot is configured only through its
environment, as in production, and talks to the fakes in the benchmark's process.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import math
import os
import re
import resource
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as redis

from bot import slack_format
from tests.fakes.customgpt import FakeCustomGPT, ScriptedAnswer
from tests.fakes.slack import FakeMessage, FakeSlack

REPO_ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
CGPT_KEY = "bench-key"
PROJECT_ID = 1
#: The bot's Slack budgets raised out of the way, for benchmarks that measure the bot itself.
UNLIMITED_BUDGETS = {
    "SLACK_UPDATE_BUDGET": "100000",
    "SLACK_UPDATE_BURST": "100000",
    "SLACK_POST_BUDGET": "100000",
    "SLACK_POST_BURST": "100000",
    "SLACK_WORKSPACE_POST_BUDGET": "100000",
    "SLACK_WORKSPACE_POST_BURST": "100000",
}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

#: A word of a scripted answer (`a3w07`): answer 3, word 7. No two answers share one, so a
#: reply is checked word by word.
TOKEN = re.compile(r"\ba(\d+)w(\d+)\b")


# -- what Slack shows ---------------------------------------------------------------------


def visible(text: str, blocks: list[dict[str, Any]] | None) -> str:
    """What a reader sees of one version of a message: its text blocks, else its text."""
    shown = []
    for block in blocks or []:
        if block.get("type") == "section":
            body = block.get("text")
            if isinstance(body, dict):
                shown.append(str(body.get("text", "")))
            shown.extend(str(f.get("text", "")) for f in block.get("fields") or [])
        elif block.get("type") == "markdown":
            shown.append(str(block.get("text", "")))
    return "\n".join(shown) if shown else text


def has_feedback(blocks: list[dict[str, Any]] | None) -> bool:
    """Feedback buttons: our own 👍/👎 actions, or Slack's native feedback_buttons."""
    for block in blocks or []:
        for element in block.get("elements") or []:
            if not isinstance(element, dict):
                continue
            if element.get("type") == "feedback_buttons":
                return True
            if element.get("type") == "button" and "feedback" in str(element.get("action_id")):
                return True
    return False


def is_complete(replies: list[FakeMessage], answer: ScriptedAnswer) -> bool:
    """The answer stands finished in the thread: every word of it in order across the
    replies as they are now, no typing marker left, feedback buttons on the last reply."""
    if not replies or answer.outcome != "finished":
        return False
    if any(slack_format.TYPING_MARKER in m.text + json.dumps(m.blocks) for m in replies):
        return False
    if not has_feedback(replies[-1].blocks):
        return False
    expected = [match.group(0) for match in TOKEN.finditer(answer.text)]
    prefix = expected[0].split("w")[0] + "w" if expected else ""
    words = [
        match.group(0)
        for m in replies
        for match in TOKEN.finditer(visible(m.text, m.blocks))
        if match.group(0).startswith(prefix)
    ]
    return words == expected


# -- the bot as processes -------------------------------------------------------------------

_started_pids: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort (an exception or Ctrl-C past every `finally`): no bot outlives the run."""
    for pid in list(_started_pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raise_open_files_limit() -> int:
    """Lift this process's open-file limit to its hard limit (a thousand answers hold a
    thousand sockets or more); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _raise_in_child() -> None:
    raise_open_files_limit()


class BotProcess:
    """One `python -m bot`, its output in a log file, stopped with SIGTERM (then SIGKILL).

    `many_files` starts it with its open-file limit raised to the hard limit."""

    def __init__(self, env: dict[str, str], log_path: Path, *, many_files: bool = False) -> None:
        self.env = env
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.many_files = many_files
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the bot is not started")
        return self.process.pid

    async def start(self, session: aiohttp.ClientSession) -> None:
        extra: dict[str, Any] = {"preexec_fn": _raise_in_child} if self.many_files else {}
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                env=self.env,
                cwd=tempfile.gettempdir(),  # no .env of the developer's is picked up
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches us; we stop the bot ourselves
                **extra,
            )
        _started_pids.add(self.process.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{self.url}/healthz") as health:
                    if health.status == 200:
                        return
            await asyncio.sleep(0.1)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the bot on port {self.port} did not become healthy:\n{tail}")

    @property
    def exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        finally:
            _started_pids.discard(process.pid)


def clean_env(slack: FakeSlack, cgpt: FakeCustomGPT, settings: Mapping[str, str]) -> dict[str, str]:
    """The bot's whole configuration, from a clean slate (nothing of ours leaks in): the
    fakes, Redis, then `settings` (later keys win)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "CUSTOMGPT_")) and k not in ("REDIS_URL", "PORT")
    }
    env |= {
        "PYTHONPATH": str(REPO_ROOT),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "CUSTOMGPT_API_KEY": CGPT_KEY,
        "CUSTOMGPT_API_URL": cgpt.api_url,
        "CUSTOMGPT_PROJECT_ID": str(PROJECT_ID),
        "REDIS_URL": REDIS_URL,
    }
    return env | dict(settings)


def shown_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """Settings fit to print: anything named like a token or a key left out."""
    return {k: v for k, v in settings.items() if "TOKEN" not in k and "KEY" not in k}


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--bot-env wants KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


async def delete_team_keys(team: str) -> None:
    """Every key of the row's workspace, with or without a `{team}` hash tag."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for pattern in (f"cgpt:{team}:*", f"cgpt:{{{team}}}:*"):
            keys = [k async for k in client.scan_iter(match=pattern, count=500)]
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


async def redis_reachable() -> bool:
    """Whether Redis answers; says why on stderr when not."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()  # type: ignore[misc]  # redis-py types ping as sync or async
    except redis.ConnectionError as error:
        print(f"Redis is not reachable at {REDIS_URL}: {error}", file=sys.stderr)
        return False
    finally:
        await client.aclose()
    return True


def stop_on_signals(task: asyncio.Task[Any] | None) -> None:
    """Ctrl-C or SIGTERM cancels the run, so every `finally` stops its bots and deletes its
    keys (even where a shell started us with SIGINT ignored)."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank `p` quantile (0..1) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def run_main(main: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """A benchmark's entry point: its exit code, or 130 when interrupted (its bots are stopped
    and its keys deleted on the way out)."""
    try:
        sys.exit(asyncio.run(main()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: bots stopped, keys deleted", file=sys.stderr)
        sys.exit(130)
