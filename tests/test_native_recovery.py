"""A native stream left open by a process that died is finished by the next one: stopped first
(Slack refuses chat.update on a message still streaming), then given the text the journal
kept and the restart notice, in the same message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict

import aiohttp
import redis.asyncio as redis
from slack_sdk.web.async_client import AsyncWebClient

from bot import keys
from bot.journal import Entry
from bot.slack_format import TYPING_MARKER
from tests.conftest import REDIS_URL
from tests.driver import RunningBot, SlackSender, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.polling import until
from tests.test_process import SECRET, bot_env, free_port, start_bot_process
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]


def calls_on(slack: FakeSlack, ts: str) -> list[tuple[str, str | None]]:
    """(method, error) of every call made on one message, in order."""
    return [(c.method, c.error) for c in slack.calls if c.params.get("ts") == ts]


async def test_a_native_stream_left_open_by_a_killed_process_is_stopped_then_finished(
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
    start_bot: StartBot,
) -> None:
    answer = customgpt.queue_answer(["Half an answer", " and the rest"], hold_after=1)
    port = free_port()
    process = await start_bot_process(bot_env(slack, customgpt, port, REDIS_URL), [])
    thread = next_ts()
    try:
        async with aiohttp.ClientSession() as session:
            sender = SlackSender(f"http://127.0.0.1:{port}", SECRET, team, session)
            question = await sender.message(
                "Will you finish?", channel="D1", channel_type="im", thread_ts=thread
            )
        async with asyncio.timeout(20):
            await answer.reached_hold.wait()
        # The journal knows the text so far and that its message is a stream still open.
        entry = keys.inflight(team, "D1", question)
        await until(lambda: _journaled_open_stream(redis_client, entry, "Half an answer"))
        await slack.wait_for(
            lambda: [m.text for m in slack.thread("D1", thread)] == ["Half an answer"]
        )
    finally:
        process.kill()  # SIGKILL: the stream stays open, nobody stops it
        await process.wait()
    (reply,) = slack.thread("D1", thread)
    assert reply.streaming and reply.text == "Half an answer"
    before = len(calls_on(slack, reply.ts))

    bot = await start_bot()
    await until(lambda: _gone(redis_client, entry), within=60)

    # The same message, stopped, then edited: nothing lost, no second reply.
    assert slack.thread("D1", thread) == [reply]
    assert not reply.streaming
    assert final_text(reply).startswith("Half an answer")
    assert "restarted" in reply.text and TYPING_MARKER not in final_text(reply)
    assert calls_on(slack, reply.ts)[before:] == [("chat.stopStream", None), ("chat.update", None)]
    await bot.close()


async def test_a_native_stream_that_expired_before_recovery_is_finished_by_chat_update(
    start_bot: StartBot, slack: FakeSlack, redis_client: redis.Redis, team: str
) -> None:
    thread, question = next_ts(), next_ts()
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token="xoxb-t", base_url=slack.api_url, session=session)
        started = await client.api_call(
            "chat.startStream",
            json={
                "channel": "D1",
                "thread_ts": thread,
                "markdown_text": "Half an answer",
                "recipient_team_id": team,
                "recipient_user_id": "U1",
            },
        )
    ts = str(started["ts"])
    # A process streamed this answer natively, journaled more text than it had sent, and
    # died; the stream then expired (Slack ends it about five minutes after it started).
    left = Entry(
        team, "D1", thread, question, owner="killed", ts=ts, markdown="Half an answer, and more"
    )
    left.streaming = True
    entry_key = keys.inflight(team, "D1", question)
    await redis_client.set(entry_key, json.dumps(asdict(left)))
    await redis_client.sadd(keys.inflight_index(team), left.member)
    slack.expire_stream("D1", ts)

    await start_bot()
    await until(lambda: _gone(redis_client, entry_key))

    (reply,) = slack.thread("D1", thread)
    assert final_text(reply).startswith("Half an answer, and more") and "restarted" in reply.text
    assert calls_on(slack, ts) == [
        ("chat.stopStream", "message_not_in_streaming_state"),
        ("chat.update", None),
    ]


def test_an_entry_written_by_a_newer_version_is_still_read() -> None:
    # A rolling deploy: a newer process journaled a field this version does not know.
    raw = json.dumps(
        {**asdict(Entry("T1", "C1", None, "1.0", "p", markdown="kept")), "later": True}
    )
    assert Entry.from_json(raw) == Entry("T1", "C1", None, "1.0", "p", markdown="kept")


async def _journaled_open_stream(client: redis.Redis, key: str, text: str) -> bool:
    raw = await client.get(key)
    if raw is None:
        return False
    entry = Entry.from_json(raw)
    return entry.streaming and entry.ts is not None and entry.markdown == text


async def _gone(client: redis.Redis, key: str) -> bool:
    return await client.get(key) is None
