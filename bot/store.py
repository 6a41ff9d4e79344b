"""The bot's shared state: one small interface, a Redis implementation and an in-process one.

Redis is what makes several replicas (and restarts) safe: event claims, thread locks and the
workspace's edit budget only mean something when every process sees them. The in-process
store is for a single instance on a laptop; it keeps the same semantics, TTLs included.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ParamSpec, Protocol, TypeVar

import redis.asyncio as redis
from redis.exceptions import LockError, RedisError

from bot.clock import Clock, SystemClock

log = logging.getLogger(__name__)


class LockTimeout(Exception):
    """Someone else held the lock for longer than the caller was willing to wait."""


class StoreUnavailable(Exception):
    """The store could not be reached; callers tell the user instead of going silent."""


P = ParamSpec("P")
R = TypeVar("R")


def _reachable(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn a Redis connection failure into StoreUnavailable, so callers need not know Redis."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"{type(error).__name__}") from error

    return wrapper


class Store(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        """Store a value; `ttl` in seconds, None keeps it until deleted."""
        ...

    async def claim(self, key: str, ttl: int) -> bool:
        """Set the key only if absent; True for the single caller that set it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl: int) -> int:
        """Increment a counter that expires `ttl` seconds after its first increment."""
        ...

    async def add_member(self, key: str, member: str) -> None: ...

    async def remove_member(self, key: str, member: str) -> None: ...

    async def members(self, key: str) -> frozenset[str]: ...

    def lock(self, key: str, *, lease: float, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold `key` exclusively for at most `lease` seconds (then it lapses, so a crashed
        holder cannot block a thread forever); wait up to `wait` seconds, else LockTimeout."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class RedisStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        return cls(redis.Redis.from_url(url, decode_responses=True))

    @_reachable
    async def get(self, key: str) -> str | None:
        value = await self._redis.get(key)
        return None if value is None else str(value)

    @_reachable
    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        await self._redis.set(key, value, ex=ttl)

    @_reachable
    async def claim(self, key: str, ttl: int) -> bool:
        return bool(await self._redis.set(key, "1", ex=ttl, nx=True))

    @_reachable
    async def delete(self, key: str) -> None:
        await self._redis.delete(key)

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
        await self._redis.sadd(key, member)

    @_reachable
    async def remove_member(self, key: str, member: str) -> None:
        await self._redis.srem(key, member)

    @_reachable
    async def members(self, key: str) -> frozenset[str]:
        return frozenset(str(m) for m in await self._redis.smembers(key))

    @asynccontextmanager
    async def lock(self, key: str, *, lease: float, wait: float) -> AsyncIterator[None]:
        lock = self._redis.lock(key, timeout=lease, blocking_timeout=wait)
        if not await _reachable(lock.acquire)():
            raise LockTimeout(key)
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockError:
                # It lapsed while we held it (an answer longer than `lease`): nothing to free.
                pass
            except RedisError as error:
                # Redis went away mid-answer; the lease frees the lock when it comes back.
                log.warning("could not release %s: %s", key, type(error).__name__)

    @_reachable
    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class MemoryStore:
    """Same contract as RedisStore, for one process; TTLs are checked lazily on read."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._values: dict[str, tuple[str, float | None]] = {}
        self._sets: dict[str, set[str]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and self._clock.now() >= expires:
            del self._values[key]
            return None
        return value

    def _expiry(self, ttl: int | None) -> float | None:
        return None if ttl is None else self._clock.now() + ttl

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        self._values[key] = (value, self._expiry(ttl))

    async def claim(self, key: str, ttl: int) -> bool:
        if self._live(key) is not None:
            return False
        self._values[key] = ("1", self._expiry(ttl))
        return True

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._sets.pop(key, None)

    async def incr(self, key: str, ttl: int) -> int:
        current = self._live(key)
        if current is None:
            self._values[key] = ("1", self._expiry(ttl))
            return 1
        count = int(current) + 1
        self._values[key] = (str(count), self._values[key][1])
        return count

    async def add_member(self, key: str, member: str) -> None:
        self._sets.setdefault(key, set()).add(member)

    async def remove_member(self, key: str, member: str) -> None:
        self._sets.get(key, set()).discard(member)

    async def members(self, key: str) -> frozenset[str]:
        return frozenset(self._sets.get(key, ()))

    @asynccontextmanager
    async def lock(self, key: str, *, lease: float, wait: float) -> AsyncIterator[None]:
        # One process: an asyncio.Lock cannot be orphaned by a crash, so `lease` is moot.
        # Locks are counted by their users so an idle thread's lock is forgotten, not leaked.
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            if wait <= 0 and lock.locked():
                raise LockTimeout(key)
            try:
                # An unheld lock is taken at once; wait_for with 0 would refuse even that.
                await asyncio.wait_for(lock.acquire(), wait if lock.locked() else None)
            except TimeoutError:
                raise LockTimeout(key) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
