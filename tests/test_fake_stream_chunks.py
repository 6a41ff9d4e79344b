"""The fake Slack holds chat.*Stream `chunks` and the status line to Slack's documented rules,
or stricter: only the documented chunk types and fields, a stream kept to the form it started
with, the sizes, `task_display_mode` on the start only, loading messages few and short."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import MarkdownTextChunk, PlanUpdateChunk, TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from tests import test_fakes
from tests.fakes.slack import FakeSlack

THREAD = "1700000000.000001"
STEP = {"type": "task_update", "id": "search", "title": "Searching…", "status": "in_progress"}


# The bare fake Slack and slack_sdk's client on it, of tests/test_fakes.py (fixtures are found
# by name in this module).
slack = test_fakes.slack
client = test_fakes.client


async def start(client: AsyncWebClient, **params: Any) -> str:
    answer = await client.api_call(
        "chat.startStream",
        json={
            "channel": "D1",
            "thread_ts": THREAD,
            "recipient_team_id": "T1",
            "recipient_user_id": "U1",
            **params,
        },
    )
    return str(answer["ts"])


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as refused:
        await call
    return str(refused.value.response["error"])


async def test_slack_sdk_chunks_stream_a_step_and_text_as_documented(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    # slack_sdk's own chunk models, through its own methods: what the fake accepts.
    started = await client.chat_startStream(
        channel="D1",
        thread_ts=THREAD,
        recipient_team_id="T1",
        recipient_user_id="U1",
        task_display_mode="plan",
        chunks=[
            PlanUpdateChunk(title="Answering"),
            TaskUpdateChunk(id="t1", title="Searching", status="in_progress", details="Docs"),
        ],
    )
    ts = str(started["ts"])
    await client.chat_appendStream(
        channel="D1",
        ts=ts,
        chunks=[
            TaskUpdateChunk(
                id="t1",
                title="Searching",
                status="complete",
                output="3 pages",
                sources=[{"type": "url", "url": "https://example.com", "text": "Example"}],
            ),
            MarkdownTextChunk(text="The answer"),
        ],
    )
    await client.chat_stopStream(channel="D1", ts=ts, chunks=[MarkdownTextChunk(text=".")])

    (message,) = slack.streams()
    assert message.text == "The answer." and not message.streaming
    assert message.task_display_mode == "plan" and message.plan_title == "Answering"
    assert message.task_log == [("t1", "in_progress"), ("t1", "complete")]
    assert message.tasks["t1"]["output"] == "3 pages"


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "thinking", "text": "hm"},  # no such type
        {"text": "no type"},
        {"type": "markdown_text"},  # its text missing
        {"type": "markdown_text", "text": ""},
        {"type": "markdown_text", "text": "x", "title": "not a field of it"},
        {**STEP, "status": "done"},  # not one of the four
        {key: value for key, value in STEP.items() if key != "id"},
        {**STEP, "output": "o" * 257},
        {**STEP, "details": "d" * 257},
        {**STEP, "title": "t" * 257},
        {**STEP, "sources": [{"type": "url", "url": "https://x.example"}]},  # no text
        {**STEP, "sources": [{"type": "file", "url": "u", "text": "t"}]},
        {"type": "plan_update", "title": ""},
        {"type": "plan_update", "title": "p", "status": "complete"},
        {"type": "blocks", "blocks": []},
    ],
)
async def test_slack_refuses_a_malformed_chunk(client: AsyncWebClient, chunk: Any) -> None:
    assert await error_of(start(client, chunks=[chunk])) == "invalid_chunks"


async def test_slack_refuses_a_blocks_chunk_with_a_block_it_refuses(
    client: AsyncWebClient,
) -> None:
    empty_section = {"type": "section", "text": {"type": "mrkdwn", "text": ""}}
    chunk = {"type": "blocks", "blocks": [empty_section]}
    assert await error_of(start(client, chunks=[chunk])) == "invalid_blocks"


async def test_slack_refuses_chunks_that_are_not_a_short_list(client: AsyncWebClient) -> None:
    assert await error_of(start(client, chunks=[])) == "invalid_chunks"
    assert await error_of(start(client, chunks=STEP)) == "invalid_chunks"
    many = [{"type": "markdown_text", "text": "x"}] * 51
    assert await error_of(start(client, chunks=many)) == "invalid_chunks"


async def test_slack_keeps_a_stream_to_the_form_it_started_with(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    text = {"type": "markdown_text", "text": "words"}
    both = start(client, markdown_text="a", chunks=[text])
    assert await error_of(both) == "invalid_arguments"

    by_chunks = await start(client, chunks=[STEP])
    append = client.api_call(
        "chat.appendStream", json={"channel": "D1", "ts": by_chunks, "markdown_text": "plain"}
    )
    assert await error_of(append) == "streaming_mode_mismatch"
    stop = client.api_call(
        "chat.stopStream", json={"channel": "D1", "ts": by_chunks, "markdown_text": "plain"}
    )
    assert await error_of(stop) == "streaming_mode_mismatch"

    by_text = await start(client, markdown_text="plain ")
    append = client.api_call(
        "chat.appendStream", json={"channel": "D1", "ts": by_text, "chunks": [text]}
    )
    assert await error_of(append) == "streaming_mode_mismatch"
    await client.api_call(
        "chat.appendStream", json={"channel": "D1", "ts": by_text, "markdown_text": "more"}
    )
    assert [m.text for m in slack.streams()] == ["", "plain more"]


async def test_slack_holds_chunked_text_to_the_markdown_limits(client: AsyncWebClient) -> None:
    big = [{"type": "markdown_text", "text": "x" * 6_001}] * 2  # 12,002 in one call
    assert await error_of(start(client, chunks=big)) == "msg_too_long"
    ts = await start(client, chunks=[{"type": "markdown_text", "text": "x" * 11_000}])
    more = {"channel": "D1", "ts": ts, "chunks": [{"type": "markdown_text", "text": "y" * 1_001}]}
    assert await error_of(client.api_call("chat.appendStream", json=more)) == "msg_too_long"
    assert await error_of(client.api_call("chat.stopStream", json=more)) == "msg_too_long"


async def test_task_display_mode_is_one_of_two_and_only_starts_a_stream(
    client: AsyncWebClient,
) -> None:
    assert await error_of(start(client, chunks=[STEP], task_display_mode="list")) == (
        "invalid_arguments"
    )
    ts = await start(client, chunks=[STEP], task_display_mode="timeline")
    append = client.api_call(
        "chat.appendStream",
        json={"channel": "D1", "ts": ts, "chunks": [STEP], "task_display_mode": "plan"},
    )
    assert await error_of(append) == "invalid_arguments"


async def test_an_append_must_add_something(client: AsyncWebClient) -> None:
    ts = await start(client, chunks=[STEP])
    empty = client.api_call("chat.appendStream", json={"channel": "D1", "ts": ts})
    assert await error_of(empty) == "invalid_arguments"


@pytest.mark.parametrize(
    "loading",
    [
        [f"line {n}" for n in range(11)],  # more than 10
        ["x" * 101],  # more than one short line
        [""],
        "Searching…",  # not a list
    ],
)
async def test_slack_refuses_loading_messages_beyond_its_rules(
    client: AsyncWebClient, loading: Any
) -> None:
    status = client.api_call(
        "assistant.threads.setStatus",
        json={
            "channel_id": "D1",
            "thread_ts": THREAD,
            "status": "is searching…",
            "loading_messages": loading,
        },
    )
    assert await error_of(status) == "invalid_arguments"


async def test_ten_short_loading_messages_are_taken(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    lines = [f"Step {n}…" for n in range(10)]
    await client.api_call(
        "assistant.threads.setStatus",
        json={
            "channel_id": "D1",
            "thread_ts": THREAD,
            "status": "is busy…",
            "loading_messages": lines,
        },
    )
    assert slack.status_log == [("D1", THREAD, "is busy…", lines)]
