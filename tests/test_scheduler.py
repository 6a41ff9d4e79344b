"""A burst of questions loses no answer: the workspace's Slack call scheduler, seen from Slack.

The fake Slack enforces token buckets like Slack's (429 + Retry-After beyond them); the bot
runs unmodified against it. Where time matters, the bot and the fake share one virtual clock,
so a minute of Slack's limits passes in milliseconds and no test sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.slack_format import TYPING_MARKER
from tests.clocks import FastClock
from tests.driver import RunningBot, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import Bucket, FakeMessage, FakeSlack, SlackLimits
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]

ANSWER = ["The ", "answer ", "to ", "question ", "{n} ", "is ", "here."]


def words(n: int) -> list[str]:
    return [chunk.format(n=n) for chunk in ANSWER]


def complete(reply: FakeMessage, n: int) -> bool:
    """The whole answer, final (no typing marker), with its feedback buttons."""
    text = final_text(reply)
    has_buttons = any(b.get("type") == "actions" for b in reply.blocks or [])
    return text == "".join(words(n)) and TYPING_MARKER not in reply.text and has_buttons


def all_complete(slack: FakeSlack, asked: list[tuple[str, str, int]]) -> bool:
    """Every question has exactly one reply, and the replies carry every answer in full.

    CustomGPT's answers go to whichever question asked first, so they are matched as a set."""
    threads = replies(slack, asked)
    if any(len(thread) != 1 for thread in threads):
        return False
    answers = sorted(final_text(thread[0]) for thread in threads)
    return answers == sorted("".join(words(n)) for _, _, n in asked) and all(
        complete(thread[0], int(final_text(thread[0]).split()[4])) for thread in threads
    )


def limits(update: Bucket, post: Bucket, workspace_post: Bucket | None = None) -> SlackLimits:
    return SlackLimits(
        chat_update=update,
        post_per_channel=post,
        post_per_workspace=workspace_post or Bucket(1000, 6000),
        reactions=Bucket(20, 50),
    )


@pytest.fixture
async def clock(slack: FakeSlack) -> AsyncIterator[FastClock]:
    """The bot's clock, shared with the fake Slack's buckets."""
    shared = FastClock()
    slack.clock = shared
    yield shared


def dump(slack: FakeSlack) -> str:
    return "\n".join(
        f"{c.at:.2f} {c.method} {c.params.get('channel')} {c.status} {c.error}" for c in slack.calls
    )


async def ask_many(
    bot: RunningBot, customgpt: FakeCustomGPT, count: int, channels: int
) -> list[tuple[str, str, int]]:
    asked = []
    for n in range(count):
        customgpt.queue_answer(words(n))
    for n in range(count):
        channel = f"C{n % channels}"
        asked.append((channel, await bot.mention(f"question {n}", channel=channel), n))
    return asked


def replies(slack: FakeSlack, asked: list[tuple[str, str, int]]) -> list[list[FakeMessage]]:
    return [slack.thread(channel, ts) for channel, ts, _ in asked]


# Three tests in real time: a virtual clock that jumps while a call is on its way would make
# the bot's and Slack's buckets disagree by the jump. Slack's limits are scaled up instead.
FAST = {"slack_post_budget": 240, "slack_post_burst": 2}


