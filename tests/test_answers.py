"""The core path end to end: signed events in, what Slack and CustomGPT received out."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis

from bot.slack_format import TYPING_MARKER
from tests.clocks import FastClock
from tests.conftest import PROJECT_ID
from tests.driver import RunningBot, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.views import final_text, shown

StartBot = Callable[..., Awaitable[RunningBot]]


def the_reply(slack: FakeSlack, channel: str, thread_ts: str) -> FakeMessage:
    replies = slack.thread(channel, thread_ts)
    assert len(replies) == 1, [r.text for r in replies]
    return replies[0]


async def test_mention_streams_placeholder_ordered_edits_and_final_answer(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    chunks = [
        "Tom Brady ",
        "is an American ",
        "former quarterback ",
        "who won seven ",
        "Super Bowls.",
    ]
    scripted = customgpt.queue_answer(chunks, hold_after=2)

    ts = await bot.mention("Who is Tom Brady?")
    await scripted.reached_hold.wait()
    # Mid-answer, the reply already shows the first chunks with the typing marker.
    await slack.wait_for(
        lambda: any(
            "Tom Brady is an American" in text and TYPING_MARKER in text
            for m in slack.thread("C1", ts)
            for text in shown(m)
        )
    )
    scripted.release.set()
    await bot.idle()

    reply = the_reply(slack, "C1", ts)
    assert reply.edits[0][0] == "_Searching Acme Docs…_"
    final = final_text(reply)
    assert final == "Tom Brady is an American former quarterback who won seven Super Bowls."
    assert TYPING_MARKER not in reply.text
    # Each edit shows at least as much as the one before it.
    partials = [t.replace(TYPING_MARKER, "").strip() for t in shown(reply)[1:]]
    answer_versions = [p for p in partials if p.startswith("Tom")]
    assert answer_versions, partials
    for earlier, later in itertools.pairwise(answer_versions):
        assert later.startswith(earlier), (earlier, later)
    assert customgpt.prompts() == ["Who is Tom Brady?"]


async def test_follow_up_in_thread_continues_the_conversation_across_a_restart(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    first = await start_bot()
    ts = await first.mention("Who is Tom Brady?")
    await first.idle()
    await first.mention("How many rings?", thread_ts=ts)
    await first.idle()
    await first.close()

    again = await start_bot()
    await again.mention("And his teams?", thread_ts=ts)
    await again.idle()

    sessions = {r.path.split("/")[4] for r in customgpt.requests if r.path.endswith("/messages")}
    assert len(sessions) == 1
    (session,) = sessions
    assert customgpt.prompts(session) == ["Who is Tom Brady?", "How many rings?", "And his teams?"]
    stored = json.loads(await redis_client.get(f"cgpt:{again.team}:conv:C1:{ts}") or "{}")
    assert stored == {"project_id": str(PROJECT_ID), "session_id": session}
    assert await redis_client.ttl(f"cgpt:{again.team}:conv:C1:{ts}") > 29 * 86400
    assert len(slack.thread("C1", ts)) == 3


async def test_a_retried_event_is_answered_once(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": "<@UBOT> hello",
        "ts": "1800000001.000100",
        "channel": "C1",
    }
    status, event_id = await bot.event(event)
    assert status == 200
    status, _ = await bot.event(event, event_id=event_id, retry_num=1)
    assert status == 200
    await bot.idle()

    assert len(slack.calls_to("chat.postMessage")) == 1
    assert customgpt.prompts() == ["hello"]
    # The message is claimed in Redis for a day (SET NX + TTL): a retry carries the same one.
    key = f"cgpt:{bot.team}:msg:C1:1800000001.000100"
    assert await redis_client.get(key) == "1"
    assert 0 < await redis_client.ttl(key) <= 24 * 3600


async def test_one_message_delivered_under_two_event_ids_is_answered_once(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    ts = "1800000002.000100"
    event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "ts": ts, "channel": "C1"}
    await bot.event(event)
    await bot.event(event)
    await bot.idle()

    assert len(slack.thread("C1", ts)) == 1
    assert customgpt.prompts() == ["hi"]


async def test_a_dm_is_answered_in_the_dm_and_continues_one_conversation(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    await bot.message("What is the refund policy?", channel="D1", channel_type="im")
    await bot.idle()
    await bot.message("And for digital goods?", channel="D1", channel_type="im")
    await bot.idle()

    replies = [m for m in slack.messages if m.channel == "D1"]
    assert len(replies) == 2
    assert all(m.thread_ts is None for m in replies)  # a DM reads like a chat
    assert final_text(replies[0]) == "You asked: What is the refund policy?"
    assert len(customgpt.conversations) == 1
    assert customgpt.prompts() == ["What is the refund policy?", "And for digital goods?"]


async def test_bot_messages_edits_and_other_subtypes_are_ignored(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    await bot.message("from a bot", channel="D1", channel_type="im", bot_id="B999")
    await bot.message("edited", channel="D1", channel_type="im", subtype="message_changed")
    await bot.message("joined", channel="C1", channel_type="channel", subtype="channel_join")
    await bot.event(
        {
            "type": "app_mention",
            "user": "U2",
            "bot_id": "B999",
            "text": "<@UBOT> loop?",
            "ts": "1800000003.000100",
            "channel": "C1",
        }
    )
    await bot.idle()

    assert slack.calls_to("chat.postMessage") == []
    assert customgpt.prompts() == []


async def test_no_project_anywhere_tells_how_to_bind_one(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(customgpt_project_id=None)
    ts = await bot.mention("anyone there?")
    await bot.idle()

    assert "/customgpt use" in the_reply(slack, "C1", ts).text
    assert customgpt.prompts() == []


async def test_an_empty_mention_gets_a_hint_not_a_question(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    ts = await bot.mention("")
    await bot.idle()

    assert "Ask me a question" in the_reply(slack, "C1", ts).text
    assert customgpt.prompts() == []


async def test_non_streaming_mode_posts_the_same_final_answer(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(customgpt_stream=False)
    customgpt.queue_answer(["All ", "at ", "once."])
    ts = await bot.mention("Stream off?")
    await bot.idle()

    assert final_text(the_reply(slack, "C1", ts)) == "All at once."
    (request,) = [r for r in customgpt.requests if r.path.endswith("/messages")]
    assert request.query["stream"] == "0"


async def test_a_slack_429_on_update_is_waited_out_and_the_final_text_lands(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    clock = FastClock()
    bot = await start_bot(clock=clock)
    customgpt.queue_answer(["one ", "two ", "three"])
    slack.rate_limit("chat.update", times=2, retry_after=7)
    slack.rate_limit("chat.update", times=1, retry_after=9, as_http_200=True)
    ts = await bot.mention("count")
    await bot.idle()

    assert final_text(the_reply(slack, "C1", ts)) == "one two three"
    refused = [c for c in slack.calls_to("chat.update") if c.error == "ratelimited"]
    assert len(refused) == 3
    assert slack.calls_to("chat.update")[-1].ok
    # The final text waited as long as Slack asked, each time it asked (7 + 7 + 9 seconds
    # of the bot's clock), and the edits were not each retried on their own.
    assert clock.skipped >= 7 + 7 + 9


async def test_network_failures_towards_slack_are_survived_and_the_final_text_lands(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock())
    held = customgpt.queue_answer(["Hello ", "world."], hold_after=1)
    slack.disconnect("chat.update", times=3)
    ts = await bot.mention("q")
    await held.reached_hold.wait()
    held.release.set()
    await bot.idle()

    assert final_text(the_reply(slack, "C1", ts)) == "Hello world."
    assert [c.error for c in slack.calls_to("chat.update")].count("disconnected") == 3


async def test_a_second_question_in_a_busy_thread_waits_visibly_and_is_answered_in_order(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    ts = await bot.mention("First")
    await bot.idle()
    first = customgpt.queue_answer(["Answer ", "one."], hold_after=1)
    customgpt.queue_answer(["Answer two."])
    await bot.mention("Second", thread_ts=ts)
    await first.reached_hold.wait()
    await bot.mention("Third", thread_ts=ts)
    await slack.wait_for(lambda: len(slack.thread("C1", ts)) == 3)
    queued = slack.thread("C1", ts)[2]
    assert shown(queued)[0] == "_Waiting for the answer above to finish…_"
    first.release.set()
    await bot.idle()

    replies = slack.thread("C1", ts)
    assert [final_text(r) for r in replies[1:]] == ["Answer one.", "Answer two."]
    assert customgpt.prompts() == ["First", "Second", "Third"]


@pytest.mark.parametrize("store", ["redis", "memory"])
async def test_queued_follow_ups_are_answered_in_the_order_they_were_written(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, store: str
) -> None:
    bot = await start_bot() if store == "redis" else await start_bot(redis_url=None)
    ts = await bot.mention("First")
    await bot.idle()
    held = customgpt.queue_answer(["Busy."], hold_after=0)
    await bot.mention("Second", thread_ts=ts)
    await held.reached_hold.wait()
    earlier, later = next_ts(), next_ts()
    # Slack delivers the later message first; both wait behind the answer in progress.
    await bot.mention("Fourth", thread_ts=ts, ts=later)
    await slack.wait_for(lambda: len(slack.thread("C1", ts)) == 3)
    await bot.mention("Third", thread_ts=ts, ts=earlier)
    await slack.wait_for(lambda: len(slack.thread("C1", ts)) == 4)
    held.release.set()
    await bot.idle()

    assert customgpt.prompts() == ["First", "Second", "Third", "Fourth"]
