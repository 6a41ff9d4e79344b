"""The bot's shared state: one small interface, a Redis implementation and an in-process one.

Redis is what makes several replicas (and restarts) safe: answer-once claims, thread locks and the
workspace's edit budget only mean something when every process sees them. The in-process
store is for a single instance on a laptop; it keeps the same semantics, TTLs included.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import redis.asyncio as redis
from redis import __version__ as REDIS_PY_VERSION
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.lock import Lock as RedisLock
from redis.asyncio.sentinel import Sentinel
from redis.driver_info import DriverInfo
from redis.exceptions import LockError, LockNotOwnedError, RedisError

from bot.clock import Clock, SystemClock
from bot.config import Settings

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 2.0  # seconds for any one Redis command or connection
LOCK_POLL = 0.05  # seconds between a Redis lock waiter's looks at the line
PURGE_BATCH = 500  # keys one SCAN step gathers and one UNLINK deletes
WAITER_TTL = 5  # seconds a waiter's heartbeat lives; a dead waiter leaves the line after it
# Connecting is bounded here; each command is bounded by `_reachable`, with asyncio's timeout:
# redis-py's own socket_timeout swallows task cancellation. The library's version is named
# once: left to redis-py, every new connection reads it from the installed package's metadata
# (an email-format parse): 8 % of the CPU during a burst of a thousand questions.
_CONNECTION: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": REDIS_TIMEOUT,
    "driver_info": DriverInfo(name="redis-py", lib_version=REDIS_PY_VERSION),
}


def _glob_escape(text: str) -> str:
    """`text` matched literally by SCAN's MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class LockTimeout(Exception):
    """Someone else held the lock for longer than the caller was willing to wait."""


class StoreUnavailable(Exception):
    """The store could not be reached; callers tell the user instead of going silent."""


P = ParamSpec("P")
R = TypeVar("R")
#: One `set`: key, value and seconds to live (None: until deleted).
Write = tuple[str, str, int | None]
#: A member of a set: the set's key, the member.
Member = tuple[str, str]


