"""What CustomGPT's rough edges do to an answer, end to end: bad bytes and huge frames in the
stream, a last frame without its blank line, ids in every numeric form, exhausted query
credits, the multipart project form, the prompt limit, and the two answer modes asking alike.
Observed where a person or CustomGPT would see it: the Slack thread, the requests the fake
CustomGPT received, Redis, and the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis

from bot.slack_format import TYPING_MARKER
from tests.clocks import FastClock
from tests.conftest import PROJECT_ID
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.test_answer_presentation import blocks_of, click
from tests.test_commands import PROGRESS, SITEMAP, run, status_message
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]
UNEXPECTED = "Something went wrong on my side"


def progress(text: str) -> bytes:
    return b'data: {"status":"progress","message":"' + text.encode() + b'"}\n\n'


def finish(citations: str = "[]", message_id: int = 7) -> bytes:
    """A finish frame without its trailing blank line (callers add what they test)."""
    head = f'data: {{"status":"finish","id":{message_id},"session_id":"s","citations":'
    return (head + citations + "}").encode()


def the_reply(slack: FakeSlack, ts: str) -> FakeMessage:
    (reply,) = slack.thread("C1", ts)
    return reply


def sources_of(reply: FakeMessage) -> str:
    return " ".join(e["text"] for block in blocks_of(reply, "context") for e in block["elements"])


# -- the stream ------------------------------------------------------------------------------


async def test_invalid_utf8_in_one_frame_costs_only_those_bytes(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(
        [],
        raw_frames=[
            progress("Before "),
            b'data: {"status":"progress","message":"caf\xe9 \xff"}\n\n',
            progress(" after."),
            finish() + b"\n\n",
        ],
    )
    ts = await bot.mention("q")
    await bot.idle()

    reply = the_reply(slack, ts)
    assert final_text(reply) == "Before caf\ufffd \ufffd after."
    assert UNEXPECTED not in reply.text and TYPING_MARKER not in reply.text
    assert blocks_of(reply, "actions")  # a complete answer: the feedback buttons are there


async def test_a_frame_over_a_mebibyte_is_skipped_the_rest_kept_and_the_gap_said(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.add_citation(PROJECT_ID, 1, "Guide", "https://acme.test/guide")
    customgpt.queue_answer(
        [],
        raw_frames=[
            progress("Kept "),
            progress("z" * 5_000_000),
            progress("and kept."),
            finish("[1]") + b"\n\n",
        ],
    )
    ts = await bot.mention("q")
    await bot.idle()

    reply = the_reply(slack, ts)
    assert final_text(reply) == "Kept and kept."
    assert "1 part of CustomGPT's answer was too large to read" in reply.text
    assert "<https://acme.test/guide|Guide>" in sources_of(reply)
    assert "zzzz" not in reply.text and UNEXPECTED not in reply.text


@pytest.mark.parametrize("ending", [b"\n", b""], ids=["one-line-break", "no-line-break"])
async def test_a_last_finish_without_its_blank_line_still_completes_the_answer(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, ending: bytes
) -> None:
    customgpt.add_citation(PROJECT_ID, 1, "Guide", "https://acme.test/guide")
    customgpt.queue_answer([], raw_frames=[progress("A complete answer."), finish("[1]") + ending])
    ts = await bot.mention("q")
    await bot.idle()

    reply = the_reply(slack, ts)
    assert final_text(reply) == "A complete answer."
    assert "cut off" not in reply.text
    assert "<https://acme.test/guide|Guide>" in sources_of(reply)
    assert blocks_of(reply, "actions")
    assert customgpt.prompts() == ["q"]


async def test_streamed_and_whole_answers_are_asked_with_the_same_headers(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    streaming = await start_bot()
    whole = await start_bot(customgpt_stream=False)
    await streaming.mention("q", channel="C1")
    await streaming.idle()
    await whole.mention("q", channel="C2")
    await whole.idle()

    asked = [r for r in customgpt.requests if r.path.endswith("/messages")]
    assert [r.query["stream"] for r in asked] == ["1", "0"]
    assert [r.headers.get("cache-control") for r in asked] == ["no-cache", "no-cache"]


# -- ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_numeric_ids_in_any_form_are_one_id_in_urls_and_cache_keys(
    start_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    stream: bool,
) -> None:
    bot = await start_bot(customgpt_stream=stream)
    customgpt.add_citation(PROJECT_ID, 12061, "Refunds", "https://acme.test/refunds")
    customgpt.add_citation(PROJECT_ID, 12062, "Plans", "https://acme.test/plans")
    customgpt.queue_answer(
        ["Answer."],
        citations=[12061, "12061.0", 12061.0, "12062.0"],
        message_id=555,
        message_id_form="string",
    )
    ts = await bot.mention("q")
    await bot.idle()
    reply = the_reply(slack, ts)
    await bot.action(click(reply, "feedback_liked", slack.response_url("like")))
    await bot.idle()

    sources = sources_of(reply)
    assert sources.count("Refunds") == 1 and "Plans" in sources
    lookups = sorted(r.path for r in customgpt.requests if "/citations/" in r.path)
    assert lookups == [f"/projects/{PROJECT_ID}/citations/{n}" for n in (12061, 12062)]
    cached = await redis_client.get(f"cgpt:{bot.team}:citation:{PROJECT_ID}:12061")
    assert json.loads(cached) == {"title": "Refunds", "url": "https://acme.test/refunds"}
    assert [(f[2], f[3]) for f in customgpt.feedback] == [(555, "liked")]


# -- exhausted query credits -----------------------------------------------------------------

CUSTOMGPT_SAYS = "Query credits <exhausted> for key test-key, Bearer abc123def456 xoxb-1-2-abc"


async def test_exhausted_credits_are_said_in_customgpts_words_escaped_and_redacted(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer([], error_status=429, error_message=CUSTOMGPT_SAYS, retry_after=30)
    ts = await bot.mention("q")
    await bot.idle()

    text = the_reply(slack, ts).text
    assert "run out of query credits" in text
    assert "whoever manages the CustomGPT plan" in text
    assert "Query credits &lt;exhausted&gt; for key [redacted], [redacted] [redacted]" in text
    for secret in ("test-key", "abc123def456", "xoxb"):
        assert secret not in text
    assert "busy" not in text and "30 seconds" not in text


async def test_exhausted_credits_are_logged_once_not_per_question(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(3):
        customgpt.queue_answer([], error_status=429, error_message="Resource Exhausted")
        await bot.mention("q")
        await bot.idle()

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "CustomGPT refused a request (429): query credits exhausted? It said: Resource Exhausted"
    ]
    assert len([m for m in slack.messages if "query credits" in m.text]) == 3


async def test_a_watch_refused_for_credits_until_its_deadline_says_why(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock(), customgpt_index_timeout=120.0)
    customgpt.default_index_steps = PROGRESS
    customgpt.fail_next(r"^/projects/\d+/stats$", 429, "Resource Exhausted", times=100)

    await run(bot, slack, f"create Acme {SITEMAP}")

    text = final_text(status_message(slack))
    assert "still isn't ready" in text
    assert "run out of query credits (CustomGPT said: “Resource Exhausted”)" in text


# -- projects and prompts --------------------------------------------------------------------


async def test_a_project_is_created_with_a_multipart_form(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.default_index_steps = PROGRESS

    await run(bot, slack, f"create Acme {SITEMAP}")

    (created,) = [r for r in customgpt.requests if (r.method, r.path) == ("POST", "/projects")]
    assert created.status == 201
    assert created.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert created.body == {"project_name": "Acme", "sitemap_path": SITEMAP}


async def test_a_question_over_the_prompt_limit_is_answered_with_the_limit_and_its_length(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    long_ts = await bot.mention("x" * 8001)
    await bot.idle()
    before = len(customgpt.requests)
    limit_ts = await bot.mention("y" * 8000)
    await bot.idle()

    text = the_reply(slack, long_ts).text
    assert "8,001 characters" in text and "at most 8,000" in text
    assert TYPING_MARKER not in text
    # Refused before asking: not even a conversation was created for it.
    assert [r.path for r in customgpt.requests[:before] if r.method == "POST"] == []
    assert customgpt.prompts() == ["y" * 8000]
    assert customgpt.served[-1].outcome == "finished"  # the limit itself is fine
    assert "8,000" not in slack.thread("C1", limit_ts)[-1].text
