"""The store contract, held by both implementations (Redis is the real server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from bot.store import LockTimeout, MemoryStore, RedisStore, Store, StoreUnavailable
from tests.conftest import REDIS_URL


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest, team: str) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield RedisStore(client)
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
