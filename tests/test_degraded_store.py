"""Redis goes away, hangs, comes back: the bot keeps answering, and catches Redis up after.

These tests run a Redis server of their own (tests/redis_process.py) so they can stop it,
freeze it and start it again; a hung Redis is also played by a server that never answers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis

from bot import keys, messages
from bot.degraded_store import FallbackStore
from bot.rate_buckets import Bucket, Rate, RedisBuckets
from bot.store import MemoryStore, RedisStore, StoreUnavailable
from tests.clocks import FastClock, ManualClock
from tests.conftest import PROJECT_ID
from tests.driver import RunningBot, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.hung_redis import HungRedis
from tests.fakes.slack import FakeSlack
from tests.polling import until
from tests.redis_process import RedisProcess
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]


def mapping(session_id: str) -> str:
    return json.dumps({"project_id": str(PROJECT_ID), "session_id": session_id})


async def session_of(client: redis.Redis, team: str, channel: str, thread: str) -> str | None:
    raw = await client.get(keys.conversation(team, channel, thread))
    return None if raw is None else str(json.loads(raw)["session_id"])


async def test_the_bot_answers_while_redis_is_down_and_saves_what_it_learned_when_it_returns(
    start_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    own_redis: RedisProcess,
    own_client: redis.Redis,
    team: str,
) -> None:
    # Each question in a channel of its own: the fake Slack limits posts per channel in real
    # time, and the test clock lets the bot's own budget think more time has passed.
    bot = await start_bot(clock=FastClock(), redis_url=own_redis.url)
    ours = await bot.mention("Asked before the outage", channel="C1")
    await bot.idle()
    our_session = await session_of(own_client, team, "C1", ours)
    assert our_session is not None
    theirs = next_ts()  # a thread another replica answered: only Redis knows its conversation
    await own_client.set(keys.conversation(team, "C2", theirs), mapping("their-session"))

    await own_redis.stop()
    during = await bot.mention("Asked during the outage", channel="C3")
    await bot.idle()
    await bot.mention("Our follow-up", channel="C1", thread_ts=ours)
    await bot.idle()
    await bot.mention("Their follow-up", channel="C2", thread_ts=theirs)
    await bot.idle()
    twice = next_ts()
    await bot.mention("Delivered twice", channel="C4", ts=twice, event_id="EvTwice")
    await bot.mention("Delivered twice", channel="C4", ts=twice, event_id="EvTwice")
    await bot.idle()

    replies = slack.messages
    assert len(replies) == 5  # one per question, the twice-delivered one included
    assert all(messages.STORE_DOWN not in m.text for m in replies)
    assert all(final_text(m).startswith("You asked: ") for m in replies)
    assert customgpt.prompts().count("Delivered twice") == 1
    # This process answered our thread: it goes on with the same conversation, no note.
    assert customgpt.prompts(our_session) == ["Asked before the outage", "Our follow-up"]
    assert messages.EARLIER_TURNS_UNSEEN not in slack.thread("C1", ours)[-1].text
    # Their thread's conversation could not be looked up: a new one, and the answer says so.
    (their_reply,) = slack.thread("C2", theirs)
    assert messages.EARLIER_TURNS_UNSEEN in their_reply.text
    assert customgpt.prompts("their-session") == []

    await own_redis.start()  # no persistence: it comes back empty

    # Without a restart, the bot writes back the conversations it used meanwhile …
    async def saved() -> bool:
        return await session_of(own_client, team, "C3", during) is not None

    await until(saved)
    assert await session_of(own_client, team, "C1", ours) == our_session
    their_new = await session_of(own_client, team, "C2", theirs)
    assert their_new is not None and customgpt.prompts(their_new) == ["Their follow-up"]
    # … and uses Redis again: a new question is claimed and mapped there.
    after = await bot.mention("Asked after the outage", channel="C5")
    await bot.idle()
    assert await own_client.exists(keys.message_claim(team, "C5", after)) == 1
    assert await session_of(own_client, team, "C5", after) is not None
    assert final_text(slack.thread("C5", after)[0]).startswith("You asked: ")


async def test_a_conversation_redis_kept_through_a_hang_wins_over_the_one_started_meanwhile(
    start_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    own_redis: RedisProcess,
    own_client: redis.Redis,
    team: str,
) -> None:
    bot = await start_bot(clock=FastClock(), redis_url=own_redis.url)
    theirs = next_ts()
    await own_client.set(keys.conversation(team, "C1", theirs), mapping("their-session"))

    own_redis.pause()  # hung: connections stay open, nothing answers
    await bot.mention("Their follow-up", channel="C1", thread_ts=theirs)
    during = await bot.mention("Asked while Redis hangs", channel="C2")
    await bot.idle()
    own_redis.resume()

    (their_reply,) = slack.thread("C1", theirs)
    assert messages.EARLIER_TURNS_UNSEEN in their_reply.text
    assert final_text(slack.thread("C2", during)[0]).startswith("You asked: ")

    async def saved() -> bool:
        return await session_of(own_client, team, "C2", during) is not None

    await until(saved)
    assert await session_of(own_client, team, "C1", theirs) == "their-session"


async def test_a_hung_redis_costs_one_timeout_not_one_per_call(team: str) -> None:
    async with HungRedis() as hung:
        shared = RedisStore.from_url(hung.url)
        store = FallbackStore(shared, MemoryStore(ManualClock()), ManualClock())
        buckets = RedisBuckets(shared.client, health=store)
        try:
            assert await store.claim(keys.message_claim(team, "C1", "1.0"), 60)  # the one timeout
            conversation = keys.conversation(team, "C1", "1.0")
            await store.set(conversation, mapping("s1"), ttl=60)
            assert await store.get(conversation) == mapping("s1")
            assert not await store.claim(keys.message_claim(team, "C1", "1.0"), 60)
            with pytest.raises(StoreUnavailable):
                await store.lookup(keys.conversation(team, "C1", "2.0"))
            async with store.lock(keys.thread_lock(team, "C1", "1.0"), lease=20, wait=0):
                assert await store.incr(f"cgpt:{team}:counter", 60) == 1
            with pytest.raises(StoreUnavailable):
                await buckets.take(team, [Bucket("update", Rate(50, 3))], 1000.0)
            with pytest.raises(StoreUnavailable):
                await store.ping()
        finally:
            await store.close()

    assert hung.connections == 1


async def test_across_a_hang_a_claim_holds_and_a_binding_changed_meanwhile_is_saved(
    own_redis: RedisProcess, own_client: redis.Redis, team: str
) -> None:
    store = FallbackStore(RedisStore.from_url(own_redis.url), MemoryStore(), FastClock())
    claim = keys.message_claim(team, "C1", "1.0")
    binding = keys.binding(team, "C1")
    try:
        assert await store.claim(claim, 60)  # in Redis, before it hangs
        await own_client.set(binding, "5")
        own_redis.pause()
        # The one call that waits for Redis (a timed-out write could still land when it wakes).
        assert await store.get(keys.project_name(team, "1")) is None
        assert not await store.claim(claim, 60)  # this process still knows it claimed it
        await store.set(binding, "7")  # `/customgpt use 7` while Redis hangs
        assert await store.get(binding) == "7"
        own_redis.resume()

        async def saved() -> bool:
            return await own_client.get(binding) == "7"

        await until(saved)  # the latest choice wins over the binding Redis kept
        assert not await store.claim(claim, 60)
    finally:
        await store.close()


async def test_writes_made_together_while_redis_is_down_are_served_and_the_kept_ones_saved(
    own_redis: RedisProcess, own_client: redis.Redis, team: str
) -> None:
    store = FallbackStore(RedisStore.from_url(own_redis.url), MemoryStore(), FastClock())
    conversation = keys.conversation(team, "C1", "1.0")
    entry = keys.inflight(team, "C1", "1.0")
    try:
        await own_redis.stop()
        # A month, as conversations live: the test clock skips through the probes' waits.
        index = keys.inflight_index(team)
        await store.set_many(
            [(conversation, mapping("s1"), 30 * 86400), (entry, "{}", 60)], [(index, "C1:1.0")]
        )
        assert await store.get(conversation) == mapping("s1")
        assert await store.get(entry) == "{}"
        assert await store.members(index) == {"C1:1.0"}
        await store.delete_many([entry], [(index, "C1:1.0")])
        assert await store.get(entry) is None
        assert await store.members(index) == frozenset()
        await own_redis.start()

        async def saved() -> bool:
            return await own_client.get(conversation) == mapping("s1")

        await until(saved)  # a conversation is written back once Redis answers again
    finally:
        await store.close()
