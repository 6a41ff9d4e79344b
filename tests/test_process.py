"""The bot as a real process: HTTP on PORT, a health check, an answered mention, a clean stop on
SIGTERM; and what a process killed with SIGKILL leaves behind in Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

import aiohttp
import redis.asyncio as redis

from bot import keys
from bot.slack_format import TYPING_MARKER
from bot.store import RedisStore
from tests.conftest import PROJECT_ID, REDIS_URL
from tests.driver import RunningBot, SlackSender
from tests.fakes.customgpt import FIRST_CREATED_PROJECT_ID, FakeCustomGPT, ScriptedAnswer
from tests.fakes.slack import FakeSlack
from tests.polling import until
from tests.views import final_text

SECRET = "process-signing-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_env(
    slack: FakeSlack, customgpt: FakeCustomGPT, port: int, redis_url: str | None
) -> dict[str, str]:
    """A bot process's environment: the fake servers, and Redis (None: the in-process store)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CUSTOMGPT_"))}
    env.pop("REDIS_URL", None)
    env |= {
        "PYTHONPATH": os.getcwd(),
        "PORT": str(port),
        "SLACK_BOT_TOKEN": "xoxb-process",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "CUSTOMGPT_API_KEY": "test-key",
        "CUSTOMGPT_API_URL": customgpt.api_url,
        "CUSTOMGPT_PROJECT_ID": str(PROJECT_ID),
        "SLACK_UPDATE_INTERVAL": "0",
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env


async def start_bot_process(env: dict[str, str], log: list[str]) -> asyncio.subprocess.Process:
    """`python -m bot`, once it says it listens (its stderr lines so far go to `log`)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(20):
            while not any("listening on port" in line for line in log):
                line = (await process.stderr.readline()).decode()
                assert line, f"the bot exited early: {log}"
                log.append(line)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process


async def ask_a_bot_process(
    slack: FakeSlack, customgpt: FakeCustomGPT, team: str, answer: ScriptedAnswer
) -> tuple[asyncio.subprocess.Process, str]:
    """A bot process (with Redis) asked one question, once CustomGPT holds its `answer` half
    way; returns the process (the caller kills it) and the question's ts."""
    port = free_port()
    process = await start_bot_process(bot_env(slack, customgpt, port, REDIS_URL), [])
    try:
        async with aiohttp.ClientSession() as session:
            ts = await SlackSender(f"http://127.0.0.1:{port}", SECRET, team, session).mention(
                "Will you finish?"
            )
        async with asyncio.timeout(20):
            await answer.reached_hold.wait()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process, ts


async def test_the_bot_process_serves_slack_over_http_and_stops_cleanly(
    slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    port = free_port()
    log: list[str] = []
    # No REDIS_URL: the in-process store, announced once.
    process = await start_bot_process(bot_env(slack, customgpt, port, None), log)
    assert process.stderr is not None
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert (health.status, await health.json()) == (200, {"ok": True})
            async with session.post(f"http://127.0.0.1:{port}/healthz") as refused:
                assert refused.status == 405
            sender = SlackSender(f"http://127.0.0.1:{port}", SECRET, team, session)
            ts = await sender.mention("Are you a real process?")
            await slack.wait_for(
                lambda: (
                    bool(slack.thread("C1", ts))
                    and final_text(slack.thread("C1", ts)[0])
                    == "You asked: Are you a real process?"
                )
            )
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest = (await process.stderr.read()).decode()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    output = "".join(log) + rest
    assert code == 0, output
    assert output.count("REDIS_URL is not set: using an in-process store") == 1
    assert "Traceback" not in output and "xoxb-process" not in output
    # Slack's requests and a refused probe are in the access log; the answered probe is not.
    assert '"POST /slack/events' in output and '"POST /healthz' in output
    assert '"GET /healthz' not in output


async def test_a_bot_killed_mid_answer_frees_its_thread_after_a_short_lease(
    slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis, team: str
) -> None:
    answer = customgpt.queue_answer(["Half an ans", "wer"], hold_after=1)
    process, ts = await ask_a_bot_process(slack, customgpt, team, answer)
    # Answering: the thread's lock is held. SIGKILL: no release, no goodbye.
    process.kill()
    await process.wait()

    left = await redis_client.pttl(keys.thread_lock(team, "C1", ts))
    # The next question in this thread waits at most this long, not ten minutes.
    assert 0 < left <= 30_000


HOLDER = """
import asyncio, sys
from bot.slack_format import TYPING_MARKER
from bot.store import RedisStore

async def main() -> None:
    store = RedisStore.from_url(sys.argv[1])
    async with store.lock(sys.argv[2], lease=float(sys.argv[3]), wait=5):
        print("held", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_lock_holder_killed_without_releasing_frees_the_lock_after_its_lease(
    redis_client: redis.Redis, team: str
) -> None:
    key, lease = keys.thread_lock(team, "C1", "killed"), 1.0
    env = os.environ | {"PYTHONPATH": os.getcwd()}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        REDIS_URL,
        key,
        str(lease),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            assert await process.stdout.readline() == b"held\n"
        token = await redis_client.get(key)
        loop = asyncio.get_running_loop()
        lapsed_by = loop.time() + 2 * lease

        async def alive_past_its_lease() -> bool:
            assert await redis_client.get(key) == token  # renewed by the living holder
            return loop.time() > lapsed_by

        await until(alive_past_its_lease)
    finally:
        process.kill()
        await process.wait()

    async def freed() -> bool:
        return not await redis_client.exists(key)

    await until(freed)
    async with RedisStore(redis_client).lock(key, lease=5, wait=0):
        assert await redis_client.get(key) not in (None, token)


async def test_a_bot_killed_while_watching_indexing_leaves_a_short_owner_lease(
    slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis, team: str
) -> None:
    customgpt.default_index_steps = [(3, 1, 0)] * 100  # still indexing when the bot dies
    owner = keys.watch_owner(team, str(FIRST_CREATED_PROJECT_ID))
    port = free_port()
    process = await start_bot_process(bot_env(slack, customgpt, port, REDIS_URL), [])
    try:
        async with aiohttp.ClientSession() as session:
            sender = SlackSender(f"http://127.0.0.1:{port}", SECRET, team, session)
            status, _ = await sender.command(
                "create Acme https://acme.example/sitemap.xml",
                response_url=slack.response_url("create"),
            )
            assert status == 200

        async def watching() -> bool:
            return bool(await redis_client.exists(owner))

        await until(watching)
    finally:
        process.kill()  # SIGKILL: the watch's owner lock is never given back
        await process.wait()

    left = await redis_client.pttl(owner)
    # Another process takes the watch over when this runs out, not five minutes later.
    assert 0 < left <= 30_000


async def test_a_reply_left_typing_by_a_killed_process_is_finished_by_the_next_one(
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
    start_bot: Callable[..., Awaitable[RunningBot]],
) -> None:
    answer = customgpt.queue_answer(["Half an answer", " and the rest"], hold_after=1)
    process, ts = await ask_a_bot_process(slack, customgpt, team, answer)
    try:
        # The journal has the text shown so far (flushed within a second).
        entry = keys.inflight(team, "C1", ts)
        await until(lambda: _has_text(redis_client, entry, "Half an answer"))
    finally:
        process.kill()  # SIGKILL: the reply keeps its typing marker
        await process.wait()
    (reply,) = slack.thread("C1", ts)
    assert TYPING_MARKER in final_text(reply)

    # The next process (another replica would do the same) finishes what the dead one left.
    bot = await start_bot()
    await until(lambda: _finished(slack, "C1", ts), within=60)

    (reply,) = slack.thread("C1", ts)
    assert final_text(reply).startswith("Half an answer")
    assert TYPING_MARKER not in final_text(reply) and "restarted" in reply.text
    # The journal lets go of the entry once Slack has answered the edit, which the fake
    # records a moment before the bot reads its answer.
    await until(lambda: _gone(redis_client, entry))
    await bot.close()


async def _gone(client: redis.Redis, key: str) -> bool:
    return await client.get(key) is None


async def _has_text(client: redis.Redis, key: str, text: str) -> bool:
    raw = await client.get(key)
    return raw is not None and text in raw


async def _finished(slack: FakeSlack, channel: str, ts: str) -> bool:
    replies = slack.thread(channel, ts)
    return bool(replies) and TYPING_MARKER not in final_text(replies[0])
