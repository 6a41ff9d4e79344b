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
