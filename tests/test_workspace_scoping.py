"""Two workspaces in one Redis, each with its bot process (its own token, its own Slack):
bindings, watches and feedback of one never touch the other's, even for the same channel id
(ids are only unique within a workspace)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as redis

from bot import keys
from tests.clocks import FastClock
from tests.driver import RunningBot, SlackSender
from tests.fakes.customgpt import FIRST_CREATED_PROJECT_ID, FakeCustomGPT
from tests.fakes.slack import FakeSlack, SlackLimits
from tests.polling import until
from tests.test_answer_presentation import click
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]
SITEMAP = "https://beta.example/sitemap.xml"


@pytest.fixture
async def other(team: str, redis_client: redis.Redis) -> AsyncIterator[str]:
    other = f"{team}X"  # starts with the first team's id: a loose prefix would take both
    yield other
    leftovers = await keys_of(redis_client, other)
    if leftovers:
        await redis_client.delete(*leftovers)


@pytest.fixture
async def other_slack(other: str) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(team_id=other, limits=SlackLimits.slack()) as fake:
        yield fake


async def keys_of(redis_client: redis.Redis, team: str) -> set[str]:
    names = {k async for k in redis_client.scan_iter(match=f"cgpt:{team}:*")}
    return {k for k in names if keys.kind(k) != "alive"}  # each process's heartbeat


async def watch_taken(redis_client: redis.Redis, team: str, project_id: str) -> bool:
    """B's watch owns its project and is done taking the lock (no queue or waiter left):
    B's keys stay as they are while it is held at its first sleep."""
    owner = keys.watch_owner(team, project_id)
    if not await redis_client.exists(owner):
        return False
    return not [k async for k in redis_client.scan_iter(match=f"{owner}:*")]


async def command(sender: SlackSender, slack: FakeSlack, text: str, channel: str) -> None:
    status, _ = await sender.command(text, response_url=slack.response_url(text), channel=channel)
    assert status == 200


async def pending_in(redis_client: redis.Redis, team: str) -> bool:
    return bool(await redis_client.smembers(keys.pending_projects(team)))


def asked_projects(customgpt: FakeCustomGPT) -> list[str]:
    return [r.path.split("/")[2] for r in customgpt.requests if r.path.endswith("/messages")]


async def test_bindings_watches_and_feedback_stay_in_their_workspace(
    start_bot: StartBot,
    slack: FakeSlack,
    other_slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
    other: str,
) -> None:
    customgpt.add_project(43, "Beta Docs")
    customgpt.default_index_steps = [(3, 1, 0), (10, 10, 10)]
    bot_a = await start_bot()
    clock_b = FastClock()
    clock_b.hold()  # B's project watch stops at its first sleep: pending while A works
    bot_b = await start_bot(slack_api_url=other_slack.api_url, clock=clock_b)
    b = SlackSender(bot_b.url, bot_b.secret, other, bot_b.session)

    await command(bot_a, slack, "use 42", "C1")
    await command(b, other_slack, "use 43", "C1")  # the same channel id, another workspace
    await command(b, other_slack, f"create Beta {SITEMAP}", "C2")
    await bot_a.idle()
    await other_slack.wait_for(lambda: any(m.channel == "C2" for m in other_slack.messages))
    # B's `use` has written all it writes once it replied; its watch is listed after its post.
    await other_slack.wait_for(lambda: any(n == "use 43" for n, _ in other_slack.responses))
    await until(lambda: pending_in(redis_client, other))
    assert await redis_client.get(keys.binding(team, "C1")) == "42"
    assert await redis_client.get(keys.binding(other, "C1")) == "43"
    new_id = str(FIRST_CREATED_PROJECT_ID)
    # The status message is posted before the watch is stored: wait for the store too.
    await until(lambda: redis_client.sismember(keys.pending_projects(other), new_id))
    assert await redis_client.smembers(keys.pending_projects(other)) == {new_id}
    await until(lambda: watch_taken(redis_client, other, new_id))
    theirs = await keys_of(redis_client, other)

    # Workspace A asks, rates the answer, unbinds its C1 and looks at its pending watches.
    customgpt.queue_answer(["For A."], message_id=7)
    ts = await bot_a.mention("question in A")
    await bot_a.idle()
    (reply,) = slack.thread("C1", ts)
    assert await bot_a.action(click(reply, "feedback_liked", slack.response_url("fb"))) == 200
    await command(bot_a, slack, "use default", "C1")
    await command(bot_a, slack, f"status {new_id}", "C1")
    await bot_a.idle()

    assert asked_projects(customgpt) == ["42"]
    assert [f[0] for f in customgpt.feedback] == [42]
    assert await redis_client.get(keys.binding(team, "C1")) is None
    assert await keys_of(redis_client, other) == theirs  # nothing of B changed
    assert await redis_client.smembers(keys.pending_projects(team)) == set()
    assert other_slack.messages and all(m.channel == "C2" for m in other_slack.messages)

    # B, still bound, asks its own project; its watch ends in B alone.
    customgpt.queue_answer(["For B."])
    await b.mention("question in B")
    clock_b.release()
    await bot_b.idle()
    await other_slack.wait_for(
        lambda: any("is ready" in final_text(m) for m in other_slack.messages)
    )
    assert asked_projects(customgpt) == ["42", "43"]
    assert await redis_client.get(keys.binding(other, "C2")) == new_id
    assert await redis_client.get(keys.binding(team, "C2")) is None
    assert not any(m.channel == "C2" for m in slack.messages)
