"""Every CustomGPT failure ends as a clear notice in the reply, partial text kept."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis

from bot.slack_format import TYPING_MARKER
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]


def reply_in(slack: FakeSlack, ts: str) -> FakeMessage:
    (reply,) = slack.thread("C1", ts)
    return reply


def assert_no_secret(slack: FakeSlack) -> None:
    for message in slack.messages:
        for text, blocks in message.edits:
            everything = f"{text} {blocks}"
            assert "test-key" not in everything and "xoxb" not in everything
            assert "Traceback" not in everything


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (404, None, "was not found"),
        (429, 30, "run out of query credits"),
        (500, None, "CustomGPT had a problem (error 500)"),
        (503, None, "CustomGPT had a problem (error 503)"),
        (400, None, "refused the question (error 400"),
    ],
)
async def test_customgpt_http_errors_become_a_message_in_the_reply(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    status: int,
    retry_after: int | None,
    expected: str,
) -> None:
    customgpt.queue_answer([], error_status=status, retry_after=retry_after)
    ts = await bot.mention("Will this work?")
    await bot.idle()

    reply = reply_in(slack, ts)
    assert expected in reply.text
    assert TYPING_MARKER not in reply.text
    assert customgpt.prompts() == ["Will this work?"]
    assert_no_secret(slack)


async def test_an_invalid_customgpt_key_says_so(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(customgpt_api_key="revoked-key")
    ts = await bot.mention("hello?")
    await bot.idle()

    reply = reply_in(slack, ts)
    assert "CustomGPT key is invalid" in reply.text
    assert "revoked-key" not in str(reply.edits)


async def test_an_unknown_project_says_how_to_fix_it(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(customgpt_project_id="999")
    ts = await bot.mention("hello?")
    await bot.idle()

    text = reply_in(slack, ts).text
    assert "`999`" in text and "not found" in text and "/customgpt use" in text


async def test_a_cut_stream_keeps_the_partial_answer_and_sends_the_prompt_once(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(["The first part ", "and the second ", "never arrives"], cut_after=2)
    ts = await bot.mention("Tell me everything")
    await bot.idle()

    reply = reply_in(slack, ts)
    assert reply.text.startswith("The first part and the second")
    assert "cut off" in reply.text
    assert TYPING_MARKER not in reply.text
    assert customgpt.prompts() == ["Tell me everything"]


async def test_an_error_frame_mid_stream_keeps_the_text_and_shows_the_error(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(
        ["Partial ", "answer"], stream_error_after=2, stream_error_message="model <overloaded>"
    )
    ts = await bot.mention("q")
    await bot.idle()

    text = reply_in(slack, ts).text
    assert text.startswith("Partial answer")
    assert "CustomGPT reported an error: model &lt;overloaded&gt;" in text


async def test_silence_before_the_first_chunk_ends_with_a_notice(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(customgpt_first_chunk_timeout=0.2)
    held = customgpt.queue_answer(["too late"], hold_after=0)
    ts = await bot.mention("anyone?")
    await bot.idle()
    held.release.set()

    assert "didn't start answering in time" in reply_in(slack, ts).text
    assert customgpt.prompts() == ["anyone?"]


async def test_sse_frames_without_event_lines_and_noise_are_understood(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(
        [],
        raw_frames=[
            ": keep-alive comment\n\n",
            'data: {"status":"start","prompt":"q"}\r\n\r\n',
            'data: {"status":"progress","message":""}\n\n',
            'data: {"status":"thinking"}\n\n',
            'data: {"status":"progress","message":"Data-only "}\n\n',
            'event: progress\ndata: {"status":"progress","message":"frames work."}\n\n',
            'data: {"status":"finish","id":7,"session_id":"s","citations":[]}\n\n',
        ],
    )
    ts = await bot.mention("q")
    await bot.idle()

    reply = reply_in(slack, ts)
    assert reply.text.startswith("Data-only frames work.")
    assert customgpt.prompts() == ["q"]


async def test_a_lone_surrogate_or_an_endless_id_from_customgpt_still_ends_the_answer(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    """JSON may escape half of a UTF-16 pair (`\\ud800`), which no UTF-8 encoder takes, and
    an id may run past the 4,300 digits Python turns into an int: either once ended the
    answer (the first left the reply searching forever). The text shows U+FFFD instead."""
    endless = "1" * 5000
    customgpt.queue_answer(
        [],
        raw_frames=[
            'data: {"status":"progress","message":"see http://x.example \\ud800 here, "}\n\n',
            'data: {"status":"progress","message":"and \\udfff\\ud83d\\ude00 there."}\n\n',
            f'data: {{"status":"finish","id":"{endless}","session_id":"s","citations":[]}}\n\n',
        ],
    )
    ts = await bot.mention("q")
    await bot.idle()

    reply = reply_in(slack, ts)
    assert final_text(reply) == "see http://x.example \ufffd here, and \ufffd\U0001f600 there."
    assert await redis_client.smembers(f"cgpt:{bot.team}:inflight") == set()


async def test_an_empty_answer_is_never_an_empty_reply(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer([])
    ts = await bot.mention("q")
    await bot.idle()

    assert "empty answer" in reply_in(slack, ts).text


async def test_a_deleted_conversation_starts_a_new_one_once_and_says_so(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    customgpt.queue_answer(["First answer."])
    ts = await bot.mention("first")
    await bot.idle()
    key = f"cgpt:{bot.team}:conv:C1:{ts}"
    old = json.loads(await redis_client.get(key) or "{}")["session_id"]
    del customgpt.conversations[old]  # deleted in CustomGPT; the thread still maps to it

    customgpt.queue_answer(["Second answer."])
    await bot.mention("second", thread_ts=ts)
    await bot.idle()

    reply = slack.thread("C1", ts)[-1]
    assert final_text(reply) == "Second answer."
    assert "starts a new one" in reply.text
    new = json.loads(await redis_client.get(key) or "{}")["session_id"]
    assert new != old and new in customgpt.conversations
    assert customgpt.prompts(new) == ["second"]


async def test_a_deleted_project_behind_a_conversation_is_reported(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(["First answer."])
    ts = await bot.mention("first")
    await bot.idle()
    customgpt.projects.clear()  # the project itself is gone

    await bot.mention("second", thread_ts=ts)
    await bot.idle()

    reply = slack.thread("C1", ts)[-1]
    assert "was not found" in reply.text
    assert len(customgpt.conversations) == 1  # no new conversation for a project that is gone
