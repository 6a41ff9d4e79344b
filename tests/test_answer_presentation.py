"""Answers people can trust: sources, Slack formatting, long answers split, feedback."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.slack_format import TYPING_MARKER
from tests.conftest import PROJECT_ID
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.views import final_text, shown

StartBot = Callable[..., Awaitable[RunningBot]]


def long_markdown_answer() -> str:
    """About 9,000 characters of Markdown with every construct the converter must handle."""
    parts = [
        "# Overview\n\nThe **refund policy** covers _all_ plans; see [the policy](https://acme.test/refunds).\n",
        "- Monthly plans: 14 days\n- Annual plans: 30 days\n",
        "```python\ndef refund(order):\n    return order.total if order.age < 30 else 0\n```\n",
    ]
    fact = 1
    while sum(len(p) for p in parts) < 9000:
        sentences = " ".join(
            f"Fact {n} explains a detail of the policy & its <exceptions>."
            for n in range(fact, fact + 6)
        )
        parts.append(sentences + "\n")
        if fact % 24 == 1:  # code blocks and links all along, so splits meet them
            # Blank lines inside, as real code has: a paragraph break a split must not take.
            lines = "\n\n".join(f"step_{fact}_{n} = check(order, {n})" for n in range(8))
            parts.append(f"```python\n{lines}\n```\n")
            parts.append(f"See [rule {fact}](https://acme.test/rules/{fact}) for details.\n")
        fact += 6
    parts.append("That is all, <!channel> and <@U999>.\n")
    return "\n".join(parts)


def chunks_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def blocks_of(message: FakeMessage, kind: str) -> list[dict[str, Any]]:
    return [b for b in message.blocks or [] if b.get("type") == kind]


def click(
    reply: FakeMessage,
    action_id: str,
    response_url: str,
    *,
    user: str = "U1",
    value: str | None = None,
) -> dict[str, Any]:
    """A click by `user` on the message as it stands (`value`: what the button carries,
    by default what the message's button holds)."""
    (actions,) = blocks_of(reply, "actions")
    button = next(e for e in actions["elements"] if e["action_id"] == action_id)
    return {
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": reply.channel},
        "container": {"type": "message", "message_ts": reply.ts, "channel_id": reply.channel},
        "message": {"ts": reply.ts, "text": reply.text, "blocks": reply.blocks},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "feedback",
                "value": value or button["value"],
            }
        ],
        "response_url": response_url,
        "trigger_id": "trigger",
    }


def selected_button(message: FakeMessage) -> str | None:
    (actions,) = blocks_of(message, "actions")
    styled = [e["action_id"] for e in actions["elements"] if e.get("style") == "primary"]
    return styled[0] if styled else None


@pytest.fixture
def three_citations(customgpt: FakeCustomGPT) -> list[str]:
    customgpt.add_citation(PROJECT_ID, "12061.0", "Refund policy", "https://acme.test/refunds")
    customgpt.add_citation(PROJECT_ID, "12062.0", "Plans & pricing", "https://acme.test/plans")
    customgpt.add_citation(PROJECT_ID, "12063.0", None, "https://acme.test/faq")
    return ["12061.0", "12062.0", "12063.0"]


