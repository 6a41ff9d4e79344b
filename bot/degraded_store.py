"""The store a Redis deployment uses: Redis while it answers, this process's memory while not.

A knowledge-base bot whose store is down should still answer: the people asking don't care
about our store, and CustomGPT keeps each conversation's history on its side. So every call
goes to Redis unless Redis is marked down; a call that fails marks it down and is served from
memory (a MemoryStore, with the same semantics). While down, nothing waits on Redis: a hung
Redis costs the calls in flight one timeout, not every call after them. A background probe
pings Redis every PROBE_EVERY seconds; once it answers, what this process learned meanwhile
is written back, and Redis is used again.

What memory keeps, and why:
- claims are always made in memory too, before Redis: one process never answers a message
  twice, whether Redis went away or came back between two deliveries;
- thread locks are always taken in memory too, for the same reason (one process never
  answers two questions of a thread at once);
- conversation mappings, channel bindings and workspaces' CustomGPT keys are copied into
  memory as they are written (bindings and keys as they are read too), so a replica knows the
  threads it answered, the channels it serves and the keys it asks with through an outage;
- the rest (edit budgets, journal entries, caches) lives in memory only while Redis is down.

Written back when Redis returns: conversation mappings written while it was away, unless
Redis holds one for that thread (the one in Redis carries the thread's earlier turns: it
wins), and bindings and keys changed while it was away (an admin's latest choice: ours wins).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from bot import keys
from bot.clock import Clock
from bot.store import Member, MemoryStore, RedisStore, StoreUnavailable, Write

log = logging.getLogger(__name__)

PROBE_EVERY = 3.0  # seconds between pings while Redis is marked down

R = TypeVar("R")


@dataclass(frozen=True)
class _Unsaved:
    """A write made while Redis was down, to be written back when it returns."""

    value: str | None  # None: the key was deleted
    expires: float | None  # on the clock's monotonic scale; None: kept until deleted


def _kept(key: str) -> bool:
    """Keys copied into memory as they are written, and written back after an outage."""
    return keys.is_conversation(key) or _copied_on_read(key)


def _copied_on_read(key: str) -> bool:
    """Keys read far more often than written, copied into memory as they are read too: a
    channel's binding, a workspace's CustomGPT key (encrypted as in Redis)."""
    return keys.is_binding(key) or keys.is_customgpt_key(key)


class FallbackStore:
    """The Store protocol over Redis, with this process's memory standing in while Redis is
    down. Also the Slack buckets' view of Redis's health (`down`, `failed`), so they skip
    Redis while it is marked down instead of paying a timeout each."""

    def __init__(
        self,
        shared: RedisStore,
        local: MemoryStore,
        clock: Clock,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        """`on_failure`: told of every Redis failure ("fallback": the metrics count them)."""
        self._on_failure = on_failure
        self._shared = shared
        self._local = local
        self._clock = clock
        self._down = False
        self._probe: asyncio.Task[None] | None = None
        self._unsaved: dict[str, _Unsaved] = {}
        self._closed = False

    # -- health ------------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        """True while Redis is marked down: calls are served from memory without trying it."""
        return self._down

    def failed(self, error: BaseException) -> None:
        """A Redis call failed: mark Redis down and probe it in the background until it
        answers again."""
        if self._on_failure is not None:
            self._on_failure("fallback")
        if not self._down:
            log.warning(
                "store unreachable (%s): answering from this process's memory until it returns",
                error,
            )
        self._down = True
        if not self._closed and (self._probe is None or self._probe.done()):
            self._probe = asyncio.create_task(self._recover(), name="store probe")

    async def _recover(self) -> None:
        while True:
            await self._clock.sleep(PROBE_EVERY)
            try:
                await self._shared.ping()
                written = await self._write_back()
            except StoreUnavailable as error:
                log.debug("store still unreachable (%s)", error)
                continue
            # No await since the last unsaved write was written: nothing is left behind.
            self._down = False
            log.warning(
                "store reachable again: using it; %d key(s) written while it was away saved",
                written,
            )
            return

    async def _write_back(self) -> int:
        """Save the writes made while Redis was down; how many were saved. Writes made while
        this runs are saved too (Redis is still marked down until it returns)."""
        written = 0
        while self._unsaved:
            key, unsaved = next(iter(self._unsaved.items()))
            await self._save(key, unsaved)
            if self._unsaved.get(key) is unsaved:  # not written again meanwhile
                del self._unsaved[key]
            written += 1
        return written

    async def _save(self, key: str, unsaved: _Unsaved) -> None:
        if unsaved.value is None:
            await self._shared.delete(key)
            return
        ttl: int | None = None
        if unsaved.expires is not None:
            ttl = math.ceil(unsaved.expires - self._clock.now())
            if ttl <= 0:
                return  # it expired while Redis was away
        if not keys.is_conversation(key):
            await self._shared.set(key, unsaved.value, ttl)
        elif not await self._shared.set_if_absent(key, unsaved.value, ttl):
            # Redis knows the thread's conversation, with its earlier turns: that one wins.
            await self._local.delete(key)

    def _remember(self, key: str, value: str | None, ttl: int | None) -> None:
        if not _kept(key) or (value is None and keys.is_conversation(key)):
            return  # a conversation deleted here must not delete the one Redis may hold
        expires = None if ttl is None else self._clock.now() + ttl
        self._unsaved[key] = _Unsaved(value, expires)

    async def _either(
        self, shared: Callable[[], Awaitable[R]], local: Callable[[], Awaitable[R]]
    ) -> R:
        """Redis unless it is marked down; memory when it is, or when this call fails."""
        if not self._down:
            try:
                return await shared()
            except StoreUnavailable as error:
                self.failed(error)
        return await local()

    # -- the Store protocol ------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        if not self._down:
            try:
                value = await self._shared.get(key)
            except StoreUnavailable as error:
                self.failed(error)
            else:
                if _copied_on_read(key):
                    await self._copy(key, value, None)
                return value
        return await self._local.get(key)

    async def lookup(self, key: str) -> str | None:
        value = await self.get(key)
        if value is None and self._down:
            raise StoreUnavailable("not known to this process while the store is down")
        return value

    async def set(self, key: str, value: str, ttl: int | None = None) -> None:
        if not self._down:
            try:
                await self._shared.set(key, value, ttl)
            except StoreUnavailable as error:
                self.failed(error)
            else:
                if _kept(key):
                    await self._local.set(key, value, ttl)
                return
        await self._local.set(key, value, ttl)
        self._remember(key, value, ttl)

    async def set_many(self, writes: Sequence[Write], members: Sequence[Member] = ()) -> None:
        if not self._down:
            try:
                await self._shared.set_many(writes, members)
            except StoreUnavailable as error:
                self.failed(error)
            else:
                await self._local.set_many([write for write in writes if _kept(write[0])])
                return
        for write in writes:
            await self.set(*write)  # Redis is down: each is kept here and written back later
        for member in members:
            await self._local.add_member(*member)

    async def delete_many(self, keys: Sequence[str], members: Sequence[Member] = ()) -> None:
        for key in keys:
            await self._local.delete(key)
        if not self._down:
            try:
                await self._shared.delete_many(keys, members)
            except StoreUnavailable as error:
                self.failed(error)
            else:
                return
        for member in members:
            await self._local.remove_member(*member)
        for key in keys:
            self._remember(key, None, None)

    async def set_if_absent(self, key: str, value: str, ttl: int | None = None) -> bool:
        if not self._down:
            try:
                stored = await self._shared.set_if_absent(key, value, ttl)
            except StoreUnavailable as error:
                self.failed(error)
            else:
                if stored and _kept(key):
                    await self._local.set(key, value, ttl)
                return stored
        stored = await self._local.set_if_absent(key, value, ttl)
        if stored:
            self._remember(key, value, ttl)
        return stored

    async def claim(self, key: str, ttl: int) -> bool:
        # Memory first, always: a delivery claimed here before Redis went away (or came back)
        # is never claimed here again.
        if not await self._local.claim(key, ttl):
            return False
        return await self._either(lambda: self._shared.claim(key, ttl), _claimed)

    async def delete(self, key: str) -> None:
        await self._local.delete(key)
        await self._either(lambda: self._shared.delete(key), _nothing)
        if self._down:
            self._remember(key, None, None)

    async def delete_prefix(self, prefix: str) -> list[str]:
        """Both stores, and nothing left to write back: data deleted on purpose must not
        return with the next outage's write-back. Redis out of reach raises: the caller must
        know the shared copy is still there."""
        local = await self._local.delete_prefix(prefix)
        for key in [k for k in self._unsaved if k.startswith(prefix)]:
            del self._unsaved[key]
        try:
            shared = await self._shared.delete_prefix(prefix)
        except StoreUnavailable as error:
            self.failed(error)
            raise
        return list(dict.fromkeys(shared + local))

    async def incr(self, key: str, ttl: int) -> int:
        return await self._either(
            lambda: self._shared.incr(key, ttl), lambda: self._local.incr(key, ttl)
        )

    async def add_member(self, key: str, member: str) -> None:
        await self._either(
            lambda: self._shared.add_member(key, member),
            lambda: self._local.add_member(key, member),
        )

    async def remove_member(self, key: str, member: str) -> None:
        await self._either(
            lambda: self._shared.remove_member(key, member),
            lambda: self._local.remove_member(key, member),
        )

    async def members(self, key: str) -> frozenset[str]:
        return await self._either(
            lambda: self._shared.members(key), lambda: self._local.members(key)
        )

    @asynccontextmanager
    async def lock(
        self, key: str, *, lease: float, wait: float, order: float = 0.0
    ) -> AsyncIterator[None]:
        # This process's line first, always: its questions in a thread keep their order and
        # never overlap, whether Redis went away or came back while one of them waited.
        deadline = asyncio.get_running_loop().time() + wait
        async with AsyncExitStack() as held:
            await held.enter_async_context(
                self._local.lock(key, lease=lease, wait=wait, order=order)
            )
            if not self._down:
                remaining = max(0.0, deadline - asyncio.get_running_loop().time())
                try:
                    await held.enter_async_context(
                        self._shared.lock(key, lease=lease, wait=remaining, order=order)
                    )
                except StoreUnavailable as error:
                    self.failed(error)
            yield

    async def ping(self) -> None:
        """Raises StoreUnavailable while Redis is marked down (without trying it)."""
        if self._down:
            raise StoreUnavailable("marked down until a probe reaches it")
        try:
            await self._shared.ping()
        except StoreUnavailable as error:
            self.failed(error)
            raise

    async def close(self) -> None:
        self._closed = True  # a call failing from now on starts no probe nobody would stop
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        if self._unsaved:
            log.warning(
                "stopping with %d key(s) written while the store was away, not saved",
                len(self._unsaved),
            )
        await self._shared.close()
        await self._local.close()

    async def _copy(self, key: str, value: str | None, ttl: int | None) -> None:
        if value is None:
            await self._local.delete(key)
        else:
            await self._local.set(key, value, ttl)


async def _claimed() -> bool:
    return True


async def _nothing() -> None:
    return None
