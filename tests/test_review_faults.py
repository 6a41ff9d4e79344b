"""Faults found by probing the scheduler, the streamer and the answer flow the way a bad
network, a hostile user or an unlucky scheduling would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot import messages
from tests.clocks import FastClock
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import Bucket, FakeSlack, SlackLimits
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
