"""Where an OAuth app keeps its installations and its install links' state: Redis, through
slack_sdk's async store interfaces (Bolt's OAuth flow and its installation-store authorize
call them; slack_sdk ships no Redis implementation).

Installations are few, read on every request and by every piece of work that outlives one
(a project watch, an answer finished after a restart), and must survive a Redis outage for
the workspaces already seen: each one read or saved stays cached in the process. Redis stays
the truth while it answers (another replica may have deleted an installation at an
uninstall); the cache answers only while it does not. Saving needs Redis: an installation
kept in one process's memory would be lost at its next restart.

An org-wide installation (Enterprise Grid, `is_enterprise_install`) is stored under its
enterprise and serves every workspace of the org. The workspaces it has served are indexed
(`keys.enterprise_teams`), each with a pointer back (`keys.org_install`), so background work
finds a workspace's token and an org-wide uninstall finds every workspace whose data to
delete.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import datetime
from typing import Any

from slack_bolt.error import BoltError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot import keys
from bot.clock import Clock, SystemClock
from bot.rate_buckets import StoreHealth
from bot.store import Store, StoreUnavailable
from bot.token_cache import TokenCache

log = logging.getLogger(__name__)

TEAM, ORG = "team", "org"  # the two kinds of installation owners in `keys.installations()`
_STATE = re.compile(r"[A-Za-z0-9_-]{20,128}")


class RedisInstallationStore(AsyncInstallationStore):
    """Bot installations (no user tokens are asked for), one per workspace or org."""

    def __init__(
        self, shared: Store, health: StoreHealth | None = None, clock: Clock | None = None
    ) -> None:
        """`shared`: Redis itself, never a store that would stand in for it (a save must
        fail when Redis cannot keep it); `health`: Redis marked down (bot/degraded_store.py),
        so known installations are served without waiting on a hung Redis; `clock`: times
        the bot tokens kept for Slack's writes (bot/token_cache.py)."""
        self._shared = shared
        self._health = health
        self._cache: dict[str, Installation] = {}
        self._present: set[str] = set()  # owners whose installation a listing saw in Redis
        self._tokens = TokenCache(clock or SystemClock())
        self._org_of: dict[str, str] = {}  # workspace → enterprise of its org-wide install

    @property
    def logger(self) -> logging.Logger:
        return log

    # -- the interface Bolt calls ------------------------------------------------------------

    async def async_save(self, installation: Installation) -> None:
        owner = _owner(
            installation.enterprise_id, installation.team_id, installation.is_enterprise_install
        )
        if owner is None:
            raise BoltError("an installation names neither a team nor an enterprise")
        kind = ORG if installation.is_enterprise_install else TEAM
        try:
            await self._shared.set(keys.installation(owner), _to_json(installation))
            await self._shared.add_member(keys.installations(), f"{kind}:{owner}")
        except StoreUnavailable as error:
            # BoltError: Bolt shows the installer its failure page (storage_error).
            raise BoltError(f"the installation could not be stored ({error})") from error
        self._cache[owner] = installation
        self._tokens.drop_owner(owner)  # installed again: the new token from now on
        log.info("installed in %s %s", "enterprise" if kind == ORG else "team", owner)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        owner = _owner(enterprise_id, team_id, is_enterprise_install)
        return None if owner is None else await self._load(owner)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        installation = await self.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return None if installation is None or not installation.bot_token else installation.to_bot()

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        owner = team_id or enterprise_id
        if owner is not None:
            await self.forget(owner)

    # -- what the bot asks -------------------------------------------------------------------

    async def bot_token(self, team: str) -> str | None:
        """The bot token serving `team`: its own installation's, else its org's; None when
        neither exists. Every Slack write asks, so a token read lately is answered from the
        process (bot/token_cache.py). Raises StoreUnavailable when Redis cannot say and the
        process has not seen the workspace."""
        kept = self._tokens.get(team)
        if kept is not None:
            return kept
        owner, installation = team, await self._load(team)
        if installation is None:
            enterprise = await self._enterprise_of(team)
            if enterprise is not None:
                owner, installation = enterprise, await self._load(enterprise)
        if installation is None or not installation.bot_token:
            return None
        self._tokens.put(team, installation.bot_token, owner)
        return installation.bot_token

    def token_refused(self, team: str, token: str) -> None:
        """Slack refused `token` for good (revoked, or replaced by a reinstall elsewhere):
        the next write for `team` reads its installation again."""
        self._tokens.refused(team, token)

    async def note_org_team(self, enterprise: str, team: str) -> None:
        """`team` is served by `enterprise`'s org-wide installation (a request came from it):
        index it, once per process, for background work and the org's uninstall."""
        if self._org_of.get(team) == enterprise:
            return
        await self._shared.set(keys.org_install(team), enterprise)
        await self._shared.add_member(keys.enterprise_teams(enterprise), team)
        self._org_of[team] = enterprise

    async def org_teams(self, enterprise: str) -> frozenset[str]:
        """The workspaces `enterprise`'s org-wide installation has served."""
        return await self._shared.members(keys.enterprise_teams(enterprise))

    async def teams(self) -> set[str]:
        """Every workspace served: workspace installs, and the workspaces seen under
        org-wide installs. A member of the index whose installation is gone (an uninstall
        cut short between its two deletes) is removed from it here."""
        teams: set[str] = set()
        for member in await self._shared.members(keys.installations()):
            kind, _, owner = member.partition(":")
            if not await self._is_installed(owner):
                await self._shared.remove_member(keys.installations(), member)
                log.warning("the installations index named %s, no longer installed: removed", owner)
            elif kind == TEAM:
                teams.add(owner)
            elif kind == ORG:
                teams |= await self.org_teams(owner)
        return teams

    async def _is_installed(self, owner: str) -> bool:
        """Whether `owner`'s installation exists: read once per process, and again after a
        read found it gone. Not kept as an installation to serve from: only the workspaces
        this process has served are answered while Redis is down."""
        if owner in self._cache or owner in self._present:
            return True
        if await self._shared.get(keys.installation(owner)) is None:
            return False
        self._present.add(owner)
        return True

    async def forget(self, owner: str) -> None:
        """Drop the installation of a team or an enterprise (its other data is deleted with
        its prefix, bot/uninstall.py), here and in Redis."""
        self._cache.pop(owner, None)
        self._present.discard(owner)
        self._tokens.drop_owner(owner)
        enterprise = self._org_of.pop(owner, None)
        for team, org in list(self._org_of.items()):
            if org == owner:
                del self._org_of[team]
        await self._shared.delete(keys.installation(owner))
        for kind in (TEAM, ORG):
            await self._shared.remove_member(keys.installations(), f"{kind}:{owner}")
        enterprise = enterprise or await self._shared.get(keys.org_install(owner))
        if enterprise is not None:
            await self._shared.remove_member(keys.enterprise_teams(enterprise), owner)

    # -- reading, with the process's cache ---------------------------------------------------

    async def _load(self, owner: str) -> Installation | None:
        cached = self._cache.get(owner)
        if cached is not None and self._health is not None and self._health.down:
            return cached
        try:
            raw = await self._shared.get(keys.installation(owner))
        except StoreUnavailable as error:
            if self._health is not None:
                self._health.failed(error)
            if cached is not None:
                return cached
            log.warning("installation of %s unknown here while the store is unreachable", owner)
            raise
        if raw is None:
            self._cache.pop(owner, None)  # uninstalled, maybe through another replica
            self._present.discard(owner)
            return None
        installation = _from_json(raw)
        self._cache[owner] = installation
        return installation

    async def _enterprise_of(self, team: str) -> str | None:
        """The enterprise of the org-wide installation serving `team`: Redis's word while it
        answers, this process's memory while not."""
        known = self._org_of.get(team)
        if known is not None and self._health is not None and self._health.down:
            return known
        try:
            enterprise = await self._shared.get(keys.org_install(team))
        except StoreUnavailable as error:
            if self._health is not None:
                self._health.failed(error)
            if known is not None:
                return known
            raise
        if enterprise is None:
            self._org_of.pop(team, None)
        else:
            self._org_of[team] = enterprise
        return enterprise


