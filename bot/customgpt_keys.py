"""Whose CustomGPT key a workspace's requests carry: the one policy, in one place.

A CustomGPT API key opens a whole account: every knowledge base in it, and its query credits.
So one operator key must not let workspace B list, bind or spend workspace A's knowledge
bases: each workspace's admin connects a key of its own (`/customgpt key`), and everything the
workspace does with CustomGPT (answers, citations, feedback, `/customgpt`, indexing watches)
goes out with that key. The environment's `CUSTOMGPT_API_KEY` serves a workspace only when
`CUSTOMGPT_SHARED_KEY` is on (one company's own workspaces), and a key the workspace connected
wins over it.

Keys are stored encrypted (Fernet, keyed by `CUSTOMGPT_KEY_ENCRYPTION_KEY`): what Redis, its
backups and its replicas hold cannot be used without the process's environment. Every client
shares the process's one CustomGPT connection pool; only the `Authorization` header differs.
A key, once known to the process, is redacted from every log line and Slack text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aiohttp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot import keys, log_setup
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.customgpt import CustomGPTClient, RequestTimeout
from bot.log_throttle import ThrottledLog
from bot.metrics import Metrics
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

#: Seconds the check of a newly typed key may take: Slack wants the modal's submission
#: answered within 3 seconds, and a wrong key must be told inside the modal.
KEY_CHECK_TIMEOUT = 2.0
MAX_KEY_LENGTH = 200
STORE_DOWN_LOG_EVERY = 60.0  # seconds between two lines about asking with the shared key


class NoKey(Exception):
    """The workspace has no usable CustomGPT key: an admin must connect one."""


class CannotSeal(Exception):
    """No CUSTOMGPT_KEY_ENCRYPTION_KEY is set: a workspace's key cannot be stored."""


class KeySealer:
    """Encrypts keys for the store and decrypts them again. The first encryption key seals;
    every one listed opens, so an operator rotates by putting a new key first."""

    def __init__(self, encryption_keys: tuple[str, ...]) -> None:
        self._fernet = (
            MultiFernet([Fernet(k) for k in encryption_keys]) if encryption_keys else None
        )

    @property
    def can_seal(self) -> bool:
        return self._fernet is not None

    def seal(self, text: str) -> str:
        if self._fernet is None:
            raise CannotSeal("CUSTOMGPT_KEY_ENCRYPTION_KEY is not set")
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, token: str) -> str | None:
        """The sealed text; None when no encryption key listed opens it (it was changed
        without keeping the old one) or the record is damaged."""
        if self._fernet is None:
            return None
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            return None


@dataclass(frozen=True)
class Account:
    """What a workspace asks CustomGPT with."""

    client: CustomGPTClient
    #: The workspace's own key (False: the environment's shared key).
    own_key: bool
    #: CUSTOMGPT_PROJECT_ID belongs to the environment's account: it answers only where the
    #: shared key does; a workspace with its own key binds its own projects.
    default_project: str | None


