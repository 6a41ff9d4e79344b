"""Liveness and readiness, as a load balancer and an orchestrator need them.

`/healthz` (liveness) answers 200 whenever the process and its event loop can answer at all.
`/readyz` (readiness) answers 503 only when this process cannot serve: Slack refuses its
token (`auth.test`), or its event loop is stalled. With OAuth there is no one token: each
workspace's may be revoked without the others' being affected, so Slack is checked for being
reachable (`api.test`, which needs no token), and the installations are counted.
A dependency every replica shares (Redis) does not make a replica unready: taking them all
out of the load balancer at once would turn a degraded service into no service. It is
reported as `degraded`, with 200.

The checks run in the background (Slack's `auth.test` every `SLACK_EVERY` seconds, the store
every `STORE_EVERY`), so a probe costs nothing and a flood of probes never reaches Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.metrics import Metrics
from bot.slack_calls import error_code
from bot.store import StoreUnavailable

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

SLACK_EVERY = 60.0  # seconds between two `auth.test` checks
STORE_EVERY = 10.0  # seconds between two store pings
CHECK_TIMEOUT = 10.0  # seconds one check may take before it counts as failed
FIRST_ROUND_WAIT = 5.0  # seconds a probe waits for the first checks after start-up
PROBE_EVERY = 0.5  # seconds between two event loop lag probes
LAG_LIMIT = 2.0  # seconds of event loop lag that make the process unready

SLACK, STORE, EVENT_LOOP = "slack", "store", "event_loop"


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str
    #: False for a dependency all replicas share: its failure degrades, it does not unready.
    critical: bool = True


class LoopLag:
    """How late the event loop runs a callback scheduled for a known time. A loop blocked by
    CPU work (or a synchronous call) shows here before anything else does; a loop blocked
    right now shows through `lag(now)` too, since the probe due meanwhile has not run."""

    def __init__(self, start: float) -> None:
        self._due = start
        self._last = 0.0

    def arrived(self, now: float, next_due: float) -> float:
        """The probe due at the last `next_due` ran at `now`; returns its lag."""
        self._last = max(0.0, now - self._due)
        self._due = next_due
        return self._last

    def lag(self, now: float) -> float:
        return max(self._last, now - self._due)


class Health:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._checks: dict[str, Check] = {}
        self._first_round = asyncio.Event()
        self._lag: LoopLag | None = None

    # -- what the server asks ---------------------------------------------------------------

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for `/readyz`."""
        try:
            async with asyncio.timeout(FIRST_ROUND_WAIT):
                await self._first_round.wait()
        except TimeoutError:
            return 503, {"status": "starting", "checks": self._body_checks()}
        checks = self._current()
        if not all(c.ok for c in checks.values() if c.critical):
            status, code = "unready", 503
        elif not all(c.ok for c in checks.values()):
            status, code = "degraded", 200
        else:
            status, code = "ready", 200
        return code, {"status": status, "checks": self._body_checks()}

    def _current(self) -> dict[str, Check]:
        checks = dict(self._checks)
        if self._lag is not None:
            lag = self._lag.lag(asyncio.get_running_loop().time())
            checks[EVENT_LOOP] = Check(lag <= LAG_LIMIT, f"lag {lag:.3f}s")
        return checks

    def _body_checks(self) -> dict[str, dict[str, Any]]:
        return {name: {"ok": c.ok, "detail": c.detail} for name, c in self._current().items()}

    # -- the background work ----------------------------------------------------------------

    async def run(self, runtime: Runtime) -> None:
        """Check Slack and the store now, then again and again; probe the event loop."""
        probe = asyncio.create_task(self._probe_loop(), name="event loop lag probe")
        store = asyncio.create_task(
            self._every(STORE_EVERY, lambda: self._store(runtime)), name="store health check"
        )
        try:
            await asyncio.gather(self._slack(runtime, first=True), self._store(runtime))
            self._first_round.set()
            await self._every(SLACK_EVERY, lambda: self._slack(runtime, first=False))
        finally:
            for task in (probe, store):
                task.cancel()
            await asyncio.gather(probe, store, return_exceptions=True)

    @staticmethod
    async def _every(seconds: float, check: Callable[[], Awaitable[None]]) -> None:
        # Real time, not the injected clock: checks keep pace with the world outside, and a
        # test's paused clock must not freeze them.
        while True:
            await asyncio.sleep(seconds)
            await check()

    async def _slack(self, runtime: Runtime, *, first: bool) -> None:
        """The token still works: the first check shares the identity every request needs
        (one `auth.test` at start-up); later ones ask Slack again."""
        if runtime.installations is not None:
            await self._slack_for_installs(runtime)
            return
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                if first:
                    identity = await runtime.identity()
                    team = identity.team_id
                else:
                    team = str((await runtime.slack.auth_test()).get("team_id"))
        except SlackApiError as error:
            self._set(SLACK, Check(False, f"auth.test failed: {error_code(error) or 'error'}"))
        except (aiohttp.ClientError, TimeoutError) as error:
            self._set(SLACK, Check(False, f"auth.test failed: {type(error).__name__}"))
        else:
            self._set(SLACK, Check(True, f"token valid for team {team}"))

    async def _slack_for_installs(self, runtime: Runtime) -> None:
        assert runtime.installations is not None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await runtime.slack.api_test()
        except SlackApiError as error:
            self._set(SLACK, Check(False, f"api.test failed: {error_code(error) or 'error'}"))
            return
        except (aiohttp.ClientError, TimeoutError) as error:
            self._set(SLACK, Check(False, f"api.test failed: {type(error).__name__}"))
            return
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                count = f"{len(await runtime.installations.teams())} workspace(s) installed"
        except (StoreUnavailable, TimeoutError):
            count = "installations unknown while the store is unreachable"
        self._set(SLACK, Check(True, f"Slack reachable (OAuth: {count})"))

    async def _store(self, runtime: Runtime) -> None:
        kind = "redis" if runtime.settings.redis_url else "in-process"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await runtime.store.ping()
        except (StoreUnavailable, TimeoutError) as error:
            self._metrics.store_error("ping")
            self._set(STORE, Check(False, f"{kind} unreachable ({error})", critical=False))
        else:
            self._set(STORE, Check(True, f"{kind} reachable", critical=False))

    def _set(self, name: str, check: Check) -> None:
        before = self._checks.get(name)
        if before is not None and before.ok != check.ok:
            level = logging.INFO if check.ok else logging.WARNING
            log.log(
                level,
                "readiness: %s is %s (%s)",
                name,
                "ok" if check.ok else "failing",
                check.detail,
            )
        self._checks[name] = check

    async def _probe_loop(self) -> None:
        loop = asyncio.get_running_loop()
        lag = self._lag = LoopLag(loop.time() + PROBE_EVERY)
        while True:
            await asyncio.sleep(PROBE_EVERY)
            now = loop.time()
            self._metrics.event_loop_lag_seconds.set(lag.arrived(now, now + PROBE_EVERY))