class RedisOAuthStateStore(AsyncOAuthStateStore):
    """The `state` of each install link: issued by `/slack/install`, good for
    `keys.OAUTH_STATE_TTL` seconds, taken at most once by the OAuth redirect (a replayed
    redirect, or one from another browser, is refused). Any replica may issue it and any
    other take it."""

    def __init__(self, shared: Store, clock: Clock, ttl: int = keys.OAUTH_STATE_TTL) -> None:
        self._shared = shared
        self._clock = clock
        self._ttl = ttl

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(32)
        # Redis forgets it after the lifetime; the issue time (wall clock, shared by every
        # replica) lets the redirect refuse it at the same moment.
        await self._shared.set(keys.oauth_state(state), repr(self._clock.wall()), ttl=self._ttl)
        return state

    async def async_consume(self, state: str) -> bool:
        if not _STATE.fullmatch(state or ""):
            return False
        key = keys.oauth_state(state)
        try:
            issued = await self._shared.get(key)
            # Single use: of two redirects carrying the state, one claims it.
            if issued is None or not await self._shared.claim(
                keys.oauth_state_taken(state), self._ttl
            ):
                return False
            await self._shared.delete(key)
        except StoreUnavailable as error:
            # Not "invalid state": the install link may be good. Raised, the redirect's
            # page says to try again in a minute (bot/server.py).
            log.error(
                "an install's state could not be checked: the store is unreachable (%s)", error
            )
            raise
        return self._clock.wall() - float(issued) <= self._ttl


def _owner(enterprise_id: str | None, team_id: str | None, org_wide: bool | None) -> str | None:
    """Whose installation serves a request: the enterprise's for an org-wide install, the
    workspace's otherwise."""
    return enterprise_id if org_wide else team_id


def _to_json(installation: Installation) -> str:
    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.timestamp()
        raise TypeError(type(value).__name__)

    return json.dumps(installation.to_dict_for_copying(), default=encode)


def _from_json(raw: str) -> Installation:
    data = json.loads(raw)
    for name in ("bot_token_expires_at", "user_token_expires_at"):  # whole seconds
        if data.get(name) is not None:
            data[name] = int(data[name])
    return Installation(**data)
