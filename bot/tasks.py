"""Ownership of the work a process runs in the background.

Bolt runs each listener in a task of its own and never awaits it; answers and index watches
can outlive the request that started them. Everything registers here, so shutdown can cancel
and await it all (each answer then says in Slack that it was interrupted), and tests can wait
until the bot is idle instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)

LAST_WORDS = 1.0  # seconds for tasks cancelled a second time to unwind


class TaskTracker:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._housekeeping: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Count the current task (a Bolt listener) as work in flight while inside."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._add(task)
        try:
            yield
        finally:
            self._discard(task)

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str, idle: bool = True
    ) -> asyncio.Task[Any]:
        """Start owned background work; its failure is logged, never lost. `idle=False`
        marks housekeeping that never ends: shutdown still cancels it, `idle()` ignores it."""
        task = asyncio.create_task(coro, name=name)
        if idle:
            self._add(task)
        else:
            self._housekeeping.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._discard(task)
        self._housekeeping.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def _add(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        self._idle.clear()

    def _discard(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def idle(self) -> None:
        """Return once no tracked work is running."""
        await self._idle.wait()

    async def shutdown(self, grace: float) -> None:
        """Cancel everything, give it `grace` seconds to say so in Slack, then cancel what is
        still running again: a platform that kills after its own grace must never find a
        shutdown still waiting (for Slack's Retry-After, say)."""
        tasks = [t for t in self._tasks | self._housekeeping if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        if late:
            log.warning("%d task(s) still finishing after %.0fs; stopping them", len(late), grace)
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=LAST_WORDS)


async def set_or_done(event: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Wait until `event` is set or `task` has ended, whichever comes first (a writer that
    stops early never sets the events it would have set)."""
    setting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({setting, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        setting.cancel()
