"""The store contract, held by both implementations (Redis is the real server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.clock import SystemClock
from bot.degraded_store import FallbackStore
from bot.store import (
    LockTimeout,
    MemoryStore,
    RedisStore,
    Store,
    StoreUnavailable,
)
from tests import clocks
from tests.conftest import REDIS_URL
from tests.polling import until


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(params=["redis", "memory", "fallback"])
async def store(request: pytest.FixtureRequest, team: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    if request.param == "redis":
        yield RedisStore(client)
    else:  # what a deployment with REDIS_URL uses, while Redis answers
        yield FallbackStore(RedisStore(client), MemoryStore(), SystemClock())
    keys = [k async for k in client.scan_iter(match=f"cgpt:{team}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_claim_is_won_once(store: Store, team: str) -> None:
    key = f"cgpt:{team}:event:Ev1"
    results = await asyncio.gather(*(store.claim(key, 60) for _ in range(10)))
    assert results.count(True) == 1


async def test_values_round_trip_and_delete(store: Store, team: str) -> None:
    key = f"cgpt:{team}:bind:C1"
    assert await store.get(key) is None
    await store.set(key, "42", ttl=60)
    assert await store.get(key) == "42"
    await store.delete(key)
    assert await store.get(key) is None


async def test_set_if_absent_keeps_the_value_there(store: Store, team: str) -> None:
    key = f"cgpt:{team}:conv:C1:1.0"
    assert await store.set_if_absent(key, "first", ttl=60)
    assert not await store.set_if_absent(key, "second", ttl=60)
    assert await store.lookup(key) == "first"


async def test_several_writes_land_together_with_their_ttls(store: Store, team: str) -> None:
    kept, expiring = f"cgpt:{team}:bind:C1", f"cgpt:{team}:inflight:C1:1.0"
    await store.set(kept, "old")
    await store.set_many([(kept, "new", None), (expiring, "entry", 60)])
    assert (await store.get(kept), await store.get(expiring)) == ("new", "entry")
    await store.set_many([])
    assert await store.get(kept) == "new"


async def test_redis_writes_together_with_each_ttl(team: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    kept, expiring = f"cgpt:{team}:bind:C1", f"cgpt:{team}:inflight:C1:1.0"
    try:
        await RedisStore(client).set_many([(kept, "1", None), (expiring, "2", 60)])
        assert await client.ttl(kept) == -1
        assert 0 < await client.ttl(expiring) <= 60
    finally:
        await client.delete(kept, expiring)
        await client.aclose()


async def test_writes_and_members_go_together_and_leave_together(store: Store, team: str) -> None:
    index, entry, other = (f"cgpt:{team}:inflight", f"cgpt:{team}:inflight:C1:1.0", "C2:2.0")
    await store.add_member(index, other)
    await store.set_many([(entry, "{}", 60)], [(index, "C1:1.0")])
    assert await store.get(entry) == "{}"
    assert await store.members(index) == {"C1:1.0", other}

    await store.delete_many([entry], [(index, "C1:1.0")])
    assert await store.get(entry) is None
    assert await store.members(index) == {other}
    await store.delete_many([])
    assert await store.members(index) == {other}


async def test_counter_counts(store: Store, team: str) -> None:
    key = f"cgpt:{team}:budget:update:1"
    assert [await store.incr(key, 60) for _ in range(3)] == [1, 2, 3]


async def test_sets(store: Store, team: str) -> None:
    key = f"cgpt:{team}:pending"
    await store.add_member(key, "1")
    await store.add_member(key, "2")
    await store.remove_member(key, "1")
    assert await store.members(key) == {"2"}


async def test_lock_serialises_and_times_out(store: Store, team: str) -> None:
    key = f"cgpt:{team}:lock:C1:1"
    async with store.lock(key, lease=5, wait=1):
        with pytest.raises(LockTimeout):
            async with store.lock(key, lease=5, wait=0.05):
                pass
    async with store.lock(key, lease=5, wait=0.05):
        pass


async def test_memory_ttls_follow_the_clock() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    await store.set("k", "v", ttl=10)
    assert await store.claim("c", 10)
    clock.t += 10
    assert await store.get("k") is None
    assert await store.claim("c", 10)


async def test_redis_keys_carry_their_ttl(team: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    store = RedisStore(client)
    try:
        await store.set(f"cgpt:{team}:conv:C1:1", "{}", ttl=30 * 86400)
        await store.incr(f"cgpt:{team}:budget:update:9", 120)
        assert 0 < await client.ttl(f"cgpt:{team}:conv:C1:1") <= 30 * 86400
        assert 0 < await client.ttl(f"cgpt:{team}:budget:update:9") <= 120
    finally:
        await client.delete(f"cgpt:{team}:conv:C1:1", f"cgpt:{team}:budget:update:9")
        await client.aclose()


async def test_a_dead_waiter_does_not_block_the_line(team: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    store = RedisStore(client)
    key = f"cgpt:{team}:lock:C1:dead"
    try:
        # A waiter that died: in line first, with no heartbeat.
        await client.zadd(f"{key}:queue", {"ghost": 0.0})
        async with store.lock(key, lease=5, wait=2, order=1.0):
            assert await client.zrange(f"{key}:queue", 0, -1) == []
    finally:
        await client.delete(f"{key}:queue", key)
        await client.aclose()


async def test_cancelling_a_task_mid_command_is_never_swallowed(team: str) -> None:
    """Shutdown cancels answers; a store call must not eat that cancellation (redis-py 8
    does, which is why the dependency stays below it)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    store = RedisStore(client)
    key = f"cgpt:{team}:conv:C1:cancel"

    async def busy() -> None:
        for _ in range(10_000):
            await store.set(key, "x", ttl=60)
            await store.get(key)

    try:
        for yields in range(60):
            task = asyncio.create_task(busy())
            for _ in range(yields):  # land the cancellation at a different await each time
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        await client.delete(key)
        await client.aclose()


