"""Native streaming (chat.startStream / appendStream / stopStream) against the fake Slack:
the answer arrives as deltas, in order, and whatever Slack refuses, expires or the user stops,
no text the user should see is lost."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from hypothesis import given
from hypothesis import strategies as st

from bot import messages
from bot.native_stream import Placement, Transports
from bot.rate_buckets import Bucket, Rate, RedisBuckets
from bot.slack_format import safe_markdown
from bot.streaming import AnswerStream, Ending
from tests.driver import RunningBot, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeMessage, FakeSlack, SlackCall
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


async def ask_in_dm_thread(bot: RunningBot, text: str) -> str:
    """A question in a DM thread (where `auto` streams natively); returns the thread."""
    thread = next_ts()
    await bot.message(text, channel="D1", channel_type="im", thread_ts=thread)
    return thread


def stream_calls(slack: FakeSlack, message: FakeMessage) -> list[SlackCall]:
    """The accepted stream calls for a message, in order (the start: the one in its thread;
    a thread holding one stream)."""
    return [
        call
        for call in slack.calls
        if call.method in STREAM_METHODS
        and call.ok
        and call.params.get("channel") == message.channel
        and (
            call.params.get("ts") == message.ts
            or (call.method == "chat.startStream" and call.params["thread_ts"] == message.thread_ts)
        )
    ]


def text_of(call: SlackCall) -> str:
    """The answer text a stream call carries: its `markdown_text`, or its text chunks."""
    chunks = call.params.get("chunks") or []
    return str(call.params.get("markdown_text") or "") + "".join(
        str(c["text"]) for c in chunks if c["type"] == "markdown_text"
    )


def streamed_text(slack: FakeSlack, message: FakeMessage) -> list[str]:
    """The text of every accepted stream call for a message, in order."""
    return [text_of(call) for call in stream_calls(slack, message)]


async def test_a_dm_thread_answer_streams_natively_in_deltas_that_add_up_to_the_answer(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    chunks = ["Refunds take ", "5 days. Ask <!here> ", "or <@U999>", " for help."]
    held = customgpt.queue_answer(chunks, message_id=7, hold_after=1)
    thread = await ask_in_dm_thread(bot, "How long do refunds take?")
    await slack.wait_for(lambda: [m.text for m in slack.streams()] == ["Refunds take "])
    held.release.set()
    await bot.idle()

    (message,) = slack.streams()
    assert message.thread_ts == thread and message.recipient == (bot.team, "U1")
    assert not message.streaming
    expected, _ = safe_markdown("".join(chunks), final=True)
    assert message.text == expected
    # Deltas only: the calls carry the answer exactly once, in order (the start carries the
    # search step, before any words).
    sent = streamed_text(slack, message)
    assert "".join(sent) == expected and len(sent) >= 3
    assert sent[0] == "" and all(sent[1:-1])
    assert "<!here>" not in message.text and "<@U999>" not in message.text
    stop = slack.calls_to("chat.stopStream")[-1]
    assert [b["type"] for b in stop.params["blocks"]] == ["actions"]  # the feedback buttons
    # Nothing else was posted or edited: the stream is the whole reply.
    assert not slack.calls_to("chat.postMessage") and not slack.calls_to("chat.update")


async def test_the_stream_opens_with_the_search_step_and_the_first_words_complete_it(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    held = customgpt.queue_answer(["Hello."], hold_after=0)
    await ask_in_dm_thread(bot, "Hi?")
    await held.reached_hold.wait()
    await slack.wait_for(lambda: len(slack.streams()) == 1)
    (message,) = slack.streams()
    assert message.tasks["search"]["status"] == "in_progress" and message.text == ""
    assert message.tasks["search"]["title"] == "Searching Acme Docs…"
    held.release.set()
    await bot.idle()
    assert message.task_log == [("search", "in_progress"), ("search", "complete")]
    assert message.text == "Hello."
    # The step is what people see while CustomGPT searches: no status line is spent on it.
    assert not slack.calls_to("assistant.threads.setStatus")


async def test_refused_stream_methods_fall_back_to_chat_update_and_are_not_tried_again(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    slack.refuse_method("chat.startStream", "missing_scope")
    customgpt.queue_answer(["First ", "answer."])
    customgpt.queue_answer(["Second answer."])
    first = await ask_in_dm_thread(bot, "One?")
    await bot.idle()
    second = await ask_in_dm_thread(bot, "Two?")
    await bot.idle()

    assert [final_text(m) for m in slack.thread("D1", first)] == ["First answer."]
    assert [final_text(m) for m in slack.thread("D1", second)] == ["Second answer."]
    assert len(slack.calls_to("chat.startStream")) == 1  # remembered for the workspace


async def test_a_stream_that_expires_mid_answer_is_finished_by_chat_update_with_every_word(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    chunks = ["The first part. ", "The second part. ", "The end."]
    held = customgpt.queue_answer(chunks, hold_after=1)
    thread = await ask_in_dm_thread(bot, "Long one?")
    await slack.wait_for(lambda: len(slack.streams()) == 1)
    (message,) = slack.streams()
    slack.expire_stream("D1", message.ts)
    held.release.set()
    await bot.idle()

    replies = slack.thread("D1", thread)
    assert "".join(final_text(m) for m in replies) == "".join(chunks)
    assert replies[0] is message  # the expired message itself carries the text on
    assert any(c.error == "message_not_in_streaming_state" for c in slack.calls)
    assert slack.calls_to("chat.update")


async def test_stop_pressed_by_the_user_ends_the_answer_at_once_with_a_note(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    held = customgpt.queue_answer(["Shown. ", "Not wanted. ", "Never read."], hold_after=1)
    thread = await ask_in_dm_thread(bot, "Stop me?")
    await slack.wait_for(lambda: len(slack.streams()) == 1)
    (message,) = slack.streams()
    await slack.wait_for(lambda: message.text == "Shown. ")
    slack.stop_by_user("D1", message.ts)
    held.release.set()
    await bot.idle()

    (reply,) = slack.thread("D1", thread)
    assert reply is message
    assert "Shown." in final_text(reply) and "Not wanted" not in final_text(reply)
    assert messages.STOPPED_BY_USER in reply.text
    assert any(c.error == "stopped_by_user" for c in slack.calls)


async def test_channel_threads_and_top_level_dms_keep_the_update_transport(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(["In a channel."])
    customgpt.queue_answer(["At the top of a DM."])
    await bot.mention("Where?", channel="C1")
    await bot.idle()
    await bot.message("And here?", channel="D2", channel_type="im")
    await bot.idle()
    assert not slack.calls_to("chat.startStream")
    texts = sorted(final_text(m) for m in slack.messages)
    assert texts == ["At the top of a DM.", "In a channel."]


async def test_native_in_channels_streams_channel_threads_to_the_asker(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(slack_native_in_channels=True)
    customgpt.queue_answer(["Only you see this grow."])
    asked = await bot.mention("Where?", channel="C1", user="U7")
    await bot.idle()
    (message,) = slack.streams()
    assert message.thread_ts == asked and message.recipient == (bot.team, "U7")
    assert message.text == "Only you see this grow."


async def test_update_mode_never_streams_natively(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(slack_streaming="update")
    customgpt.queue_answer(["By edits."])
    thread = await ask_in_dm_thread(bot, "How?")
    await bot.idle()
    assert not slack.calls_to("chat.startStream")
    assert [final_text(m) for m in slack.thread("D1", thread)] == ["By edits."]


@given(st.text(alphabet="<>!@[]()hereUchanel x", max_size=40), st.data())
def test_safe_markdown_of_a_growing_text_only_ever_grows(text: str, data: st.DataObject) -> None:
    """Whatever the cuts, the safe text sent so far is a prefix of the safe text of the whole
    answer, and nothing in it can be read as a mention."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=5)))
    whole, covered = safe_markdown(text, final=True)
    assert covered == len(text)
    for cut in cuts:
        prefix, used = safe_markdown(text[:cut], final=False)
        assert whole.startswith(prefix) and used <= cut
    for mention in ("<!", "<@", "](!", "](@"):
        assert mention not in whole