async def test_a_long_markdown_answer_with_citations_ends_split_formatted_with_sources_and_feedback(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, three_citations: list[str]
) -> None:
    answer = long_markdown_answer()
    customgpt.queue_answer(chunks_of(answer, 97), citations=three_citations, message_id=555)
    ts = await bot.mention("What is the refund policy?")
    await bot.idle()

    replies = slack.thread("C1", ts)
    assert len(replies) >= 3
    everything = "\n".join(final_text(r) for r in replies)
    for reply in replies:
        assert len(reply.text) < 4000
        assert all(len(b["text"]["text"]) <= 3000 for b in blocks_of(reply, "section"))
        text = final_text(reply)
        assert text.count("```") % 2 == 0  # never split inside a code block
        for block in re.findall(r"```\n(.*?)```", text, re.S):
            steps = {line.split("_")[1] for line in block.splitlines() if line.startswith("step_")}
            assert len(steps) <= 1  # one whole code block per fence pair
        for number in re.findall(r"step_(\d+)_0 ", text):
            assert f"step_{number}_7 " in text  # a block's first and last lines stay together
        assert TYPING_MARKER not in final_text(reply)
        assert "**" not in reply.text and "](" not in reply.text  # notifications: no raw Markdown
    # Formatting as Slack reads it.
    assert "*Overview*" in everything and "*refund policy*" in everything
    assert "<https://acme.test/refunds|the policy>" in everything
    assert "&amp; its &lt;exceptions&gt;" in everything
    assert "<!channel>" not in everything and "<@U999>" not in everything
    assert "**" not in everything and "# Overview" not in everything
    # Nothing lost or repeated across the split.
    facts = [int(n) for n in re.findall(r"Fact (\d+) explains", everything)]
    assert facts == list(range(1, len(facts) + 1)) and len(facts) > 60
    # One Sources block and the feedback buttons, both on the last message only.
    sources = [b for r in replies for b in blocks_of(r, "context") if "Sources" in json.dumps(b)]
    assert len(sources) == 1 and sources[0] in blocks_of(replies[-1], "context")
    source_text = sources[0]["elements"][0]["text"]
    assert "<https://acme.test/refunds|Refund policy>" in source_text
    assert "<https://acme.test/plans|Plans &amp; pricing>" in source_text
    assert "<https://acme.test/faq|acme.test/faq>" in source_text  # no title: host and path
    assert [r for r in replies if blocks_of(r, "actions")] == [replies[-1]]

    # 👍 then 👎: CustomGPT hears both, the message shows the latest.
    last = replies[-1]
    assert await bot.action(click(last, "feedback_liked", slack.response_url("fb1"))) == 200
    await bot.idle()
    assert selected_button(slack.message("C1", last.ts)) == "feedback_liked"
    assert (
        await bot.action(
            click(slack.message("C1", last.ts), "feedback_disliked", slack.response_url("fb2"))
        )
        == 200
    )
    await bot.idle()
    assert selected_button(slack.message("C1", last.ts)) == "feedback_disliked"
    session = next(iter(customgpt.conversations))
    assert customgpt.feedback == [
        (PROJECT_ID, session, 555, "liked"),
        (PROJECT_ID, session, 555, "disliked"),
    ]


