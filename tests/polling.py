"""Waiting on state that sends no notice (a key in Redis, a process's output)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Return once `condition()` holds: a bounded wait on observed state, never a fixed sleep
    standing in for it. Raises TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 (Redis state: nothing to notify us)
            await asyncio.sleep(0.02)
