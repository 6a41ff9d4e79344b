"""A new knowledge base, from sitemap to "ready": create the project, then watch CustomGPT
index it, showing progress in one Slack status message, and bind the channel when it can
answer.

A watch is state in the store (`keys.pending_project`, listed in `keys.pending_projects`), not
just a task: shutdown cancels the task and leaves the state, and the next start resumes every
pending watch (`start_background`). The deadline is wall-clock time for the same reason. When
several replicas start at once, an owner lock (a short lease its process renews while it lives)
makes sure one of them watches a project; the others stand by and take over within seconds
of the owner's death (a killed process frees its watches when its lease runs out).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlsplit

import aiohttp

from bot import bindings, keys, messages
from bot.answer import PROJECT_NAME_TTL
from bot.clock import Clock
from bot.customgpt import (
    AuthError,
    CustomGPTClient,
    CustomGPTError,
    NotFound,
    Project,
    ProjectStats,
    RateLimited,
    failure_log_level,
)
from bot.customgpt_keys import NoKey
from bot.runtime import TEAMS_UNKNOWN, Runtime
from bot.slack_calls import Content, SlackCalls, SlackUnavailable
from bot.store import LockTimeout, StoreUnavailable

log = logging.getLogger(__name__)

MIN_INTERVAL = 10.0  # never poll CustomGPT more often than this
MAX_INTERVAL = 60.0  # back-off ceiling while nothing changes
MAX_ERROR_WAIT = 120.0  # a long Retry-After is honoured up to this, then we ask again
OWNER_LEASE = 20.0  # seconds a dead owner keeps its watch; a live one renews it (Store.lock)
STANDBY = 10.0  # seconds between a standing-by watch's tries to take over from its owner
MAX_NAME = 100
MAX_URL = 2048
AUTH_TEST_ATTEMPTS = 5
STORE_RETRY = 30  # seconds before a watch retries after the store went away
PENDING_GRACE = 86400  # seconds a watch record outlives its deadline
RESUME_EVERY = 10.0  # seconds between looks for watches no process follows
RESPONSE_TIMEOUT = aiohttp.ClientTimeout(total=10)


class InvalidNewProject(ValueError):
    """The name or sitemap URL cannot work; `str(error)` is the user-facing explanation."""


def check_new_project(name: str, sitemap_url: str) -> None:
    """Refuse what CustomGPT would refuse (or crawl in vain) before anything is created."""
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidNewProject(
            messages.bad_project_name(f"it must be 1 to {MAX_NAME} characters long")
        )
    if len(sitemap_url) > MAX_URL:
        raise InvalidNewProject(
            messages.bad_sitemap_url(f"it is longer than {MAX_URL:,} characters")
        )
    if any(c.isspace() for c in sitemap_url):
        raise InvalidNewProject(messages.bad_sitemap_url("it contains spaces"))
    try:
        parts = urlsplit(sitemap_url)
        host = parts.hostname
    except ValueError:
        raise InvalidNewProject(messages.bad_sitemap_url("it is not a valid URL")) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidNewProject(
            messages.bad_sitemap_url("it must start with `http://` or `https://`")
        )
    if not host:
        raise InvalidNewProject(messages.bad_sitemap_url("it has no host name"))


# -- polling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Poll:
    """One look at a project: its page counts and whether it answers, or why the look failed
    (CustomGPT failed, was unreachable, or refused for exhausted query credits, which someone
    may add meanwhile; the polling goes on)."""

    stats: ProjectStats | None
    ready: bool
    error: CustomGPTError | None = None


async def poll_until_ready(
    client: Callable[[], Awaitable[CustomGPTClient]],
    project_id: str,
    clock: Clock,
    deadline: float,
) -> AsyncGenerator[Poll, None]:
    """Poll a project's stats and `is_chat_active` until it is ready or `deadline` (wall-clock)
    has passed; the last Poll says which. Polls are at least MIN_INTERVAL apart, the interval
    doubling up to MAX_INTERVAL while the counts stand still. AuthError and NotFound end the
    polling (waiting cannot fix them); other CustomGPT errors are yielded and waited out.

    `client` is asked before every poll: a workspace's key may be replaced or removed while
    its project indexes, and each poll goes out with the key the workspace has then (what
    `client` raises, such as NoKey, ends the polling)."""
    interval = MIN_INTERVAL
    last: ProjectStats | None = None
    while True:
        customgpt = await client()
        try:
            stats = await customgpt.project_stats(project_id)
            project = await customgpt.get_project(project_id)
        except (AuthError, NotFound):
            raise
        except CustomGPTError as error:
            yield Poll(None, False, error)
            wait = min(max(interval, error.retry_after or 0.0), MAX_ERROR_WAIT)
            interval = min(interval * 2, MAX_INTERVAL)
        else:
            yield Poll(stats, project.is_chat_active)
            if project.is_chat_active:
                return
            interval = MIN_INTERVAL if stats != last else min(interval * 2, MAX_INTERVAL)
            wait, last = interval, stats
        left = deadline - clock.wall()
        if left <= 0:
            return
        # The last poll comes at or just after the deadline, never sooner than the floor.
        await clock.sleep(max(MIN_INTERVAL, min(wait, left)))


# -- the watch -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watch:
    """What a pending project needs to be resumed by any process (stored as JSON)."""

    team: str
    project_id: str
    name: str
    sitemap_url: str
    channel: str
    user: str
    bind: bool
    deadline: float  # wall-clock seconds
    status_ts: str | None  # the visible status message; None when Slack refused it
    response_url: str | None  # the command's reply channel, the fallback for the end

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Watch:
        return cls(**json.loads(raw))


class Indexer:
    """Creates projects and runs their watches as owned background tasks."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._store = runtime.store
        self._keys = runtime.customgpt_keys
        self._clock = runtime.clock

    async def create(
        self,
        customgpt: CustomGPTClient,
        *,
        team: str,
        channel: str,
        user: str,
        name: str,
        sitemap_url: str,
        bind: bool,
        response_url: str | None,
    ) -> Project:
        """Create the project, post its status message and start watching it.

        Raises CustomGPTError when CustomGPT refused the creation (nothing exists then). A
        status message Slack refuses is reported through `response_url`; the watch goes on."""
        project = await customgpt.create_project(name, sitemap_url)
        watch = Watch(
            team=team,
            project_id=project.id,
            name=name,
            sitemap_url=sitemap_url,
            channel=channel,
            user=user,
            bind=bind,
            deadline=self._clock.wall() + self._runtime.settings.customgpt_index_timeout,
            status_ts=None,
            response_url=response_url,
        )
        text = messages.indexing_status(name, project.id, sitemap_url, user, None, bind=watch.bind)
        try:
            watch = replace(
                watch, status_ts=await self._calls(team).post(channel, None, Content(text))
            )
        except SlackUnavailable as error:
            log.warning("could not post the status of project %s: %s", project.id, error.code)
            await self._respond(watch, messages.cannot_post_status(name, project.id, error.code))
        try:
            await self._save(watch)
            await self._store.add_member(keys.pending_projects(team), project.id)
        except StoreUnavailable as error:
            # The project exists but cannot be watched: say so, with what to do next.
            log.error("project %s created but not watched: %s", project.id, error)
            untracked = messages.created_untracked(name, project.id)
            if watch.status_ts is not None:
                try:
                    await self._calls(team).update(channel, watch.status_ts, Content(untracked))
                except SlackUnavailable as slack_error:
                    log.warning("status of project %s not updated: %s", project.id, slack_error)
            await self._respond(watch, untracked)
            return project
        self._spawn(watch)
        return project

    async def _save(self, watch: Watch) -> None:
        """Store the watch; it expires a day after its deadline, so a record orphaned by a
        race with `_end` cannot linger."""
        ttl = max(60, int(watch.deadline - self._clock.wall()) + PENDING_GRACE)
        await self._store.set(
            keys.pending_project(watch.team, watch.project_id), watch.to_json(), ttl=ttl
        )

    async def adopt(self, team: str) -> int:
        """Start watching every pending project nobody owns (its process is gone, its lease
        has run out); the owner lock in `_run_once` keeps two processes from both taking one."""
        orphans = [
            watch
            for watch in await self.pending(team)
            if await self._store.get(keys.watch_owner(team, watch.project_id)) is None
        ]
        for watch in orphans:
            self._spawn(watch)
        return len(orphans)

    async def resume(self, team: str) -> int:
        """Restart the watch of every project still pending for the team; returns how many."""
        watches = await self.pending(team)
        for watch in watches:
            self._spawn(watch)
        return len(watches)

    async def keep_binding(self, team: str, channel: str) -> list[Watch]:
        """A channel bound by hand keeps that binding: projects created there and still
        indexing will no longer take it over when ready. Returns those projects."""
        changed = []
        for watch in await self.pending(team):
            if watch.channel == channel and watch.bind:
                watch = replace(watch, bind=False)
                await self._save(watch)
                changed.append(watch)
        return changed

    async def is_pending(self, team: str, project_id: str) -> bool:
        return project_id in await self._store.members(keys.pending_projects(team))

    async def pending(self, team: str) -> list[Watch]:
        """The projects of the workspace still indexing, by project id."""
        watches = []
        for project_id in sorted(await self._store.members(keys.pending_projects(team))):
            watch = await self._load(team, project_id)
            if watch is None:
                await self._store.remove_member(keys.pending_projects(team), project_id)
            else:
                watches.append(watch)
        return watches

    async def _load(self, team: str, project_id: str) -> Watch | None:
        """The stored watch, the truth others may have changed (`keep_binding`)."""
        raw = await self._store.get(keys.pending_project(team, project_id))
        if raw is None:
            return None
        try:
            return Watch.from_json(raw)
        except (ValueError, TypeError):
            log.error("pending project %s: unreadable record, dropped", project_id)
            return None

    def _spawn(self, watch: Watch) -> None:
        self._runtime.tasks.spawn(
            self._run(watch), name=f"watch project {watch.project_id} ({watch.team})"
        )

    async def _run(self, watch: Watch) -> None:
        """Follow the watch; an unreachable store pauses it instead of losing it."""
        with self._runtime.metrics.indexing_watches.track_inprogress():
            await self._keep_running(watch)

    async def _keep_running(self, watch: Watch) -> None:
        while True:
            try:
                await self._run_once(watch)
                return
            except StoreUnavailable as error:
                log.warning(
                    "project %s: store unreachable (%s); watch retried in %d s",
                    watch.project_id,
                    error,
                    STORE_RETRY,
                )
                await self._clock.sleep(STORE_RETRY)

    async def _run_once(self, watch: Watch) -> None:
        """Follow the watch as its one owner, or stand by while another process owns it: that
        process may die, and its lease then runs out within OWNER_LEASE. Ownership is given
        back when following ends, also on cancellation (shutdown): the next process may take
        over at once. Returns when the watch has ended, here or elsewhere."""
        owner = keys.watch_owner(watch.team, watch.project_id)
        while True:
            owned = False
            try:
                async with self._store.lock(owner, lease=OWNER_LEASE, wait=0):
                    owned = True
                    if await self.is_pending(watch.team, watch.project_id):
                        await self._follow(watch)
                return
            except LockTimeout:
                if owned:
                    raise
            if not await self.is_pending(watch.team, watch.project_id):
                return
            await self._clock.sleep(STANDBY)

    async def _follow(self, watch: Watch) -> None:
        calls = self._calls(watch.team)
        shown: ProjectStats | None = None
        latest: ProjectStats | None = None
        refused: RateLimited | None = None  # the last poll hit exhausted credits
        try:
            async with aclosing(
                # Background work of the workspace like any answer: its key, poll by poll.
                poll_until_ready(
                    lambda: self._keys.client_for(watch.team),
                    watch.project_id,
                    self._clock,
                    watch.deadline,
                )
            ) as polls:
                async for poll in polls:
                    watch = await self._load(watch.team, watch.project_id) or watch
                    if poll.stats is None:  # CustomGPT failed or refused: polling goes on
                        error = poll.error
                        level = logging.WARNING if error is None else failure_log_level(error)
                        log.log(level, "project %s: polling failed: %s", watch.project_id, error)
                        refused = error if isinstance(error, RateLimited) else None
                        continue
                    refused = None
                    latest = poll.stats
                    if poll.ready:
                        await self._ready(watch, calls, latest)
                        return
                    if latest != shown and await self._show_progress(watch, calls, latest):
                        shown = latest
        except (AuthError, NotFound) as error:
            log.warning("project %s: watch ended: %s", watch.project_id, error)
            await self._end(
                watch, calls, messages.watch_failed(watch.name, watch.project_id, error)
            )
            return
        except NoKey:
            log.warning("project %s: watch ended: the workspace has no key", watch.project_id)
            await self._end(watch, calls, messages.watch_without_key(watch.name, watch.project_id))
            return
        timeout = self._runtime.settings.customgpt_index_timeout
        log.info("project %s not ready after %.0f s; watch ended", watch.project_id, timeout)
        text = messages.project_timed_out(
            watch.name, watch.project_id, latest, timeout, bind=watch.bind
        )
        if refused is not None:  # why it never got ready, as far as the bot can tell
            text += "\n" + messages.for_command_error(refused)
        await self._end(watch, calls, text)

    async def _show_progress(self, watch: Watch, calls: SlackCalls, stats: ProjectStats) -> bool:
        """Edit the status message with the new counts; False when not shown (no status
        message, or the workspace's edit budget is spent: the next poll tries again)."""
        if watch.status_ts is None:
            return False
        text = messages.indexing_status(
            watch.name, watch.project_id, watch.sitemap_url, watch.user, stats, bind=watch.bind
        )
        return await calls.update_if_allowed(watch.channel, watch.status_ts, Content(text))

    async def _ready(self, watch: Watch, calls: SlackCalls, stats: ProjectStats | None) -> None:
        # Read again right before binding: `/customgpt use` may have just kept the channel.
        watch = await self._load(watch.team, watch.project_id) or watch
        if watch.bind:
            await bindings.bind(self._store, watch.team, watch.channel, watch.project_id)
        await self._store.set(
            keys.project_name(watch.team, watch.project_id), watch.name, ttl=PROJECT_NAME_TTL
        )
        log.info("project %s is ready (bound: %s)", watch.project_id, watch.bind)
        text = messages.project_ready(watch.name, watch.project_id, stats, bound=watch.bind)
        await self._end(watch, calls, text)

    async def _end(self, watch: Watch, calls: SlackCalls, text: str) -> None:
        """Show the outcome (the status message, else a new message, else the command's
        response URL), then forget the watch. Shown first: a restart in between repeats the
        ending rather than losing it."""
        try:
            if watch.status_ts is not None:
                await calls.update(watch.channel, watch.status_ts, Content(text))
            else:
                await calls.post(watch.channel, None, Content(text))
        except SlackUnavailable as error:
            log.warning("project %s: outcome not shown in Slack: %s", watch.project_id, error)
            await self._respond(watch, text)
        await self._store.remove_member(keys.pending_projects(watch.team), watch.project_id)
        await self._store.delete(keys.pending_project(watch.team, watch.project_id))

    async def _respond(self, watch: Watch, text: str) -> None:
        """Tell the user who ran the command, through its response URL (ephemeral)."""
        if watch.response_url is None:
            log.error("project %s: nowhere left to tell the user: %s", watch.project_id, text)
            return
        try:
            async with self._runtime.session.post(
                watch.response_url,
                json={"text": text, "response_type": "ephemeral"},
                timeout=RESPONSE_TIMEOUT,
            ) as response:
                if response.status >= 400:
                    log.error("response URL refused a message (HTTP %d)", response.status)
        except aiohttp.ClientError as error:
            log.error("response URL unreachable: %s", type(error).__name__)

    def _calls(self, team: str) -> SlackCalls:
        return self._runtime.slack_writes.for_team(team)


