"""One bot, one workspace's token: Slack signs every workspace's requests alike, so a request
for another workspace (the app installed there too) is ignored, while an event from a Slack
Connect channel that Slack authorizes for ours is answered under our team."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tests.driver import RunningBot, SlackSender, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.views import final_text

FEEDBACK_VALUE = '{"p":"42","s":"sess","m":"7"}'


@pytest.fixture
async def foreign(team: str, redis_client: redis.Redis) -> AsyncIterator[str]:
    """Another workspace's team id; whatever the bot might write under it is removed after."""
    other = f"{team}X"
    yield other
    leftovers = [k async for k in redis_client.scan_iter(match=f"cgpt:{other}:*")]
    if leftovers:
        await redis_client.delete(*leftovers)


def sender_for(bot: RunningBot, team: str) -> SlackSender:
    return SlackSender(bot.url, bot.secret, team, bot.session)


async def keys_of(redis_client: redis.Redis, team: str) -> list[str]:
    return [k async for k in redis_client.scan_iter(match=f"cgpt:{team}:*")]


async def test_requests_for_another_workspace_are_ignored_with_one_log_line(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    foreign: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await bot.idle()
    caplog.set_level(logging.INFO)
    caplog.clear()
    stranger = sender_for(bot, foreign)

    await stranger.mention("what is the refund policy?")
    await stranger.message("hello", channel="D1", channel_type="im")
    status, body = await stranger.command("use 42", response_url=slack.response_url("use"))
    click = {
        "type": "block_actions",
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "message": {"ts": "1.2", "text": "an answer", "blocks": []},
        "actions": [
            {"action_id": "feedback_liked", "block_id": "feedback", "value": FEEDBACK_VALUE}
        ],
        "response_url": slack.response_url("click"),
    }
    assert await stranger.action(click) == 200
    await bot.idle()

    assert status == 200 and not body  # an empty ack: nothing shown, nothing done
    assert [c.method for c in slack.calls if c.method != "auth.test"] == []
    assert slack.responses == []
    assert customgpt.requests == []
    assert await keys_of(redis_client, foreign) == []
    # The bot's own lines: each request, signed by Slack, still has its access line.
    lines = [r.getMessage() for r in caplog.records if r.name != "aiohttp.access"]
    assert len(lines) == 1 and "another workspace" in lines[0]
    assert len([r for r in caplog.records if r.name == "aiohttp.access"]) == 4


async def test_a_slack_connect_event_authorized_for_our_workspace_is_answered_as_ours(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
    foreign: str,
) -> None:
    customgpt.queue_answer(["Shared ", "answer."])
    other_side = sender_for(bot, foreign)
    ts = next_ts()
    event = {
        "type": "app_mention",
        "user": "UOTHER",
        "text": "<@UBOT> a question from the other org",
        "ts": ts,
        "channel": "CSHARED",
        "event_ts": ts,
    }
    status, _ = await other_side.event(event, authorized_team=team)
    await bot.idle()

    assert status == 200
    (reply,) = slack.thread("CSHARED", ts)
    assert final_text(reply) == "Shared answer."
    assert customgpt.prompts() == ["a question from the other org"]
    assert await keys_of(redis_client, foreign) == []
    assert any(":conv:CSHARED:" in k for k in await keys_of(redis_client, team))
