"""`sleep_unless` on the system clock: one timer around the wait, no helper tasks."""

from __future__ import annotations

import asyncio

import pytest

from bot.clock import SystemClock, sleep_unless


async def test_a_wait_ends_as_soon_as_its_event_is_set() -> None:
    event = asyncio.Event()
    waiting = asyncio.create_task(sleep_unless(SystemClock(), 3600, event))
    await asyncio.sleep(0)
    assert not waiting.done()
    event.set()
    await asyncio.wait_for(waiting, timeout=10)  # a guard, not a timing: an hour otherwise


async def test_a_wait_ends_at_its_deadline_without_the_event() -> None:
    event = asyncio.Event()
    await asyncio.wait_for(sleep_unless(SystemClock(), 0.01, event), timeout=10)
    assert not event.is_set()


async def test_cancelling_a_wait_is_never_swallowed() -> None:
    waiting = asyncio.create_task(sleep_unless(SystemClock(), 3600, asyncio.Event()))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
