"""Progress people can see while CustomGPT searches: a native stream opens at once with a
"Searching <project>…" task step, which the call carrying the first words marks complete (or
the stop marks errored, with a short reason, when no words come); where nothing is posted
meanwhile, Slack's status line. No call goes out for it that a call already going out can
carry."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis

from bot import messages
from bot.rate_buckets import Bucket, Rate, RedisBuckets
from tests.clocks import ManualClock
from tests.conftest import PROJECT_ID
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import MAX_LOADING_MESSAGES, FakeMessage, FakeSlack, SlackCall
from tests.polling import until
from tests.test_metrics import scrape, value
from tests.test_native_stream import STREAM_METHODS, ask_in_dm_thread, stream_calls, text_of
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]
STEP = {"type": "task_update", "id": "search", "title": "Searching Acme Docs…"}


def notice(message: FakeMessage) -> str:
    """The context lines under a message (notices, sources)."""
    return " ".join(
        str(e.get("text", ""))
        for b in message.blocks or []
        if b["type"] == "context"
        for e in b["elements"]
    )


async def answer_read(bot: RunningBot) -> bool:
    """CustomGPT's answer has reached the bot whole (its `/metrics` say so)."""
    return value(await scrape(bot), "customgpt_answer_seconds_count") == 1


def steps_in(call: SlackCall) -> list[dict[str, Any]]:
    return [c for c in call.params.get("chunks") or [] if c["type"] == "task_update"]


async def native_bot_with_its_start_spent(
    start_bot: StartBot, redis_client: redis.Redis
) -> tuple[RunningBot, ManualClock]:
    """A native-streaming bot allowed one chat.startStream a minute, that one already taken:
    the next answer's start waits a minute on the bot's (manual) clock."""
    clock = ManualClock()
    bot = await start_bot(
        clock=clock, slack_streaming="native", slack_stream_budget=1, slack_stream_burst=1
    )
    await RedisBuckets(redis_client).take(
        bot.team, [Bucket("stream-start", Rate(per_minute=1, burst=1))], clock.wall()
    )
    return bot, clock