async def test_the_end_of_a_native_answer_never_waits_behind_the_append_budget(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(slack_append_budget=1, slack_append_burst=1)
    # Another replica spent the workspace's appends: none for the next minute.
    spent = await RedisBuckets(redis_client).take(
        bot.team, [Bucket("stream-append", Rate(per_minute=1, burst=1))], time.time()
    )
    assert spent == 0.0
    held = customgpt.queue_answer(["First words, ", "then the rest."], hold_after=1)
    thread = await ask_in_dm_thread(bot, "Quick?")
    await held.reached_hold.wait()
    await slack.wait_for(lambda: len(slack.streams()) == 1)
    held.release.set()

    # Before: the last words waited for an append token, a minute away (and behind the
    # appends of every other answer streaming), so the answer ended that much later.
    (message,) = slack.thread("D1", thread)
    await slack.wait_for(lambda: not message.streaming)
    assert message.text == "First words, then the rest."
    assert not slack.calls_to("chat.appendStream") and not slack.count_429()
    # The stop carries every word, and the search step's end with the first of them.
    (stop,) = slack.calls_to("chat.stopStream")
    assert stop.params["chunks"] == [
        {
            "type": "task_update",
            "id": "search",
            "title": "Searching Acme Docs…",
            "status": "complete",
        },
        {"type": "markdown_text", "text": "First words, then the rest."},
    ]


async def test_an_append_lost_on_the_way_is_never_sent_again_and_chat_update_finishes(
    bot: RunningBot, slack: FakeSlack
) -> None:
    runtime = bot.runtime
    calls = runtime.slack_writes.for_team(bot.team)
    thread = next_ts()
    fallback = AnswerStream(calls, "D1", thread, interval=0, clock=runtime.clock)
    place = Placement(bot.team, "D1", "U1", thread, is_dm=True)
    stream = Transports(runtime.settings, runtime.clock).stream(fallback, calls, place)
    assert await stream.open(messages.THINKING) is None  # native: nothing before the words
    stream.append("First words, ")
    await slack.wait_for(lambda: [m.text for m in slack.streams()] == ["First words, "])
    slack.disconnect("chat.appendStream")
    stream.append("more words, ")
    # The connection dropped with the append sent: Slack may show it or not, and sending it
    # again could show it twice.
    await slack.wait_for(lambda: len(slack.calls_to("chat.appendStream")) == 1)
    stream.append("and the end.")
    result = await stream.close(Ending(feedback_value="v"))

    (message,) = slack.messages
    assert final_text(message) == "First words, more words, and the end."
    assert not message.streaming and result.complete
    assert len(slack.calls_to("chat.appendStream")) == 1  # the lost one, not repeated
    assert slack.calls_to("chat.update")