async def test_clicking_the_recorded_reaction_again_takes_it_back(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(["Short answer."], message_id=9)
    ts = await bot.mention("q")
    await bot.idle()
    (reply,) = slack.thread("C1", ts)
    await bot.action(click(reply, "feedback_liked", slack.response_url("a")))
    await bot.idle()
    await bot.action(
        click(
            slack.message("C1", reply.ts),
            "feedback_liked",
            slack.response_url("b"),
        )
    )
    await bot.idle()

    assert [f[3] for f in customgpt.feedback] == ["liked", "neutral"]
    assert selected_button(slack.message("C1", reply.ts)) is None


async def test_feedback_for_an_answer_without_a_message_id_says_so(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(
        [],
        raw_frames=[
            'data: {"status":"progress","message":"An answer."}\n\n',
            'data: {"status":"finish","citations":[]}\n\n',
        ],
    )
    ts = await bot.mention("q")
    await bot.idle()
    (reply,) = slack.thread("C1", ts)
    await bot.action(click(reply, "feedback_liked", slack.response_url("nomid")))
    await bot.idle()

    assert customgpt.feedback == []
    ((name, body),) = slack.responses
    assert name == "nomid" and "can't be recorded" in body["text"]
    assert body.get("response_type") == "ephemeral"


async def test_non_streaming_answers_render_exactly_like_streamed_ones(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, three_citations: list[str]
) -> None:
    answer = long_markdown_answer()
    streaming = await start_bot()
    whole = await start_bot(customgpt_stream=False)
    customgpt.queue_answer(chunks_of(answer, 97), citations=three_citations, message_id=31)
    streamed_ts = await streaming.mention("Refunds?", channel="C1")
    await streaming.idle()
    customgpt.queue_answer([answer], citations=three_citations, message_id=32)
    whole_ts = await whole.mention("Refunds?", channel="C2")
    await whole.idle()

    def rendered(channel: str, ts: str) -> list[tuple[str, str]]:
        # The feedback buttons carry each answer's own conversation and message id.
        return [
            (r.text, re.sub(r'\\"[sm]\\":[^,}]+', "", json.dumps(r.blocks)))
            for r in slack.thread(channel, ts)
        ]

    assert len(slack.thread("C2", whole_ts)) >= 3  # split the same way
    assert rendered("C2", whole_ts) == rendered("C1", streamed_ts)
    request = next(r for r in customgpt.requests if r.query.get("stream") == "0")
    assert request.body["prompt"] == "Refunds?"

    last = slack.thread("C2", whole_ts)[-1]
    await whole.action(click(last, "feedback_liked", slack.response_url("whole")))
    await whole.idle()
    assert [(f[2], f[3]) for f in customgpt.feedback] == [(32, "liked")]


async def test_failed_citation_lookups_never_block_the_answer(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.add_citation(PROJECT_ID, "1", "Known", "https://acme.test/known")
    customgpt.fail_next(r"/citations/2$", 500)
    customgpt.queue_answer(["Answer."], citations=["1", "2", "3"])
    ts = await bot.mention("q")
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    (context,) = blocks_of(reply, "context")
    assert "<https://acme.test/known|Known>" in context["elements"][0]["text"]
    assert final_text(reply) == "Answer."


async def test_citations_are_cached_in_the_store(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: Any
) -> None:
    customgpt.add_citation(PROJECT_ID, "7", "Cached", "https://acme.test/c")
    for _ in range(2):
        customgpt.queue_answer(["A."], citations=["7"])
        await bot.mention("q")
        await bot.idle()

    lookups = [r for r in customgpt.requests if r.path.endswith("/citations/7")]
    assert len(lookups) == 1
    cached = await redis_client.get(f"cgpt:{bot.team}:citation:{PROJECT_ID}:7")
    assert json.loads(cached) == {"title": "Cached", "url": "https://acme.test/c"}


async def test_the_placeholder_names_the_project_being_searched(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    ts = await bot.mention("q")
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert shown(reply)[0] == "_Searching Acme Docs…_"
    assert final_text(reply) == "You asked: q"


async def test_the_placeholder_is_generic_when_the_project_cannot_be_looked_up(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.fail_next(r"^/projects/42$", 503)
    ts = await bot.mention("q")
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert shown(reply)[0] == "_Thinking…_"
    assert final_text(reply) == "You asked: q"


async def test_slack_refusing_a_message_as_too_long_splits_it_further(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    slack.max_text_length = 1200  # stricter than the limit the bot assumes
    bot = await start_bot()
    answer = " ".join(f"Sentence {n} is here." for n in range(400))
    customgpt.queue_answer(chunks_of(answer, 200))
    ts = await bot.mention("q")
    await bot.idle()

    replies = slack.thread("C1", ts)
    assert len(replies) >= 5
    text = " ".join(final_text(r) for r in replies)
    assert re.findall(r"Sentence (\d+) is", text) == [str(n) for n in range(400)]


async def test_a_continuation_slack_refuses_as_too_long_is_split_further(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot()
    answer = " ".join(f"Sentence {n} is here." for n in range(400))  # three messages' worth
    scripted = customgpt.queue_answer([answer[:100], answer[100:]], hold_after=1)
    ts = await bot.mention("q")
    await scripted.reached_hold.wait()
    await slack.wait_for(lambda: bool(slack.thread("C1", ts)))  # the placeholder
    # The rest arrives in one read: the reply after the first is posted with its text so
    # far, which Slack refuses as too long (its limit lower than the bot assumes).
    slack.fail("chat.postMessage", error="msg_too_long")
    scripted.release.set()
    await bot.idle()

    text = " ".join(final_text(r) for r in slack.thread("C1", ts))
    assert re.findall(r"Sentence (\d+) is", text) == [str(n) for n in range(400)]
    assert ":warning:" not in text


async def test_thread_replies_without_a_mention_are_follow_ups_in_threads_the_bot_owns(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    ts = await bot.mention("First question")
    await bot.idle()
    await bot.message("A follow-up", channel="C1", channel_type="channel", thread_ts=ts)
    await bot.message("Not for the bot", channel="C1", channel_type="channel", thread_ts="1.0")
    await bot.message("Top level chatter", channel="C1", channel_type="channel")
    # A reply that mentions the bot arrives twice (app_mention and message): answered once.
    mention_ts = await bot.mention("Mentioned follow-up", thread_ts=ts)
    await bot.message(
        "<@UBOT> Mentioned follow-up",
        channel="C1",
        channel_type="channel",
        thread_ts=ts,
        ts=mention_ts,
    )
    await bot.idle()

    assert customgpt.prompts() == ["First question", "A follow-up", "Mentioned follow-up"]
    assert len(customgpt.conversations) == 1
    assert len(slack.thread("C1", ts)) == 3


async def test_follow_ups_without_a_mention_can_be_turned_off(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(slack_thread_followups=False)
    ts = await bot.mention("First question")
    await bot.idle()
    await bot.message("A follow-up", channel="C1", channel_type="channel", thread_ts=ts)
    await bot.idle()

    assert customgpt.prompts() == ["First question"]
