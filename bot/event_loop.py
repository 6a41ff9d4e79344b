"""The event loop every command runs on: uvloop where it is installed (it is a dependency
everywhere but Windows), asyncio's own loop otherwise.

Waking the loop is most of what an idle stream costs: a lone streamed answer spends more
of its CPU time in the loop's own Python (timers, ready queue, selector) than in any one
part of the bot, and uvloop runs that machinery in C. The tests run on the same loop
(tests/conftest.py), so what they prove is what runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # Windows, or an install without it: the same bot, a slower loop
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on `new_loop`."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(main)