async def test_the_step_goes_in_progress_with_the_start_and_complete_with_the_first_words(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    answer = ["Refunds take ", "five days, ", "sometimes ", "six."]
    held = customgpt.queue_answer(answer, hold_after=1)
    await ask_in_dm_thread(bot, "How long?")
    await slack.wait_for(lambda: [m.text for m in slack.streams()] == ["Refunds take "])
    held.release.set()
    await bot.idle()

    (message,) = slack.streams()
    calls = stream_calls(slack, message)
    start, first_words = calls[0], calls[1]
    # The start carries the step alone, before CustomGPT said a word.
    assert start.method == "chat.startStream"
    assert start.params["chunks"] == [{**STEP, "status": "in_progress"}]
    assert start.params["task_display_mode"] == "timeline"
    # The call with the first words completes it, ahead of them, in the same call.
    assert first_words.params["chunks"] == [
        {**STEP, "status": "complete"},
        {"type": "markdown_text", "text": "Refunds take "},
    ]
    assert [steps_in(c) for c in calls[2:]] == [[] for _ in calls[2:]]
    assert message.task_log == [("search", "in_progress"), ("search", "complete")]
    # The answer itself is intact: deltas that add up to it exactly, never the whole again.
    texts = [text_of(c) for c in calls]
    assert "".join(texts) == "".join(answer) == message.text
    assert all(texts[1:-1])
    assert all("markdown_text" not in c.params for c in calls)  # one form: chunks
    assert calls[-1].method == "chat.stopStream"


async def test_a_customgpt_failure_before_any_words_marks_the_step_errored_with_a_reason(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer([], error_status=429, error_message="Out of credits")
    thread = await ask_in_dm_thread(bot, "Anything?")
    await bot.idle()

    (message,) = slack.thread("D1", thread)
    assert message.task_log == [("search", "in_progress"), ("search", "error")]
    (stop,) = slack.calls_to("chat.stopStream")
    assert stop.params["chunks"] == [
        {**STEP, "status": "error", "output": "The CustomGPT account is out of query credits"}
    ]
    # The notice says the rest, under the step, in the same message: nothing else posted.
    assert "run out of query credits" in notice(message)
    assert "Out of credits" in notice(message)
    assert not message.streaming and message.text == ""
    assert not slack.calls_to("chat.postMessage") and not slack.calls_to("chat.update")


async def test_a_failure_after_the_first_words_leaves_the_step_complete(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(["Partial ", "answer"], stream_error_after=1)
    thread = await ask_in_dm_thread(bot, "Anything?")
    await bot.idle()

    (message,) = slack.thread("D1", thread)
    assert message.task_log == [("search", "in_progress"), ("search", "complete")]
    assert message.text == "Partial "
    assert "CustomGPT reported an error" in notice(message)


async def test_the_update_transport_spends_nothing_more_on_progress(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    held = customgpt.queue_answer(["In a channel."], hold_after=0)
    asked = await bot.mention("Where?", channel="C1")
    await held.reached_hold.wait()
    await slack.wait_for(lambda: len(slack.thread("C1", asked)) == 1)
    (placeholder,) = slack.thread("C1", asked)
    assert placeholder.text == messages.searching("Acme Docs")  # the placeholder says it
    held.release.set()
    await bot.idle()

    assert final_text(placeholder) == "In a channel."
    writes = {c.method for c in slack.calls} - {"auth.test", "conversations.info"}
    assert writes == {"chat.postMessage", "chat.update"}
    assert not any(c.method in STREAM_METHODS for c in slack.calls)


async def test_an_answer_delivered_whole_shows_the_status_line_until_the_reply_clears_it(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(slack_update_budget=1, slack_update_burst=1)
    # Another replica spent the workspace's edits: a final edit would wait a minute, so the
    # answer is delivered whole, and the status line is what the asker sees meanwhile.
    await RedisBuckets(redis_client).take(
        bot.team, [Bucket("update", Rate(per_minute=1, burst=1))], time.time()
    )
    held = customgpt.queue_answer(["Whole."], hold_after=0)
    asked = await bot.mention("Busy?", channel="C1")
    await held.reached_hold.wait()
    await slack.wait_for(lambda: bool(slack.statuses.get(("C1", asked))))
    assert slack.thread("C1", asked) == []
    held.release.set()
    await bot.idle()

    (status,) = slack.calls_to("assistant.threads.setStatus")
    assert status.params["status"] == "is searching Acme Docs…"
    loading = status.params["loading_messages"]
    assert "Searching Acme Docs…" in loading and len(loading) <= MAX_LOADING_MESSAGES
    assert [final_text(m) for m in slack.thread("C1", asked)] == ["Whole."]
    assert slack.statuses[("C1", asked)] == ""  # cleared by the reply
    assert [entry[2] for entry in slack.status_log] == ["is searching Acme Docs…", ""]


async def test_a_native_start_waiting_for_its_budget_shows_the_status_line_meanwhile(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot, clock = await native_bot_with_its_start_spent(start_bot, redis_client)
    held = customgpt.queue_answer(["Later."], hold_after=0)
    thread = await ask_in_dm_thread(bot, "Now?")
    await held.reached_hold.wait()
    await slack.wait_for(lambda: bool(slack.statuses.get(("D1", thread))))
    assert not slack.calls_to("chat.startStream")  # a minute away
    held.release.set()
    clock.advance(61)
    await bot.idle()

    (message,) = slack.thread("D1", thread)
    assert message.text == "Later."
    assert message.task_log == [("search", "in_progress"), ("search", "complete")]
    assert slack.statuses[("D1", thread)] == ""  # the stream's message cleared it


async def test_a_long_project_name_is_shortened_where_slack_gives_little_room(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.projects[PROJECT_ID].name = "Handbook " * 40
    customgpt.queue_answer(["Short answer."])
    thread = await ask_in_dm_thread(bot, "Long name?")
    await bot.idle()

    (message,) = slack.thread("D1", thread)
    title = message.tasks["search"]["title"]
    assert title.startswith("Searching Handbook Handbook") and title.endswith("…")
    assert len(title) < 100 and message.text == "Short answer."


async def test_a_status_line_whose_turn_comes_after_the_first_words_is_not_sent(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot, clock = await native_bot_with_its_start_spent(start_bot, redis_client)
    # The start and the status line both wait for their budgets; the words come first.
    status = Bucket("status", Rate(per_minute=50, burst=10))
    for _ in range(10):
        await RedisBuckets(redis_client).take(bot.team, [status], clock.wall())
    customgpt.queue_answer(["Found it."])
    thread = await ask_in_dm_thread(bot, "Now?")
    await until(lambda: answer_read(bot))
    clock.advance(61)
    await bot.idle()

    assert [final_text(m) for m in slack.thread("D1", thread)] == ["Found it."]
    assert not slack.calls_to("assistant.threads.setStatus")  # no longer true by its turn