# -- start-up --------------------------------------------------------------------------------


async def start_watches(runtime: Runtime) -> None:
    """Learn the workspaces served (the token's team from `auth.test`, or every installation's
    with OAuth), then resume their pending project watches, and keep looking for watches
    nobody follows (a replica that stopped, a store that was down at start-up). Runs as owned
    tasks, so start-up never waits for Slack."""
    runtime.tasks.spawn(_resume_watches(runtime), name="resume project watches")
    runtime.tasks.spawn(_adopt_orphans(runtime), name="adopt project watches", idle=False)


async def _teams(runtime: Runtime) -> set[str] | None:
    for attempt in range(AUTH_TEST_ATTEMPTS):
        try:
            return await runtime.served_teams()
        except TEAMS_UNKNOWN as error:
            log.warning("workspaces served unknown (%s); retrying", type(error).__name__)
            await runtime.clock.sleep(min(MAX_INTERVAL, 5.0 * 2**attempt))
    return None


async def _resume_watches(runtime: Runtime) -> None:
    teams = await _teams(runtime)
    if teams is None:
        log.error("the workspaces served are unknown: pending project watches not resumed")
        return
    resumed = 0
    try:
        for team in sorted(teams):
            resumed += await Indexer(runtime).resume(team)
    except StoreUnavailable as error:
        log.error("store unreachable (%s): pending project watches resumed later", error)
        return
    if resumed:
        log.info("resumed %d pending project watch(es)", resumed)


async def _adopt_orphans(runtime: Runtime) -> None:
    """Every RESUME_EVERY seconds, take over watches whose process is gone, in every workspace
    served (asked again each round: workspaces install the app meanwhile). Real time, not
    the injected clock: nothing waits on this housekeeping, and a test clock would spin it."""
    while True:
        await asyncio.sleep(RESUME_EVERY)
        try:
            adopted = 0
            for team in sorted(await runtime.served_teams()):
                adopted += await Indexer(runtime).adopt(team)
        except TEAMS_UNKNOWN as error:
            log.warning("orphaned watches looked for later (%s)", type(error).__name__)
            continue
        if adopted:
            log.info("took over %d project watch(es) no process was following", adopted)
