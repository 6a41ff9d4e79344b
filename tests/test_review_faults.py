"""Faults found by probing the scheduler, the streamer and the answer flow the way a bad
network, a hostile user or an unlucky scheduling would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import redis.asyncio as redis
from slack_sdk.web.async_client import AsyncWebClient

from bot import keys, messages
from bot.journal import Entry
from bot.metrics import Metrics
from bot.rate_buckets import MemoryBuckets, Rate
from bot.slack_calls import REACTIONS, Content, SlackCalls, sender
from bot.slack_scheduler import Limits, WorkspaceScheduler
from tests.clocks import FastClock, ManualClock
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import Bucket, FakeSlack, SlackLimits
from tests.polling import until
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]


@pytest.fixture
async def clock(slack: FakeSlack) -> AsyncIterator[FastClock]:
    """The bot's clock, shared with the fake Slack's buckets."""
    shared = FastClock()
    slack.clock = shared
    yield shared


async def test_a_partial_edit_that_outwaits_the_delivery_deadline_does_not_end_the_answer(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, clock: FastClock
) -> None:
    # One edit at a time for the workspace: partial edits, which leave that token to the
    # final text, wait past the delivery deadline while CustomGPT is still answering.
    slack.limits = SlackLimits(chat_update=Bucket(1, 6), post_per_channel=Bucket(5, 60))
    bot = await start_bot(
        clock=clock,
        slack_update_budget=6,
        slack_update_burst=1,
        slack_delivery_deadline=60,
        slack_overload_wait=3600,
    )
    held = customgpt.queue_answer(["A slow ", "but complete answer."], hold_after=1)
    ts = await bot.mention("q")
    await held.reached_hold.wait()
    await clock_passes(clock, 120)
    held.release.set()
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    # Before: the expired partial edit counted as Slack refusing the answer for good.
    assert final_text(reply) == "A slow but complete answer."
    assert messages.SLACK_REFUSED_REST not in reply.text


async def clock_passes(clock: FastClock, seconds: float) -> None:
    """Let virtual time run on (the bot's waits skip it) until `seconds` have passed."""
    start = clock.now()
    while clock.now() - start < seconds:
        await clock.sleep(1.0)


async def test_a_post_whose_caller_stopped_waiting_is_never_sent(
    slack: FakeSlack, team: str
) -> None:
    # One post a minute in the channel; the second post's caller is cancelled (shutdown's
    # grace ran out) while the post waits for its turn.
    clock = ManualClock()
    limits = Limits(
        update=Rate(50, 20),
        post_per_channel=Rate(1, 1),
        post_per_workspace=Rate(300, 25),
        reactions=REACTIONS,
        delivery_deadline=900,
    )
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token="xoxb-t", base_url=slack.api_url, session=session)
        scheduler = WorkspaceScheduler(
            team, sender(client, Metrics()), MemoryBuckets(), limits, clock
        )
        calls = SlackCalls(scheduler, clock)
        try:
            await calls.post("C1", None, Content("one"))
            given_up = asyncio.ensure_future(calls.post("C1", None, Content("two")))
            await clock.wait_for_sleepers(1)  # the lane waits for the channel's next token
            given_up.cancel()
            third = asyncio.ensure_future(calls.post("C1", None, Content("three")))
            await advance_until(clock, third, step=60)
        finally:
            await scheduler.close()

    # Before: "two" was posted anyway, a reply nobody would ever finish or account for.
    assert [m.text for m in slack.messages] == ["one", "three"]


async def advance_until(clock: ManualClock, work: asyncio.Future[object], step: float) -> None:
    """Move time on by `step` whenever the bot waits on the clock, until `work` is done."""
    while not work.done():
        parked = asyncio.ensure_future(clock.wait_for_sleepers(1))
        await asyncio.wait({work, parked}, return_when=asyncio.FIRST_COMPLETED)
        if parked.done():
            clock.advance(step)
        else:
            parked.cancel()
    await work


async def test_finishing_a_dead_process_reply_does_not_stop_this_process_journaling_its_own(
    start_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    # A process that stopped left a question without a reply; finishing it meets Slack's
    # rate limit in that channel and waits (on the bot's clock, which the test holds).
    left = Entry(team, "C9", "1700000000.000100", "1700000000.000100", owner="stopped")
    await redis_client.set(keys.inflight(team, "C9", left.question_ts), json.dumps(left.__dict__))
    await redis_client.sadd(keys.inflight_index(team), left.member)
    slack.rate_limit("chat.postMessage", times=1, retry_after=30)
    bot = await start_bot(clock=ManualClock())
    await slack.wait_for(lambda: slack.count_429("chat.postMessage") == 1)

    held = customgpt.queue_answer(["Half an answer", " and the rest"], hold_after=1)
    ts = await bot.mention("q", channel="C1")
    await held.reached_hold.wait()

    # Before: the journal's one loop waited for that reply, so this answer's text (and the
    # process's heartbeat) stopped being written: another replica would soon take this
    # living process for dead and finish its answers under it.
    await until(lambda: _has_text(redis_client, keys.inflight(team, "C1", ts), "Half an answer"))
    held.release.set()


async def _has_text(client: redis.Redis, key: str, text: str) -> bool:
    raw = await client.get(key)
    return raw is not None and text in raw


async def test_a_reply_finished_for_a_dead_process_takes_its_hourglass_off_the_question(
    start_bot: StartBot, slack: FakeSlack, redis_client: redis.Redis, team: str
) -> None:
    # A process answering whole (the edit budget was overloaded) had put the hourglass on
    # the question and journaled the text so far, then died before posting anything.
    question = "1700000000.000200"
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token="xoxb-t", base_url=slack.api_url, session=session)
        await client.reactions_add(channel="C1", timestamp=question, name="hourglass_flowing_sand")
    left = Entry(team, "C1", question, question, owner="killed", markdown="Half an answer")
    entry_key = keys.inflight(team, "C1", question)
    await redis_client.set(entry_key, json.dumps(left.__dict__))
    await redis_client.sadd(keys.inflight_index(team), left.member)

    await start_bot()

    async def forgotten() -> bool:
        return not await redis_client.exists(entry_key)

    await until(forgotten)
    (reply,) = slack.thread("C1", question)
    assert final_text(reply).startswith("Half an answer") and "restarted" in reply.text
    assert slack.reactions_on("C1", question) == []  # before: the hourglass stayed forever


async def test_the_scheduler_forgets_the_lanes_of_channels_once_they_are_idle(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    for n in range(30):
        await bot.mention(f"question {n}", channel=f"C{n}")
    await bot.idle()

    assert len(slack.messages) == 30
    # Before: one lane (a queue, an event, a task slot) kept per channel ever posted in.
    lanes = bot.runtime.slack_writes.for_team(team).scheduler._lanes
    assert not any(name.startswith("post:") for name in lanes), sorted(lanes)
