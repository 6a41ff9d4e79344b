"""Fixtures: the fake Slack and CustomGPT servers, a real Redis, and the bot running against
them exactly as in production (its HTTP server, its settings from base URLs)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp import web

from bot.app import build_app
from bot.background import start_background
from bot.clock import Clock
from bot.config import Settings
from bot.event_loop import new_loop
from bot.runtime import Runtime
from bot.server import app_runner, web_app
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack, SlackLimits
from tests.redis_process import RedisProcess, own_redis_server

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PROJECT_ID = 42


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every test on the loop the bot runs on (uvloop where installed)."""
    return {"loop": new_loop}


@pytest.fixture
def team() -> str:
    """A team id of its own per test: keys never collide, and cleanup is one prefix."""
    return f"T{uuid.uuid4().hex[:10].upper()}"


@pytest.fixture
async def redis_client(team: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {error}")
    yield client
    keys = [k async for k in client.scan_iter(match=f"cgpt:{team}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def slack(team: str) -> AsyncIterator[FakeSlack]:
    # Slack's own shape of rate limits, always: the bot is tested against them, not beside.
    async with FakeSlack(team_id=team, limits=SlackLimits.slack()) as fake:
        yield fake


@pytest.fixture
async def customgpt() -> AsyncIterator[FakeCustomGPT]:
    async with FakeCustomGPT(api_key="test-key") as fake:
        fake.add_project(PROJECT_ID, "Acme Docs")
        yield fake


@pytest.fixture
def settings(slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis) -> Settings:
    return Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_SIGNING_SECRET": "test-signing-secret",
            "SLACK_API_URL": slack.api_url,
            "CUSTOMGPT_API_KEY": "test-key",
            "CUSTOMGPT_API_URL": customgpt.api_url,
            "CUSTOMGPT_PROJECT_ID": str(PROJECT_ID),
            "REDIS_URL": REDIS_URL,
            "SLACK_UPDATE_INTERVAL": "0",
        }
    )


@pytest.fixture
async def start_bot(
    settings: Settings, team: str
) -> AsyncIterator[Callable[..., Awaitable[RunningBot]]]:
    """Start the bot (optionally with changed settings, or a test clock); every bot started
    is stopped. Start-up runs as in production: pending project watches resume."""
    started: list[RunningBot] = []

    async def start(*, clock: Clock | None = None, **changes: Any) -> RunningBot:
        runtime = await Runtime.open(replace(settings, **changes), clock=clock)
        runner = app_runner(web_app(build_app(runtime), runtime))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        await start_background(runtime)
        running = RunningBot(runtime, runner, aiohttp.ClientSession(), team)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        await running.close()


@pytest.fixture
async def bot(start_bot: Callable[..., Awaitable[RunningBot]]) -> RunningBot:
    return await start_bot()


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisProcess]:
    """A `redis-server` of the test's own on a spare port, to stop, freeze and restart."""
    async for server in own_redis_server():
        yield server


@pytest.fixture
async def own_client(own_redis: RedisProcess) -> AsyncIterator[redis.Redis]:
    """A client of the test's own Redis, to look at what the bot left there."""
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    yield client
    await client.aclose()