async def test_a_burst_over_tight_limits_answers_every_question_in_full_with_no_429(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    # Slack's shape, sped up: 4 edits at once then 4 a second for the workspace, 2 posts at
    # once then 4 a second per channel. The bot is configured with the same budgets.
    slack.limits = limits(update=Bucket(4, 240), post=Bucket(2, 240))
    bot = await start_bot(slack_update_budget=240, slack_update_burst=4, **FAST)
    asked = await ask_many(bot, customgpt, count=12, channels=3)
    await bot.idle()

    assert all_complete(slack, asked)
    assert slack.count_429() == 0, dump(slack)  # admitted by the buckets, not by refusals


async def test_posts_across_many_channels_stay_within_the_workspace_post_budget(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    # Each channel could take its post at once; the workspace allows 2 at once then 4 a
    # second across all channels, and the bot is told so.
    slack.limits = limits(
        update=Bucket(20, 2400), post=Bucket(5, 2400), workspace_post=Bucket(2, 240)
    )
    bot = await start_bot(
        slack_update_budget=2400,
        slack_update_burst=20,
        slack_post_budget=2400,
        slack_post_burst=5,
        slack_workspace_post_budget=240,
        slack_workspace_post_burst=2,
    )
    asked = await ask_many(bot, customgpt, count=12, channels=12)
    await bot.idle()

    assert all_complete(slack, asked)
    assert slack.count_429() == 0, dump(slack)


async def test_slack_stricter_than_configured_costs_a_few_429s_and_no_answer(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    # Slack refills edits at half the rate the bot was told: its 429s slow the bucket down.
    slack.limits = limits(update=Bucket(4, 120), post=Bucket(2, 240))
    bot = await start_bot(
        slack_update_budget=240, slack_update_burst=4, slack_overload_wait=3600, **FAST
    )
    asked = await ask_many(bot, customgpt, count=12, channels=3)
    await bot.idle()

    assert all_complete(slack, asked)
    assert 0 < slack.count_429("chat.update") <= 5, dump(slack)


async def test_two_bots_sharing_redis_stay_within_one_workspace_budget(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    slack.limits = limits(update=Bucket(3, 240), post=Bucket(2, 240))
    budgets = {"slack_update_budget": 240, "slack_update_burst": 3, **FAST}
    first = await start_bot(**budgets)
    second = await start_bot(**budgets)
    for n in range(16):
        customgpt.queue_answer(words(n))
    asked = []
    for n in range(16):
        bot = first if n % 2 else second
        channel = f"C{n % 4}"
        asked.append((channel, await bot.mention(f"q{n}", channel=channel), n))
    await first.idle()
    await second.idle()

    # Either replica alone would have spent its own 3 + 4/s: together they spent one.
    assert slack.count_429() == 0, dump(slack)
    assert slack.max_calls_in_window("chat.update", 1.0) <= 3 + 4
    assert all_complete(slack, asked)


async def test_one_429_pauses_every_answer_for_its_retry_after(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, clock: FastClock
) -> None:
    bot = await start_bot(clock=clock)
    slack.rate_limit("chat.update", times=1, retry_after=30)
    asked = await ask_many(bot, customgpt, count=4, channels=4)
    await bot.idle()

    updates = slack.calls_to("chat.update")
    refused = next(c for c in updates if c.ratelimited)
    after = [c for c in updates if c.index > refused.index]
    assert after, "the answers went on after the pause"
    # No answer's edit went out during the pause, whichever answer drew the 429.
    assert all(c.at >= refused.at + 30 for c in after), dump(slack)
    assert len({c.params["channel"] for c in after}) == 4
    assert all_complete(slack, asked)


async def test_a_final_text_is_not_abandoned_however_long_slack_rate_limits(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, clock: FastClock
) -> None:
    bot = await start_bot(clock=clock)
    held = customgpt.queue_answer(words(1), hold_after=3)
    ts = await bot.mention("q")
    await held.reached_hold.wait()
    slack.rate_limit("chat.update", times=20, retry_after=5)  # more than any retry count
    held.release.set()
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert complete(reply, 1)
    assert slack.count_429("chat.update") == 20


@pytest.mark.parametrize(
    "failure",
    [{"status": 503}, {"status": 500, "json_body": True}, {"error": "internal_error"}],
    ids=["http-503", "http-500", "internal_error"],
)
async def test_passing_slack_failures_on_the_final_edit_are_retried(
    start_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    clock: FastClock,
    failure: dict[str, object],
) -> None:
    bot = await start_bot(clock=clock)
    held = customgpt.queue_answer(words(1), hold_after=len(ANSWER))
    ts = await bot.mention("q")
    await held.reached_hold.wait()
    await slack.wait_for(lambda: len(slack.calls_to("chat.update")) >= 1)
    slack.fail("chat.update", times=2, **failure)  # type: ignore[arg-type]
    held.release.set()
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert complete(reply, 1)
    assert "refused" not in reply.text


async def test_a_placeholder_post_refused_in_passing_is_posted_once_it_surely_did_not_land(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, clock: FastClock
) -> None:
    bot = await start_bot(clock=clock)
    customgpt.queue_answer(words(1))
    slack.fail("chat.postMessage", times=2, status=503)
    ts = await bot.mention("q")
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert complete(reply, 1)


async def test_a_deleted_placeholder_still_gets_the_answer_as_a_fresh_reply(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    held = customgpt.queue_answer(words(1), hold_after=2)
    ts = await bot.mention("q")
    await held.reached_hold.wait()
    (placeholder,) = slack.thread("C1", ts)
    placeholder.deleted = True  # someone deleted the bot's reply mid-answer
    held.release.set()
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert reply.ts != placeholder.ts
    assert complete(reply, 1)


async def test_when_edits_are_scarce_answers_arrive_whole_with_an_hourglass_meanwhile(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, clock: FastClock
) -> None:
    # Two edits a minute for the whole workspace, posts plentiful: twelve questions in
    # twelve channels cannot all wait for an edit each.
    slack.limits = limits(update=Bucket(2, 2), post=Bucket(5, 60))
    bot = await start_bot(
        clock=clock,
        slack_update_budget=2,
        slack_update_burst=2,
        slack_overload_wait=5.0,
    )
    asked = await ask_many(bot, customgpt, count=12, channels=12)
    await bot.idle()

    assert all_complete(slack, asked)
    threads = replies(slack, asked)
    whole = [thread[0] for thread in threads if len(thread[0].edits) == 1]
    assert len(whole) >= 8, "most answers were posted whole, with no placeholder"
    for channel, ts, _ in asked:
        history = slack.reaction_history(channel, ts)
        assert slack.reactions_on(channel, ts) == [], "every hourglass is gone at the end"
        assert history in (
            [],
            [("added", "hourglass_flowing_sand"), ("removed", "hourglass_flowing_sand")],
        )
    assert any(slack.reaction_history(c, ts) for c, ts, _ in asked)
    assert slack.count_429() == 0, dump(slack)


async def test_a_question_whose_placeholder_must_wait_shows_an_hourglass_until_it_appears(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    # One post every 4 s in the question's channel, in real time (a virtual clock would let
    # the 2-second hourglass delay and the post's wait pass in either order): the second and
    # third placeholders wait 4 and 8 s, well past the 2 s after which the hourglass shows.
    slack.limits = limits(update=Bucket(20, 50), post=Bucket(1, 15))
    bot = await start_bot(slack_post_budget=15, slack_post_burst=1)
    asked = await ask_many(bot, customgpt, count=3, channels=1)
    await bot.idle()

    assert all_complete(slack, asked)
    # Whichever question's placeholder went first, the two that waited showed the hourglass
    # until their reply appeared.
    shown_and_gone = [("added", "hourglass_flowing_sand"), ("removed", "hourglass_flowing_sand")]
    histories = sorted(slack.reaction_history(channel, ts) for channel, ts, _ in asked)
    assert histories == [[], shown_and_gone, shown_and_gone]


async def test_a_burst_at_start_up_asks_slack_who_the_bot_is_only_once(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    # Thirty first questions at once: one auth.test, not one per request (Slack's Tier 3
    # would refuse most of them, and the questions with them).
    bot = await start_bot()
    for n in range(30):
        customgpt.queue_answer(words(n))
    channels = [f"C{n % 10}" for n in range(30)]
    stamps = [next_ts() for _ in range(30)]
    await asyncio.gather(
        *(
            bot.mention(f"question {n}", channel=channel, ts=ts)
            for n, (channel, ts) in enumerate(zip(channels, stamps, strict=True))
        )
    )
    await bot.idle()

    assert len(slack.calls_to("auth.test")) == 1
    assert all_complete(slack, list(zip(channels, stamps, range(30), strict=True)))
