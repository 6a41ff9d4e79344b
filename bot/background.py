"""The start-up work every serving process runs (the server and the tests alike), as owned
tasks, so start-up never waits for Slack or the store: project watches, the journal of answers
in flight, the readiness checks."""

from __future__ import annotations

import logging

from bot.indexing import start_watches
from bot.runtime import TEAMS_UNKNOWN, Runtime

log = logging.getLogger(__name__)


async def start_background(runtime: Runtime) -> None:
    """Resume project watches, and keep the journal of answers in flight: its heartbeat, and
    the replies a stopped process left behind."""
    await start_watches(runtime)
    runtime.tasks.spawn(_journal(runtime), name="journal of answers in flight", idle=False)
    runtime.tasks.spawn(runtime.health.run(runtime), name="readiness checks", idle=False)


async def _journal(runtime: Runtime) -> None:
    async def served() -> set[str]:
        try:
            return await runtime.served_teams()
        except TEAMS_UNKNOWN as error:
            log.warning("workspaces unknown for now (%s): replies left behind wait", error)
            return set()

    await runtime.journal.run(served)
