"""A workspace that uninstalls the app (or revokes its bot token) leaves nothing in the store,
and nothing of another workspace sharing the Redis is touched."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as redis

from bot import keys
from bot.degraded_store import FallbackStore
from bot.store import MemoryStore, RedisStore
from bot.uninstall import forget_workspace
from tests.clocks import FastClock
from tests.driver import RunningBot, SlackSender
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.polling import until
from tests.redis_process import RedisProcess

UNINSTALLED = {"type": "app_uninstalled"}
BOT_REVOKED = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}}
USERS_REVOKED = {"type": "tokens_revoked", "tokens": {"oauth": ["U1", "U2"]}}


@pytest.fixture
async def other(team: str, redis_client: redis.Redis) -> AsyncIterator[str]:
    """Another workspace in the same Redis; its id starts with ours (a careless prefix match
    would take it too). Its keys are removed after."""
    other = f"{team}X"
    yield other
    leftovers = await keys_of(redis_client, other)
    if leftovers:
        await redis_client.delete(*leftovers)


async def keys_of(redis_client: redis.Redis, team: str) -> set[str]:
    return {k async for k in redis_client.scan_iter(match=f"cgpt:{team}:*")}


def without_heartbeat(names: set[str]) -> set[str]:
    """A running process renews its `alive` key every second for its token's team; it says
    nothing about the workspace (10 s lifetime) and comes back while the process runs."""
    return {k for k in names if keys.kind(k) != "alive"}


async def seed(redis_client: redis.Redis, team: str, *, background_work: bool) -> set[str]:
    """One key of every kind the bot writes, under `team`. `background_work`: project watches
    and answers in flight too (only for a team no running bot's loops look at)."""
    lock = keys.thread_lock(team, "C9", "1.5")
    await redis_client.set(keys.binding(team, "C9"), "77")
    await redis_client.set(keys.conversation(team, "C9", "1.5"), '{"project_id":"77"}')
    await redis_client.set(keys.message_claim(team, "C9", "1.5"), "1")
    await redis_client.set(lock, "token")
    await redis_client.zadd(f"{lock}:queue", {"ticket": 1.5})
    await redis_client.set(f"{lock}:waiter:ticket", "1")
    await redis_client.set(keys.citation(team, "77", "3"), '{"title":"t","url":"u"}')
    await redis_client.set(keys.project_name(team, "77"), "Secret Docs")
    await redis_client.set(keys.recent_create(team, "U1", "n", "https://x"), "1")
    await redis_client.hset(keys.slack_buckets(team), "update", "1.0")
    await redis_client.zadd(keys.finals_expected(team), {"answer": 1.0})
    if background_work:
        await redis_client.sadd(keys.pending_projects(team), "77")
        await redis_client.set(keys.pending_project(team, "77"), json.dumps({"channel": "C9"}))
        await redis_client.set(keys.watch_owner(team, "77"), "process")
        await redis_client.sadd(keys.inflight_index(team), "C9:1.5")
        await redis_client.set(keys.inflight(team, "C9", "1.5"), "{}")
        await redis_client.set(keys.inflight_takeover(team, "C9", "1.5"), "1")
    return await keys_of(redis_client, team)


async def answered_and_bound(bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT) -> str:
    """Real data of the bot's own workspace: a binding, an answered thread (its ts returned),
    its claims."""
    status, _ = await bot.command("use 42", response_url=slack.response_url("use"))
    assert status == 200
    customgpt.queue_answer(["An ", "answer."])
    ts = await bot.mention("what is the refund policy?")
    await bot.idle()
    assert slack.thread("C1", ts)
    return ts


async def test_uninstall_deletes_every_key_of_the_workspace_and_none_of_another(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
    other: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await answered_and_bound(bot, slack, customgpt)
    ours = await seed(redis_client, team, background_work=False)
    theirs = await seed(redis_client, other, background_work=True)
    assert {keys.kind(k) for k in ours} >= {"conv", "bind", "msg", "slack-buckets"}
    caplog.set_level(logging.INFO)

    status, _ = await bot.event(UNINSTALLED)
    await bot.idle()

    assert status == 200
    assert without_heartbeat(await keys_of(redis_client, team)) == set()
    assert await keys_of(redis_client, other) == theirs
    (line,) = [r.getMessage() for r in caplog.records if "app uninstalled" in r.getMessage()]
    assert team in line and "bind 2" in line and "conv 2" in line
    # What was removed is counted by kind; no channel, key or value is named.
    # (The team id is random hex and may itself hold "C9" or "77": it is taken out first.)
    rest = line.replace(team, "TEAM")
    assert "C9" not in rest and "77" not in rest and "Secret" not in rest and "cgpt" not in rest


async def test_another_workspace_uninstalling_deletes_only_its_own_keys(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
    other: str,
) -> None:
    await answered_and_bound(bot, slack, customgpt)
    ours = without_heartbeat(await keys_of(redis_client, team))
    await seed(redis_client, other, background_work=True)
    sender = SlackSender(bot.url, bot.secret, other, bot.session)

    status, _ = await sender.event(UNINSTALLED)
    await bot.idle()

    assert status == 200
    assert await keys_of(redis_client, other) == set()
    assert without_heartbeat(await keys_of(redis_client, team)) == ours


async def test_a_revoked_bot_token_deletes_the_workspace_data(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
    other: str,
) -> None:
    await answered_and_bound(bot, slack, customgpt)
    theirs = await seed(redis_client, other, background_work=True)

    status, _ = await bot.event(BOT_REVOKED)
    await bot.idle()

    assert status == 200
    assert without_heartbeat(await keys_of(redis_client, team)) == set()
    assert await keys_of(redis_client, other) == theirs


async def test_revoked_user_tokens_keep_the_workspace_data(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    await answered_and_bound(bot, slack, customgpt)
    before = without_heartbeat(await keys_of(redis_client, team))

    status, _ = await bot.event(USERS_REVOKED)
    await bot.idle()

    assert status == 200
    assert without_heartbeat(await keys_of(redis_client, team)) == before
    assert await redis_client.get(keys.binding(team, "C1")) == "42"


async def test_uninstall_with_the_in_process_store_forgets_the_workspace(
    start_bot: Callable[..., Awaitable[RunningBot]],
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    team: str,
) -> None:
    bot = await start_bot(redis_url=None)
    thread = await answered_and_bound(bot, slack, customgpt)
    assert await bot.runtime.answerer.owns_thread(team, "C1", thread)
    store = bot.runtime.store
    assert await store.get(keys.binding(team, "C1")) == "42"

    await bot.event(UNINSTALLED)
    await bot.idle()

    assert await store.get(keys.binding(team, "C1")) is None
    assert not await bot.runtime.answerer.owns_thread(team, "C1", thread)


async def test_deleting_a_prefix_goes_in_batches_and_stops_at_the_prefix(
    redis_client: redis.Redis, team: str, other: str
) -> None:
    store = RedisStore(redis_client)
    many = {keys.message_claim(team, "C1", f"{i}.0") for i in range(1234)}
    await redis_client.mset(dict.fromkeys(many, "1"))
    await redis_client.set(keys.binding(other, "C1"), "42")

    deleted = await store.delete_prefix(keys.workspace(team))

    assert sorted(deleted) == sorted(many)
    assert await keys_of(redis_client, team) == set()
    assert await keys_of(redis_client, other) == {keys.binding(other, "C1")}


async def test_the_in_process_store_deletes_a_prefix_and_stops_at_it() -> None:
    store = MemoryStore()
    await store.set(keys.binding("T1", "C1"), "42")
    await store.add_member(keys.pending_projects("T1"), "77")
    await store.set(keys.binding("T1X", "C1"), "43")

    deleted = await store.delete_prefix(keys.workspace("T1"))

    assert sorted(deleted) == sorted([keys.binding("T1", "C1"), keys.pending_projects("T1")])
    assert await store.members(keys.pending_projects("T1")) == frozenset()
    assert await store.get(keys.binding("T1X", "C1")) == "43"


async def test_an_uninstall_while_redis_is_down_says_so_and_nothing_comes_back_after(
    own_redis: RedisProcess,
    own_client: redis.Redis,
    team: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FallbackStore(RedisStore.from_url(own_redis.url), MemoryStore(), FastClock())
    try:
        await own_redis.stop()
        await store.set(keys.binding(team, "C1"), "7")  # `/customgpt use 7` while Redis is away
        assert await store.get(keys.binding(team, "C1")) == "7"

        assert await forget_workspace(store, team, "app uninstalled") is None
        (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert "store is unreachable" in line and f"still stored under cgpt:{team}:*" in line
        assert await store.get(keys.binding(team, "C1")) is None  # forgotten here at once

        await own_redis.start()  # no persistence: it comes back empty

        async def back() -> bool:
            return not store.down

        await until(back)  # what was written while it was away has been written back
        assert await own_client.get(keys.binding(team, "C1")) is None
    finally:
        await store.close()
