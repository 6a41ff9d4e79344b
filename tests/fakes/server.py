"""What every fake server shares: a context manager around `start()` and `stop()`, and the
clock it reads the time from."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Protocol, Self

#: Connections a fake's listening socket queues before accepting them (aiohttp's default).
#: A benchmark that opens a thousand at once passes a larger `backlog`, so the fake is never
#: the reason a connection waits.
DEFAULT_BACKLOG = 128


class Clock(Protocol):
    """Where a fake reads the time: `time.monotonic` by default, or a test's clock (see
    tests/clocks.py) so that the bot and the fakes agree on how much time passed."""

    def now(self) -> float: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class LoopbackServer:
    """Base of the fakes: `async with Fake() as fake:` starts it on a free local port."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