class CustomGPTKeys:
    """Resolves a workspace's CustomGPT client, and connects and removes workspaces' keys."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        session: aiohttp.ClientSession,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._session = session
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._sealer = KeySealer(settings.customgpt_key_encryption_keys)
        self._shared = (
            self._client(settings.customgpt_api_key)
            if settings.customgpt_shared_key and settings.customgpt_api_key
            else None
        )
        # team → (the stored record, its client): a record seen before is not decrypted again,
        # and the client keeps its state (the once-a-minute credits warning).
        self._known: dict[str, tuple[str, CustomGPTClient]] = {}
        self._unreadable_logged: set[str] = set()
        self._store_down_log = ThrottledLog(log, STORE_DOWN_LOG_EVERY, clock or SystemClock())

    @property
    def shared(self) -> CustomGPTClient | None:
        """The environment's key, when it serves every workspace."""
        return self._shared

    @property
    def can_connect(self) -> bool:
        """Whether a workspace's key can be stored (an encryption key is set)."""
        return self._sealer.can_seal

    def _client(self, api_key: str, *, secret: bool = True) -> CustomGPTClient:
        """`secret`: the key works (or is the operator's), so every log line and Slack text
        redacts it from now on; a typed key is not one until CustomGPT accepts it (an admin
        typing a word would otherwise redact that word everywhere)."""
        if secret:
            log_setup.add_secret(api_key)
        return CustomGPTClient.configured(
            self._session, self._settings, api_key, clock=self._clock, metrics=self._metrics
        )

    async def account_for(self, team: str) -> Account:
        """The workspace's own key if it connected one, else the shared key if that serves
        every workspace; NoKey otherwise. StoreUnavailable when the store cannot say and no
        shared key stands in."""
        try:
            record = await self._store.lookup(keys.customgpt_key(team))
        except StoreUnavailable:
            if self._shared is None:
                raise
            self._store_down_log.warning(
                "store unreachable: workspaces not known to this process ask with the shared "
                "CustomGPT key (team %s, …)",
                team,
            )
            record = None
        if record is not None:
            client = self._own_client(team, record)
            if client is not None:
                return Account(client, own_key=True, default_project=None)
        if self._shared is not None:
            return Account(
                self._shared, own_key=False, default_project=self._settings.customgpt_project_id
            )
        raise NoKey(team)

    async def client_for(self, team: str) -> CustomGPTClient:
        return (await self.account_for(team)).client

    def _own_client(self, team: str, record: str) -> CustomGPTClient | None:
        known = self._known.get(team)
        if known is not None and known[0] == record:
            return known[1]
        opened = self._sealer.open(record)
        api_key = _api_key(opened) if opened is not None else None
        if api_key is None:
            if team not in self._unreadable_logged:
                self._unreadable_logged.add(team)
                log.error(
                    "team %s: its stored CustomGPT key cannot be decrypted (was "
                    "CUSTOMGPT_KEY_ENCRYPTION_KEY changed without keeping the old one?); "
                    "an admin must connect it again with /customgpt key",
                    team,
                )
            return None
        client = self._client(api_key)
        self._known[team] = (record, client)
        return client

    async def has_own_key(self, team: str) -> bool:
        return await self._store.get(keys.customgpt_key(team)) is not None

    async def check(self, api_key: str) -> int:
        """Ask CustomGPT whether `api_key` works (one page of its projects, the cheapest
        authenticated call); the number of projects on it. Raises AuthError for a wrong key,
        another CustomGPTError when CustomGPT could not say in time."""
        client = self._client(api_key, secret=False)  # its own errors are redacted all the same
        try:
            async with asyncio.timeout(KEY_CHECK_TIMEOUT):
                page = await client.list_projects(1)
        except TimeoutError:
            raise RequestTimeout(0, f"no answer within {KEY_CHECK_TIMEOUT:g} s") from None
        return len(page.projects)

    async def connect(self, team: str, api_key: str, user: str) -> None:
        """Store the workspace's key (it replaces any before it). Raises CannotSeal when no
        encryption key is set, StoreUnavailable when the store is down."""
        record = self._sealer.seal(json.dumps({"api_key": api_key, "connected_by": user}))
        await self._store.set(keys.customgpt_key(team), record)
        self._known[team] = (record, self._client(api_key))
        self._unreadable_logged.discard(team)
        log.warning("team %s: a CustomGPT key was connected by %s", team, user)

    async def remove(self, team: str, user: str) -> bool:
        """Forget the workspace's key; False when it had none."""
        had = await self.has_own_key(team)
        await self._store.delete(keys.customgpt_key(team))
        self._known.pop(team, None)
        if had:
            log.warning("team %s: its CustomGPT key was removed by %s", team, user)
        return had


def _api_key(opened: str) -> str | None:
    try:
        data = json.loads(opened)
    except ValueError:
        return None
    key = data.get("api_key") if isinstance(data, dict) else None
    return key if isinstance(key, str) and key else None