async def test_a_redis_that_never_answers_is_reported_within_the_bound() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, read, never reply
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("cgpt:T:conv:C:1")
    finally:
        await store.close()
        server.close()
        await server.wait_closed()


# -- leases, heartbeats and the line ---------------------------------------------------------


async def test_a_held_lock_reads_as_held_and_then_as_free(store: Store, team: str) -> None:
    key = f"cgpt:{team}:lock:C1:held"
    async with store.lock(key, lease=5, wait=1):
        assert await store.get(key) is not None
    assert await store.get(key) is None


async def test_a_held_lock_outlives_its_lease_while_its_holder_runs(
    redis_client: redis.Redis, team: str
) -> None:
    store, key, lease = RedisStore(redis_client), f"cgpt:{team}:lock:C1:long", 1.0
    loop = asyncio.get_running_loop()
    async with store.lock(key, lease=lease, wait=1):
        token = await redis_client.get(key)
        lapsed_by = loop.time() + 2 * lease  # the lease would have run out twice by then

        async def lease_would_have_lapsed() -> bool:
            assert await redis_client.get(key) == token  # still ours, all along
            assert 0 < await redis_client.pttl(key) <= lease * 1000
            return loop.time() > lapsed_by

        await until(lease_would_have_lapsed)
    assert await redis_client.exists(key) == 0


