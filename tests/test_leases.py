"""Project watches across processes: one owner per watch, and a watch whose process died is
taken over soon after the dead owner's lease runs out (not minutes later). The bot waits on a
ManualClock, so "30 seconds later" is a step the test takes, not time it sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as redis

from bot import keys
from tests.clocks import ManualClock
from tests.driver import RunningBot
from tests.fakes.customgpt import FIRST_CREATED_PROJECT_ID, FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.polling import until
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]
NEW_ID = str(FIRST_CREATED_PROJECT_ID)
SITEMAP = "https://acme.example/sitemap.xml"
PROGRESS = [(3, 1, 0), (10, 6, 4), (10, 10, 10)]


def stats_polls(customgpt: FakeCustomGPT) -> int:
    return sum(r.path == f"/projects/{NEW_ID}/stats" for r in customgpt.requests)


async def run_until_idle(bot: RunningBot, clock: ManualClock, step: float = 60) -> None:
    """Move the clock on whenever the bot waits on it, until the bot has nothing left to do."""
    idle = asyncio.create_task(bot.idle())
    try:
        while not idle.done():
            waiting = asyncio.create_task(clock.wait_for_sleepers(1))
            await asyncio.wait({idle, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                await waiting
                clock.advance(step)
            else:
                waiting.cancel()
    finally:
        idle.cancel()


async def test_a_watch_left_by_a_dead_process_is_taken_over_soon_after_its_lease(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    customgpt.default_index_steps = PROGRESS
    first_clock = ManualClock()
    first = await start_bot(clock=first_clock)
    await first.command(f"create Acme {SITEMAP}", response_url=slack.response_url("create"))
    await first_clock.wait_for_sleepers(1)  # watching: it polled once, now it waits
    await first.close()  # the watch stays pending, its owner lock given back...
    owner = keys.watch_owner(first.team, NEW_ID)
    # ...and taken by a process that is then killed: its lock outlives it by its lease.
    await redis_client.set(owner, "a-killed-process", px=500)

    clock = ManualClock()
    second = await start_bot(clock=clock)
    await clock.wait_for_sleepers(1)  # standing by: the dead process still owns the watch
    polled = stats_polls(customgpt)

    async def lease_ended() -> bool:
        return not await redis_client.exists(owner)

    await until(lease_ended)
    clock.advance(30)
    await customgpt.wait_for(lambda: stats_polls(customgpt) > polled)  # taken over
    assert await redis_client.get(owner) not in (None, "a-killed-process")

    await run_until_idle(second, clock)
    assert await redis_client.get(keys.binding(second.team, "C1")) == NEW_ID
    (status,) = [m for m in slack.messages if m.channel == "C1" and m.thread_ts is None]
    assert "is ready" in final_text(status)
    assert await redis_client.exists(owner) == 0  # given back when the watch ended
