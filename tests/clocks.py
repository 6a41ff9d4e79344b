"""Clocks for tests: virtual time that a sleeping bot skips through instantly."""

from __future__ import annotations

import asyncio
import time


class FastClock:
    """`sleep` advances virtual time at once (after letting other tasks run), so a
    30-minute index watch runs in milliseconds; `now` and `wall` follow the real clocks plus
    the time skipped. `hold()` makes every sleep wait until `release()`, to look at (or
    restart) the bot half-way through; `slept` records each requested sleep."""

    def __init__(self) -> None:
        self.skipped = 0.0
        self.slept: list[float] = []
        self._running = asyncio.Event()
        self._running.set()

    def now(self) -> float:
        return time.monotonic() + self.skipped

    def wall(self) -> float:
        return time.time() + self.skipped

    async def sleep(self, seconds: float) -> None:
        await self._running.wait()
        self.slept.append(seconds)
        self.skipped += max(0.0, seconds)
        await asyncio.sleep(0)

    def hold(self) -> None:
        self._running.clear()

    def release(self) -> None:
        self._running.set()


class ManualClock:
    """Time moves only when the test says so: `sleep` parks until `advance` passes its end.
    `sleepers` tells how many sleeps are parked, so a test can see the bot waiting; `parks`
    counts every sleep ever parked, so a test can see the bot wait again after news."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.parks = 0
        self._parked: list[tuple[float, asyncio.Future[None]]] = []
        self._changed = asyncio.Condition()

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return time.time() + (self.t - 1000.0)

    @property
    def sleepers(self) -> int:
        return sum(1 for _, future in self._parked if not future.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.t + seconds, future)
        self._parked.append(entry)
        self.parks += 1
        async with self._changed:
            self._changed.notify_all()
        try:
            await future
        finally:
            self._parked.remove(entry)

    async def wait_for_sleepers(self, count: int, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Return once `count` sleeps are parked (the bot is waiting on this clock)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.sleepers >= count)

    async def wait_for_parks(self, count: int, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Return once `count` sleeps have been parked since the clock was made."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.parks >= count)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for until, future in self._parked:
            if until <= self.t and not future.done():
                future.set_result(None)
