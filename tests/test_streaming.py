"""The streamer against the fake Slack: coalescing, throttling, the shared edit budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import SystemClock
from bot.config import Settings
from bot.rate_buckets import MemoryBuckets
from bot.runtime import slack_client
from bot.slack_calls import SlackCalls, SlackSchedulers, limits_for
from bot.slack_format import TYPING_MARKER
from bot.store import MemoryStore
from bot.streaming import AnswerStream, Ending
from tests.clocks import ManualClock
from tests.fakes.slack import Bucket, FakeSlack, SlackLimits
from tests.views import final_text, shown


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield slack_client(session, settings)


def calls_for(client: AsyncWebClient, store: MemoryStore, budget: int = 1000) -> SlackCalls:
    """Slack writes through a workspace scheduler whose edit budget is `budget` calls (all
    of them available at once, refilled `budget` a minute)."""
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "x",
            "SLACK_SIGNING_SECRET": "x",
            "CUSTOMGPT_API_KEY": "x",
            "SLACK_UPDATE_BUDGET": str(budget),
            "SLACK_UPDATE_BURST": str(budget),
        }
    )
    schedulers = SlackSchedulers(client, MemoryBuckets(), limits_for(settings), SystemClock())
    return schedulers.for_team("T1")


def stream_in_c1(client: AsyncWebClient, interval: float = 0) -> AnswerStream:
    """An answer streaming into thread 1.0 of channel C1, with a workspace budget to spare."""
    return AnswerStream(
        calls_for(client, MemoryStore()), "C1", "1.0", interval=interval, clock=SystemClock()
    )


async def test_edits_wait_for_the_interval_and_coalesce_what_arrived_meanwhile(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    clock = ManualClock()
    stream = AnswerStream(calls_for(client, MemoryStore()), "C1", "1.0", interval=10, clock=clock)
    ts = await stream.open("Thinking…")
    stream.append("Hello")
    await slack.wait_for(lambda: len(slack.message("C1", ts).edits) == 2)
    stream.append(" there")
    await clock.wait_for_sleepers(1)  # the writer now waits out the interval
    for word in [",", " general", " Kenobi."]:
        stream.append(word)
    assert len(slack.message("C1", ts).edits) == 2  # nothing sent inside the interval
    clock.advance(10)
    await slack.wait_for(lambda: len(slack.message("C1", ts).edits) == 3)
    stream.append(" Bye.")
    await clock.wait_for_sleepers(1)
    result = await stream.close(Ending())  # the end does not wait for the interval

    texts = shown(slack.message("C1", ts))
    assert texts[0] == "Thinking…"
    assert texts[1] == f"Hello {TYPING_MARKER}"
    assert texts[2] == f"Hello there, general Kenobi. {TYPING_MARKER}"  # one edit for four chunks
    assert texts[3] == "Hello there, general Kenobi. Bye."
    assert len(texts) == 4
    assert result.edits == 3
    assert clock.sleepers == 0


async def test_a_due_edit_goes_with_the_next_text_and_a_quiet_stream_waits_one_read_more(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    """Text comes in batches, one per read of the answer's stream (`arrivals_every`): an edit
    that falls due goes with the next batch, not on a timer of its own just before it; when
    no batch comes for a read's time more, it goes with what it has."""
    clock = ManualClock()
    calls = calls_for(client, MemoryStore())
    stream = AnswerStream(calls, "C1", "1.0", interval=1, clock=clock, arrivals_every=0.5)
    ts = await stream.open("Thinking…")

    async def read_brings(text: str) -> None:
        parks = clock.parks
        stream.append(text)
        await clock.wait_for_parks(parks + 1)  # the writer took it in and waits again

    stream.append("One")
    await slack.wait_for(lambda: len(slack.message("C1", ts).edits) == 2)
    clock.advance(0.5)
    await read_brings(" two")
    clock.advance(0.5)  # the next edit is due, but no text came with this moment
    assert clock.sleepers == 1  # so the writer still waits
    await read_brings(" three")  # the read that comes now: the edit carries its text
    await slack.wait_for(lambda: len(slack.message("C1", ts).edits) == 3)

    clock.advance(0.5)
    await read_brings(" four")
    clock.advance(0.5)  # due again; the stream has gone quiet
    assert clock.sleepers == 1
    clock.advance(0.5)  # a read's time later, still nothing: what was read goes
    await slack.wait_for(lambda: len(slack.message("C1", ts).edits) == 4)
    await stream.close(Ending())

    texts = shown(slack.message("C1", ts))
    assert texts[1:4] == [
        f"One {TYPING_MARKER}",
        f"One two three {TYPING_MARKER}",
        f"One two three four {TYPING_MARKER}",
    ]
    assert texts[4] == "One two three four"