async def test_a_lock_lost_while_held_is_logged_and_the_work_goes_on(
    redis_client: redis.Redis, team: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, key = RedisStore(redis_client), f"cgpt:{team}:lock:C1:lost"
    async with store.lock(key, lease=0.3, wait=1):
        await redis_client.set(key, "someone else")  # what a lapse and a new holder leave

        async def logged() -> bool:
            return any("lapsed while held" in r.getMessage() for r in caplog.records)

        await until(logged)
    assert await redis_client.get(key) == "someone else"  # the new holder keeps its lock


async def test_a_waiter_dropped_from_the_line_takes_its_place_again(
    redis_client: redis.Redis, team: str
) -> None:
    store, key = RedisStore(redis_client), f"cgpt:{team}:lock:C1:dropped"
    queue = f"{key}:queue"
    taken: list[str] = []

    async def ask(name: str, order: float) -> None:
        async with store.lock(key, lease=5, wait=60, order=order):
            taken.append(name)

    async def queued(count: int) -> bool:
        return await redis_client.zcard(queue) == count

    tasks: list[asyncio.Task[None]] = []
    try:
        async with store.lock(key, lease=5, wait=0, order=0.0):
            tasks = [asyncio.create_task(ask("first", 1.0)), asyncio.create_task(ask("2nd", 2.0))]
            await until(lambda: queued(2))
            # The first waiter missed a heartbeat and a peer dropped it, as `_look` does.
            [(ticket, _)] = await redis_client.zrange(queue, 0, 0, withscores=True)
            await redis_client.zrem(queue, ticket)
            await redis_client.delete(f"{key}:waiter:{ticket}")

            async def back_in_its_place() -> bool:
                return await redis_client.zscore(queue, ticket) == 1.0

            await until(back_in_its_place)
        async with asyncio.timeout(10):  # the waiters would otherwise wait out their 60 s
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    assert taken == ["first", "2nd"]


# -- the in-process store's memory -----------------------------------------------------------


async def test_the_memory_store_forgets_expired_claims() -> None:
    clock = clocks.ManualClock()
    store = MemoryStore(clock)
    held = []
    for i in range(20_000):
        assert await store.claim(f"cgpt:T:event:Ev{i}", 10)
        await store.incr(f"cgpt:T:budget:update:{i // 600}", 120)
        clock.advance(0.01)  # 1,000 claims live at any time, 20,000 made
        held.append(len(store))
    assert max(held) <= 1_000 + 1 + 21  # live claims, plus this and the live budget windows


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from(["set", "claim", "incr"]),
                st.sampled_from("abcd"),
                st.one_of(st.none(), st.integers(1, 30)),
            ),
            st.tuples(st.just("delete"), st.sampled_from("abcd"), st.none()),
            st.tuples(st.just("advance"), st.just(""), st.integers(0, 40)),
        ),
        max_size=60,
    )
)
def test_the_memory_store_keeps_every_live_value_and_only_those(
    ops: list[tuple[str, str, int | None]],
) -> None:
    """Eviction never loses a live value, and after each set, claim or incr the store holds
    nothing expired (reads alone need not evict: they drop only what they read)."""

    async def scenario() -> None:
        clock = clocks.ManualClock()
        store = MemoryStore(clock)
        model: dict[str, tuple[str, float | None]] = {}

        def live(key: str) -> str | None:
            value, expires = model.get(key, ("", None))
            if key not in model or (expires is not None and clock.now() >= expires):
                return None
            return value

        for op, key, n in ops:
            if op == "advance":
                clock.advance(n or 0)
                continue
            if op == "delete":
                await store.delete(key)
                model.pop(key, None)
                continue
            ttl = n or 10  # claims and counters always expire
            if op == "set":
                await store.set(key, "7", ttl=n)
                model[key] = ("7", None if n is None else clock.now() + n)
            elif op == "claim":
                free = live(key) is None
                assert await store.claim(key, ttl) == free
                if free:
                    model[key] = ("1", clock.now() + ttl)
            else:
                current = live(key)
                count = await store.incr(key, ttl)
                assert count == (1 if current is None else int(current) + 1)
                expires = clock.now() + ttl if current is None else model[key][1]
                model[key] = (str(count), expires)
            assert len(store) == sum(live(k) is not None for k in model)
            for k in "abcd":
                assert await store.get(k) == live(k)

    asyncio.run(scenario())