def _reachable(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn a Redis connection failure into StoreUnavailable, so callers need not know Redis."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            # A hung Redis must surface within Slack's 3 s, not hold a listener forever.
            async with asyncio.timeout(REDIS_TIMEOUT):
                return await method(*args, **kwargs)
        except (RedisError, OSError, TimeoutError) as error:
            raise StoreUnavailable(f"{type(error).__name__}") from error

    return wrapper


class Store(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def lookup(self, key: str) -> str | None:
        """Like `get`, for a value whose absence means something (a thread's conversation):
        raises StoreUnavailable where `get` would answer None without knowing, which only a
        store serving from memory while Redis is down does (bot/degraded_store.py)."""
        ...

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        """Store a value; `ttl` in seconds, None keeps it until deleted."""
        ...

    async def set_many(self, writes: Sequence[Write], members: Sequence[Member] = ()) -> None:
        """Several `set`s, then `members` added to their sets, in one round trip and in that
        order (not atomic: a failure may leave some done)."""
        ...

    async def delete_many(self, keys: Sequence[str], members: Sequence[Member] = ()) -> None:
        """`members` removed from their sets, then `keys` deleted, in one round trip and in
        that order (not atomic: a failure may leave some done)."""
        ...

    async def claim(self, key: str, ttl: int) -> bool:
        """Set the key only if absent; True for the single caller that set it."""
        ...

    async def set_if_absent(self, key: str, value: str, ttl: int | None = None) -> bool:
        """Store a value unless the key holds one; True when this call stored it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> list[str]:
        """Delete every key whose name starts with `prefix` (a workspace's data, when it
        uninstalls the app); the names deleted. Redis walks its keys with SCAN and deletes
        them a batch at a time, so a large workspace never blocks Redis."""
        ...

    async def incr(self, key: str, ttl: int) -> int:
        """Increment a counter that expires `ttl` seconds after its first increment."""
        ...

    async def add_member(self, key: str, member: str) -> None: ...

    async def remove_member(self, key: str, member: str) -> None: ...

    async def members(self, key: str) -> frozenset[str]: ...

    def lock(
        self, key: str, *, lease: float, wait: float, order: float = 0.0
    ) -> AbstractAsyncContextManager[None]:
        """Hold `key` exclusively while inside; wait up to `wait` seconds, else LockTimeout.

        The holder renews its claim every `lease`/3 seconds for as long as it lives, so work
        longer than `lease` keeps the lock, while a holder that dies without releasing (a
        killed process) frees it at most `lease` seconds later. A renewal that finds the
        lock gone (the store was out of reach for longer than `lease`) is logged; the work
        inside goes on. While the lock is held, `get(key)` is not None.

        Waiters take their turn by `order` (lowest first; the Slack message ts for
        questions), not by who polls first, so follow-ups are answered in the order asked,
        whichever replica received them. A waiter dropped from the line (it missed a
        heartbeat) takes its place again, with the same `order`."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class RedisStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @property
    def client(self) -> redis.Redis:
        """The connection pool, for the Slack rate-limit buckets' script."""
        return self._redis

    @classmethod
    def from_url(
        cls, url: str, max_connections: int = Settings.redis_max_connections
    ) -> RedisStore:
        """One Redis server: `redis://`, `rediss://` (TLS) or `unix://`.

        At most `max_connections` (REDIS_MAX_CONNECTIONS), a command waiting for a free one
        within its REDIS_TIMEOUT: redis-py's default pool has no bound, and a burst of a
        thousand questions opened a thousand connections to Redis for commands of a
        millisecond each."""
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=REDIS_TIMEOUT, **_CONNECTION
        )
        return cls(redis.Redis.from_pool(pool))

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStore:
        """The store over whichever Redis the settings name, through redis-py's own client
        for it: a Sentinel-watched master (found again after a failover), a Cluster (reached
        through any one node), or one server."""
        if settings.redis_sentinels:
            sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                list(settings.redis_sentinels),
                sentinel_kwargs={"socket_connect_timeout": REDIS_TIMEOUT},
            )
            return cls(
                sentinel.master_for(
                    settings.redis_sentinel_master or "",
                    password=settings.redis_password,
                    **_CONNECTION,
                )
            )
        if not settings.redis_url:
            raise ValueError("no Redis is configured")  # callers check `uses_redis` first
        if settings.redis_cluster:
            # RedisCluster routes each command by its key's slot. It offers every command the
            # store and the Slack buckets use, under the same names and arguments (keys used
            # by one script share a hash tag: see bot/keys.py), so one code path serves both.
            return cls(cast(redis.Redis, RedisCluster.from_url(settings.redis_url, **_CONNECTION)))
        return cls.from_url(settings.redis_url, settings.redis_max_connections)

    @_reachable
    async def get(self, key: str) -> str | None:
        value = await self._redis.get(key)
        return None if value is None else str(value)

    async def lookup(self, key: str) -> str | None:
        return await self.get(key)

    @_reachable
    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        await self._redis.set(key, value, ex=ttl)

    @_reachable
    async def set_many(self, writes: Sequence[Write], members: Sequence[Member] = ()) -> None:
        def sets(pipe: Any) -> None:
            for key, value, ttl in writes:
                pipe.set(key, value, ex=ttl)

        def adds(pipe: Any) -> None:
            for key, member in members:
                pipe.sadd(key, member)

        await self._in_order([step for step, some in ((sets, writes), (adds, members)) if some])

    @_reachable
    async def delete_many(self, keys: Sequence[str], members: Sequence[Member] = ()) -> None:
        def removes(pipe: Any) -> None:
            for key, member in members:
                pipe.srem(key, member)

        def deletes(pipe: Any) -> None:
            for key in keys:  # one key a command: a Cluster refuses keys of several slots
                pipe.delete(key)

        await self._in_order([step for step, some in ((removes, members), (deletes, keys)) if some])

    async def _in_order(self, steps: Sequence[Callable[[Any], None]]) -> None:
        """Each step's commands land after the previous step's, in one round trip on one
        server. A Cluster's pipeline sends each node's commands at the same time, so there
        each step is a round trip of its own."""
        batches = [steps] if not isinstance(self._redis, RedisCluster) else [[s] for s in steps]
        for batch in batches:
            async with self._redis.pipeline(transaction=False) as pipe:
                for step in batch:
                    step(pipe)
                await pipe.execute()

    @_reachable
    async def set_if_absent(self, key: str, value: str, ttl: int | None = None) -> bool:
        return bool(await self._redis.set(key, value, ex=ttl, nx=True))

    @_reachable
    async def claim(self, key: str, ttl: int) -> bool:
        return bool(await self._redis.set(key, "1", ex=ttl, nx=True))

    @_reachable
    async def delete(self, key: str) -> None:
        await self._redis.delete(key)

    async def delete_prefix(self, prefix: str) -> list[str]:
        pages = self._redis.scan_iter(match=_glob_escape(prefix) + "*", count=PURGE_BATCH)
        deleted: dict[str, None] = {}  # SCAN may name a key twice
        try:
            while batch := await self._next_keys(pages):
                await self._unlink(batch)
                deleted.update(dict.fromkeys(batch))
        finally:
            await cast(AsyncGenerator[Any, None], pages).aclose()
        return list(deleted)

    @_reachable
    async def _next_keys(self, pages: AsyncIterator[Any]) -> list[str]:
        """Up to PURGE_BATCH more names from a SCAN (each SCAN call is bounded like any)."""
        batch: list[str] = []
        while len(batch) < PURGE_BATCH:
            try:
                batch.append(str(await anext(pages)))
            except StopAsyncIteration:
                break
        return batch

    @_reachable
    async def _unlink(self, names: list[str]) -> None:
        # UNLINK frees the memory in the background; on a Cluster redis-py splits it by slot.
        await self._redis.unlink(*names)

    @_reachable
    async def incr(self, key: str, ttl: int) -> int:
        # SET NX then INCR, not EXPIRE NX: that needs Redis 7, and managed Redis 6 is common.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=ttl, nx=True)
            pipe.incr(key)
            _, count = await pipe.execute()
        return int(count)

    @_reachable
    async def add_member(self, key: str, member: str) -> None:
        await cast(Awaitable[int], self._redis.sadd(key, member))

    @_reachable
    async def remove_member(self, key: str, member: str) -> None:
        await cast(Awaitable[int], self._redis.srem(key, member))

    @_reachable
    async def members(self, key: str) -> frozenset[str]:
        members = await cast(Awaitable[set[str]], self._redis.smembers(key))
        return frozenset(str(m) for m in members)

    @asynccontextmanager
    async def lock(
        self, key: str, *, lease: float, wait: float, order: float = 0.0
    ) -> AsyncIterator[None]:
        lock = self._redis.lock(key, timeout=lease)
        await self._take_turn(key, lock, wait=wait, order=order, ttl=int(lease + wait) + 60)
        heartbeat = asyncio.create_task(self._renew(key, lock, lease), name=f"renew {key}")
        try:
            yield
        finally:
            heartbeat.cancel()
            try:
                await asyncio.wait({heartbeat})
            finally:
                await self._release(key, lock)

    @staticmethod
    async def _renew(key: str, lock: RedisLock, lease: float) -> None:
        """The holder's heartbeat: push the lease back to its full length every `lease`/3
        seconds, so only a holder that stopped running (a killed process) lets it lapse.
        Real time, like the lease itself. A failed renewal is retried at the next beat; one
        that finds the lock gone ends the heartbeat (renewing would take it from its new
        holder)."""
        while True:
            await asyncio.sleep(lease / 3)
            try:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    await lock.reacquire()
            except LockNotOwnedError:
                log.warning("lock %s lapsed while held; the work goes on without it", key)
                return
            except (RedisError, OSError, TimeoutError) as error:
                log.warning("could not renew lock %s: %s", key, type(error).__name__)

    @staticmethod
    async def _release(key: str, lock: RedisLock) -> None:
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                await lock.release()
        except LockError:
            # It lapsed while we held it (the store was out of reach): nothing to free.
            pass
        except (RedisError, OSError, TimeoutError) as error:
            # Redis went away; the lease frees the lock (no heartbeat renews it any more).
            log.warning("could not release %s: %s", key, type(error).__name__)

    async def _take_turn(
        self, key: str, lock: RedisLock, *, wait: float, order: float, ttl: int
    ) -> None:
        """Queue in a sorted set by `order`; take the lock when first in line. Each waiter
        keeps a short-lived heartbeat, so one that died is dropped from the line."""
        queue, ticket = f"{key}:queue", uuid.uuid4().hex
        deadline = asyncio.get_running_loop().time() + wait
        in_line = False
        reachable = True
        try:
            while True:
                try:
                    joined, turn = await self._look(key, queue, ticket, order, ttl, lock)
                except StoreUnavailable:
                    reachable = False  # leaving the line would cost another timeout
                    raise
                if joined and in_line:
                    log.info(
                        "a waiter for %s was dropped from the line; it took its place again", key
                    )
                in_line = True
                if turn:
                    return
                if asyncio.get_running_loop().time() >= deadline:
                    raise LockTimeout(key)
                await asyncio.sleep(LOCK_POLL)
        finally:
            if reachable:
                await self._leave(key, queue, ticket)

    @_reachable
    async def _look(
        self, key: str, queue: str, ticket: str, order: float, ttl: int, lock: RedisLock
    ) -> tuple[bool, bool]:
        """One look at the line: (joined, my turn). Refresh this waiter's heartbeat and make
        sure its ticket is in line: a waiter that missed a heartbeat (a slow event loop, a
        Redis failover) was dropped by another and joins again, in the same place. Take
        the lock if first in line and it is free; drop a dead waiter first in line."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{key}:waiter:{ticket}", "1", ex=WAITER_TTL)
            pipe.zadd(queue, {ticket: order}, nx=True)
            pipe.expire(queue, ttl)
            pipe.zrange(queue, 0, 0)
            _, joined, _, first = await pipe.execute()
        head = [str(member) for member in first]
        if head == [ticket]:
            return bool(joined), bool(await lock.acquire(blocking=False))
        if head and not await self._redis.exists(f"{key}:waiter:{head[0]}"):
            await self._redis.zrem(queue, head[0])
        return bool(joined), False

    @_reachable
    async def _leave(self, key: str, queue: str, ticket: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(queue, ticket)
            pipe.delete(f"{key}:waiter:{ticket}")
            await pipe.execute()

    @_reachable
    async def ping(self) -> None:
        await cast(Awaitable[bool], self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


@dataclass
class _Line:
    """Who holds one in-process lock and who waits for it, in turn order."""

    held: bool = False
    waiting: list[tuple[float, int]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class MemoryStore:
    """Same contract as RedisStore, for one process. Expired values read as absent at once
    and are dropped on the next write: a heap of expiry times makes that cheap, so memory
    follows the keys still alive, not every claim ever made."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._values: dict[str, tuple[str, float | None]] = {}
        self._expiries: list[
            tuple[float, str]
        ] = []  # a heap; entries outdated by a rewrite stay until due
        self._sets: dict[str, set[str]] = {}
        self._lines: dict[str, _Line] = {}
        self._arrivals = itertools.count()

    def __len__(self) -> int:
        """How many keys are held (values and sets): what the process pays in memory."""
        return len(self._values) + len(self._sets)

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and self._clock.now() >= expires:
            del self._values[key]
            return None
        return value

    def _put(self, key: str, value: str, expires: float | None) -> None:
        self._values[key] = (value, expires)
        if expires is not None:
            heapq.heappush(self._expiries, (expires, key))

    def _evict(self) -> None:
        """Drop every value whose time has come; O(log n) for each, paid once. Every call
        that may add a value (set, claim, incr) evicts first."""
        now = self._clock.now()
        while self._expiries and self._expiries[0][0] <= now:
            expires, key = heapq.heappop(self._expiries)
            entry = self._values.get(key)
            if entry is not None and entry[1] == expires:  # not rewritten since
                del self._values[key]

    def _expiry(self, ttl: int | None) -> float | None:
        return None if ttl is None else self._clock.now() + ttl

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def lookup(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        self._evict()
        self._put(key, value, self._expiry(ttl))

    async def set_many(self, writes: Sequence[Write], members: Sequence[Member] = ()) -> None:
        for key, value, ttl in writes:
            await self.set(key, value, ttl)
        for key, member in members:
            await self.add_member(key, member)

    async def delete_many(self, keys: Sequence[str], members: Sequence[Member] = ()) -> None:
        for key, member in members:
            await self.remove_member(key, member)
        for key in keys:
            await self.delete(key)

    async def set_if_absent(self, key: str, value: str, ttl: int | None = None) -> bool:
        self._evict()
        if self._live(key) is not None:
            return False
        self._put(key, value, self._expiry(ttl))
        return True

    async def claim(self, key: str, ttl: int) -> bool:
        return await self.set_if_absent(key, "1", ttl)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._sets.pop(key, None)

    async def delete_prefix(self, prefix: str) -> list[str]:
        self._evict()  # what is left is alive
        names = [k for k in self._values if k.startswith(prefix)]
        names += [k for k in self._sets if k.startswith(prefix)]
        for name in names:
            await self.delete(name)
        return names

    async def incr(self, key: str, ttl: int) -> int:
        self._evict()
        current = self._live(key)
        if current is None:
            self._put(key, "1", self._expiry(ttl))
            return 1
        count = int(current) + 1
        self._values[key] = (str(count), self._values[key][1])
        return count

    async def add_member(self, key: str, member: str) -> None:
        self._sets.setdefault(key, set()).add(member)

    async def remove_member(self, key: str, member: str) -> None:
        members = self._sets.get(key)
        if members is not None:
            members.discard(member)
            if not members:  # as in Redis: an empty set is no key at all
                del self._sets[key]

    async def members(self, key: str) -> frozenset[str]:
        return frozenset(self._sets.get(key, ()))

    @asynccontextmanager
    async def lock(
        self, key: str, *, lease: float, wait: float, order: float = 0.0
    ) -> AsyncIterator[None]:
        # One process: nothing can be orphaned by a crash, so `lease` is moot.
        line = self._lines.setdefault(key, _Line())
        place = (order, next(self._arrivals))
        line.waiting.append(place)
        line.waiting.sort()

        def my_turn() -> bool:
            return not line.held and line.waiting[0] == place

        try:
            async with line.changed:
                if not my_turn():
                    if wait <= 0:
                        raise LockTimeout(key)
                    try:
                        await asyncio.wait_for(line.changed.wait_for(my_turn), wait)
                    except TimeoutError:
                        raise LockTimeout(key) from None
                line.held = True
        finally:
            line.waiting.remove(place)
            async with line.changed:
                line.changed.notify_all()  # the head of the line may have changed
        self._values[key] = ("held", None)  # as in Redis: a held lock's key has a value
        try:
            yield
        finally:
            self._values.pop(key, None)
            async with line.changed:
                line.held = False
                line.changed.notify_all()
            if not line.waiting and not line.held:
                self._lines.pop(key, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
