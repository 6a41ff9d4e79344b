"""The long-lived things one bot process owns, opened together and closed together.

Slack and CustomGPT each get their own connection pool: every streaming answer holds a
CustomGPT connection for as long as it streams, and Slack calls must never wait behind them
(slack_sdk would otherwise open a session per call). One store, one clock. Tests build a
Runtime against the fake servers exactly the way production does, through the base-URL
settings.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.admins import Admins
from bot.answer import Answerer
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.customgpt import CustomGPTClient
from bot.customgpt_keys import CustomGPTKeys
from bot.degraded_store import FallbackStore
from bot.health import Health
from bot.journal import Journal
from bot.metrics import Metrics
from bot.oauth_stores import RedisInstallationStore, RedisOAuthStateStore
from bot.rate_buckets import Buckets, MemoryBuckets, RedisBuckets
from bot.slack_calls import SlackSchedulers, limits_for
from bot.store import MemoryStore, RedisStore, Store, StoreUnavailable
from bot.tasks import TaskTracker

log = logging.getLogger(__name__)

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=None)
SLACK_CONNECTIONS = 64  # Slack calls are short and paced by the scheduler's lanes
CUSTOMGPT_SPARE = 32  # connections beyond one per admitted stream: REST calls, citations


def slack_session() -> aiohttp.ClientSession:
    """Slack's pool (Web API and response URLs), apart from the streams."""
    connector = aiohttp.TCPConnector(limit=SLACK_CONNECTIONS, limit_per_host=SLACK_CONNECTIONS)
    return aiohttp.ClientSession(timeout=HTTP_TIMEOUT, connector=connector)


def customgpt_session(settings: Settings) -> aiohttp.ClientSession:
    """CustomGPT's pool: one connection per answer the process admits (each stream holds one
    for the whole answer), plus spares for the calls around them."""
    size = settings.max_concurrent_answers + CUSTOMGPT_SPARE
    connector = aiohttp.TCPConnector(limit=size, limit_per_host=size)
    return aiohttp.ClientSession(timeout=HTTP_TIMEOUT, connector=connector)


def slack_client(session: aiohttp.ClientSession, settings: Settings) -> AsyncWebClient:
    """The Slack Web API client every part of the bot shares (one connection pool)."""
    return AsyncWebClient(
        token=settings.slack_bot_token or None,
        base_url=settings.slack_api_url,
        session=session,
        timeout=30,
        # No built-in retries: they sleep inside the call, stalling a streamer. Rate
        # limits and network errors are handled in bot/slack_calls.py instead.
        retry_handlers=[],
    )


def customgpt_client(
    session: aiohttp.ClientSession, settings: Settings, metrics: Metrics | None = None
) -> CustomGPTClient:
    """The CustomGPT client as every entry point (app, terminal) configures it."""
    return CustomGPTClient.configured(
        session, settings, settings.customgpt_api_key, metrics=metrics
    )


#: What `Runtime.served_teams` raises when it cannot say now (Slack or the store unreachable).
TEAMS_UNKNOWN = (SlackApiError, aiohttp.ClientError, TimeoutError, StoreUnavailable)


@dataclass(frozen=True)
class Identity:
    """Who the bot token is (`auth.test`): asked once per process, not once per request."""

    team_id: str
    enterprise_id: str | None
    bot_user_id: str | None
    bot_id: str | None


@dataclass
class Runtime:
    settings: Settings
    session: aiohttp.ClientSession  # Slack's pool
    customgpt_session: aiohttp.ClientSession
    store: Store
    slack: AsyncWebClient
    slack_writes: SlackSchedulers
    customgpt_keys: CustomGPTKeys  # each workspace's CustomGPT client (bot/customgpt_keys.py)
    answerer: Answerer
    journal: Journal
    clock: Clock
    tasks: TaskTracker
    metrics: Metrics
    health: Health
    #: OAuth (SLACK_CLIENT_ID set): every workspace's installation, and install links' state.
    installations: RedisInstallationStore | None = None
    oauth_state: RedisOAuthStateStore | None = None
    _identity: Identity | None = None
    _identity_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Who may administer the bot in each workspace (bot/admins.py).
    admins: Admins = field(init=False)

    def __post_init__(self) -> None:
        self.admins = Admins(self.settings, self.slack_writes, self.clock)

    async def identity(self) -> Identity:
        """The token's team and bot user. Bolt would otherwise call `auth.test` for every
        request that arrives before its first answer: a burst of questions at start-up then
        meets Slack's rate limit and loses the questions. One call, shared; a failure is not
        remembered, so the next request asks again."""
        async with self._identity_lock:
            if self._identity is None:
                answer = await self.slack.auth_test()
                self._identity = Identity(
                    team_id=str(answer["team_id"]),
                    enterprise_id=answer.get("enterprise_id"),
                    bot_user_id=answer.get("user_id"),
                    bot_id=answer.get("bot_id"),
                )
            return self._identity

    async def served_teams(self) -> set[str]:
        """Every workspace this bot serves, for work no request starts (resuming watches,
        finishing answers left behind): the installed ones with OAuth, else the token's.
        Raises one of TEAMS_UNKNOWN when it cannot say now."""
        if self.installations is not None:
            return await self.installations.teams()
        return {(await self.identity()).team_id}

    @classmethod
    async def open(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        clock = clock or SystemClock()
        session = slack_session()
        cgpt_session = customgpt_session(settings)
        buckets: Buckets
        metrics = Metrics()
        installations: RedisInstallationStore | None = None
        oauth_state: RedisOAuthStateStore | None = None
        if settings.uses_redis:
            redis_store = RedisStore.from_settings(settings)
            fallback = FallbackStore(
                redis_store, MemoryStore(clock), clock, on_failure=metrics.store_error
            )
            store: Store = fallback
            buckets = RedisBuckets(redis_store.client, health=fallback)
            if settings.uses_oauth:  # config.py refuses OAuth without Redis
                installations = RedisInstallationStore(redis_store, health=fallback, clock=clock)
                oauth_state = RedisOAuthStateStore(redis_store, clock)
        else:
            log.warning("REDIS_URL is not set: using an in-process store (one instance only)")
            store = MemoryStore(clock)
            buckets = MemoryBuckets()
        slack = slack_client(session, settings)
        writes = SlackSchedulers(
            slack,
            buckets,
            limits_for(settings),
            clock,
            metrics,
            tokens=installations,
        )
        customgpt_keys = CustomGPTKeys(settings, store, cgpt_session, clock, metrics)
        journal = Journal(store, writes, clock, settings.slack_update_interval)
        answerer = Answerer(settings, store, customgpt_keys, writes, clock, journal, metrics)
        return cls(
            settings,
            session,
            cgpt_session,
            store,
            slack,
            writes,
            customgpt_keys,
            answerer,
            journal,
            clock,
            TaskTracker(),
            metrics,
            Health(metrics),
            installations,
            oauth_state,
        )

    async def close(self) -> None:
        await self.tasks.shutdown(self.settings.shutdown_grace)
        await self.journal.abandon()
        await self.slack_writes.close()
        await self.store.close()
        await self.session.close()
        await self.customgpt_session.close()
