"""Time, injected wherever behaviour depends on it, so tests drive it instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale; only differences mean anything."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for values shared between processes."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


async def sleep_unless(clock: Clock, seconds: float, event: asyncio.Event) -> None:
    """Sleep `seconds` on `clock`, or less if `event` is set meanwhile: waiting for a
    deadline that news may cut short (the end of an answer, new work in a queue).

    On the system clock the event loop's own timer bounds the wait: every answer's writer
    waits like this about once a second, and two helper tasks per wait (a sleep and an
    event watcher, then their cancellation) cost several loop turns each time. Any other
    clock (a test's virtual time) is slept on, beside the event."""
    if event.is_set():
        return
    if isinstance(clock, SystemClock):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await event.wait()
        return
    pause = asyncio.ensure_future(clock.sleep(seconds))
    woken = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({pause, woken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (pause, woken):
            waiter.cancel()
        await asyncio.gather(pause, woken, return_exceptions=True)