async def test_partial_edits_leave_the_budget_to_the_final_texts_of_answers_in_flight(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    store = MemoryStore()
    # Three edits for two answers: one partial edit, then the two finals' reserve.
    calls = calls_for(client, store, budget=3)
    first = AnswerStream(calls, "C1", "1.0", interval=0, clock=SystemClock())
    second = AnswerStream(calls, "C2", "2.0", interval=0, clock=SystemClock())
    ts1 = await first.open("…")
    ts2 = await second.open("…")
    first.append("first answer")
    await slack.wait_for(lambda: len(slack.message("C1", ts1).edits) == 2)
    second.append("second answer")  # what is left is the reserve for the two final texts
    await second.close(Ending())
    await first.close(Ending())

    second_texts = shown(slack.message("C2", ts2))
    assert second_texts == ["…", "second answer"]  # no partial edit, the final one landed
    assert final_text(slack.message("C1", ts1)) == "first answer"


async def test_a_long_answer_continues_in_new_replies_in_the_same_thread(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    stream = stream_in_c1(client)
    await stream.open("…")
    paragraph = "This sentence is part of a long answer about many things. " * 10
    for _ in range(20):
        stream.append(paragraph.strip() + "\n\n")
    result = await stream.close(Ending())

    replies = slack.thread("C1", "1.0")
    assert len(replies) == len(result.message_ts) >= 3
    for reply in replies:
        assert TYPING_MARKER not in reply.text
        for block in reply.blocks or []:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000
    joined = "".join(r.blocks[0]["text"]["text"] for r in replies if r.blocks)
    assert joined.replace("\n", "") == (paragraph.strip() * 20).replace("\n", "")


async def test_a_message_never_shows_less_than_before_when_the_answer_moves_on(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    stream = stream_in_c1(client)
    ts = await stream.open("…")
    # A paragraph break two thirds in (where a split likes to cut), then text that almost
    # fills the message and is shown, then more: the split must not take shown text away.
    stream.append("word " * 400 + "\n\n" + "more " * 190)
    await slack.wait_for(lambda: len(shown(slack.message("C1", ts))[-1]) > 2900)
    stream.append("tail " * 20)
    await stream.close(Ending())

    for reply in slack.thread("C1", "1.0"):
        lengths = [len(text.replace(TYPING_MARKER, "").strip()) for text in shown(reply)[1:]]
        assert lengths == sorted(lengths), lengths
    assert len(slack.thread("C1", "1.0")) == 2


async def test_when_slack_refuses_a_message_as_too_long_no_message_shrinks(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.max_text_length = 2700  # Slack's real limit, lower than the bot's 3,000
    stream = stream_in_c1(client)
    await stream.open("…")
    paragraph = ("word " * 40).strip() + ".\n\n"
    for count in range(1, 21):
        stream.append(paragraph)
        await slack.wait_for(
            lambda n=count: (
                sum(final_text(m).count("word.") for m in slack.thread("C1", "1.0")) >= n
            )
        )
    await stream.close(Ending())

    replies = slack.thread("C1", "1.0")
    for reply in replies:
        lengths = [len(text.replace(TYPING_MARKER, "").strip()) for text in shown(reply)[1:]]
        assert lengths == sorted(lengths), lengths
    assert sum(final_text(r).count("word.") for r in replies) == 20


async def test_a_continuation_slack_refuses_ends_the_answer_with_a_notice(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    stream = stream_in_c1(client)
    ts = await stream.open("…")
    slack.disconnect("chat.postMessage")  # the next reply never reaches Slack
    stream.append("First part of the answer. " * 100 + "\n\n" + "Second part. " * 100)
    await stream.close(Ending())

    (reply,) = slack.thread("C1", "1.0")
    assert reply.ts == ts
    assert final_text(reply).startswith("First part of the answer.")
    assert "Slack refused the rest of this answer" in reply.text
    assert TYPING_MARKER not in final_text(reply)


_WORDS = st.text(alphabet=st.characters(categories=["Ll", "Nd"]), min_size=1, max_size=12)
_PARAGRAPHS = st.lists(st.lists(_WORDS, min_size=1, max_size=40), min_size=1, max_size=12)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(paragraphs=_PARAGRAPHS, cuts=st.lists(st.integers(1, 60), min_size=1, max_size=30))
async def test_no_message_ever_shrinks_while_its_continuation_is_being_posted(
    slack: FakeSlack, client: AsyncWebClient, paragraphs: list[list[str]], cuts: list[int]
) -> None:
    # Posts are slow (one every 0.2 s in the channel), so text keeps arriving while a
    # continuation is on its way; small messages make continuations frequent.
    slack.limits = SlackLimits(post_per_channel=Bucket(1, 300))
    answer = "\n\n".join(" ".join(words) for words in paragraphs)
    thread = f"{len(slack.messages) + 1}.0"
    stream = AnswerStream(
        calls_for(client, MemoryStore()), "C9", thread, interval=0, clock=SystemClock(), limit=500
    )
    await stream.open("…")
    position = 0
    for cut in cuts * (len(answer) // max(1, sum(cuts)) + 1):
        stream.append(answer[position : position + cut])
        position += cut
        await asyncio.sleep(0)  # let the writer run between chunks, as network reads do
        if position >= len(answer):
            break
    await stream.close(Ending())

    replies = slack.thread("C9", thread)
    for reply in replies:
        lengths = [len(text.replace(TYPING_MARKER, "").strip()) for text in shown(reply)[1:]]
        assert lengths == sorted(lengths), lengths
    # Every character of the answer, in order (a word may continue in the next message when
    # the text already shown leaves no other place to cut).
    said = "".join("".join(final_text(reply).split()) for reply in replies)
    assert said == "".join(answer.split())
