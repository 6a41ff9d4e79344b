"""Redis as deployments run it: one server (TLS through `rediss://`), a Sentinel-watched
master, or a Cluster, each through redis-py's own client; a setting that names none of them
clearly, or two at once, stops the start with one line. No Sentinel or Cluster runs here:
these check what is built (redis-py connects lazily) and the key layout a Cluster needs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as redis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.crc import key_slot

from bot import keys
from bot.config import ConfigError, Settings
from bot.store import RedisStore
from tests.conftest import REDIS_URL
from tests.test_cli import run_cli

REQUIRED = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s",
    "CUSTOMGPT_API_KEY": "k",
}


def settings(**redis: str) -> Settings:
    return Settings.from_env({**REQUIRED, **redis})


async def test_a_tls_url_connects_over_tls() -> None:
    store = RedisStore.from_settings(settings(REDIS_URL="rediss://:pw@redis.example:6380/2"))
    pool = store.client.connection_pool
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["host"] == "redis.example"
    assert pool.connection_kwargs["port"] == 6380
    assert pool.connection_kwargs["db"] == 2
    await store.close()


async def test_sentinels_find_the_named_master() -> None:
    chosen = settings(
        REDIS_SENTINELS="sentinel-a:26379, [fd00::1]:26380",
        REDIS_SENTINEL_MASTER="bot-master",
        REDIS_PASSWORD="master-secret",
    )
    assert chosen.uses_redis

    store = RedisStore.from_settings(chosen)

    pool = store.client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "bot-master"
    assert pool.connection_kwargs["password"] == "master-secret"
    assert pool.connection_kwargs["decode_responses"] is True
    sentinels = [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in pool.sentinel_manager.sentinels
    ]
    assert sentinels == [("sentinel-a", 26379), ("fd00::1", 26380)]
    await store.close()


async def test_cluster_mode_uses_the_cluster_client_from_any_node() -> None:
    store = RedisStore.from_settings(
        settings(REDIS_URL="rediss://node-3.example:7000", REDIS_CLUSTER="true")
    )
    client = store.client
    assert isinstance(client, RedisCluster)
    assert "node-3.example:7000" in client.nodes_manager.startup_nodes
    await store.close()


@pytest.mark.parametrize(
    ("redis", "named"),
    [
        ({"REDIS_CLUSTER": "true"}, "REDIS_CLUSTER=true needs REDIS_URL"),
        ({"REDIS_SENTINELS": "s:26379"}, "REDIS_SENTINELS needs REDIS_SENTINEL_MASTER"),
        (
            {"REDIS_SENTINELS": "s:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://r"},
            "REDIS_SENTINELS replaces REDIS_URL and REDIS_CLUSTER",
        ),
        (
            {"REDIS_SENTINELS": "s", "REDIS_SENTINEL_MASTER": "m"},
            "REDIS_SENTINELS must be host:port,host:port, not 's'",
        ),
        (
            {"REDIS_SENTINELS": "s:99999", "REDIS_SENTINEL_MASTER": "m"},
            "REDIS_SENTINELS must be host:port",
        ),
        ({"REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINEL_MASTER is only read with"),
        (
            {"REDIS_PASSWORD": "p", "REDIS_URL": "redis://r"},
            "REDIS_PASSWORD is only read with",
        ),
        ({"REDIS_CLUSTER": "sometimes", "REDIS_URL": "redis://r"}, "REDIS_CLUSTER must be"),
    ],
)
def test_a_redis_setting_that_cannot_work_is_refused(redis: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**REQUIRED, **redis})
    assert named in str(refused.value)
    assert "\n" not in str(refused.value)


async def test_a_bad_redis_setting_stops_the_start_with_one_line(tmp_path: Path) -> None:
    dotenv = {**REQUIRED, "REDIS_SENTINELS": "sentinel-a:26379"}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))

    code, out, err = await run_cli(None, tmp_path)

    assert code == 2
    assert err.strip().splitlines() == [
        "Configuration error: REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the master's name)"
    ]
    assert out == ""


@given(st.from_regex(r"[TE][A-Z0-9]{1,20}", fullmatch=True))
def test_keys_one_script_uses_together_share_a_cluster_slot(team: str) -> None:
    # The Slack buckets' script (bot/rate_buckets.py) reads and writes both in one call.
    assert key_slot(keys.slack_buckets(team).encode()) == key_slot(
        keys.finals_expected(team).encode()
    )


async def test_a_burst_of_commands_shares_a_bounded_pool_of_connections() -> None:
    # A database no other test uses, so the server's client list tells this store's
    # connections apart (each says which database it selected).
    url = REDIS_URL.rsplit("/", 1)[0] + "/9"
    store = RedisStore.from_settings(settings(REDIS_URL=url, REDIS_MAX_CONNECTIONS="8"))
    admin = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await asyncio.gather(*(store.get(f"burst:{n}") for n in range(200)))
        clients = await admin.client_list()
        opened = [c for c in clients if c.get("db") == "9"]
        assert 0 < len(opened) <= 8
    finally:
        await store.close()
        await admin.aclose()
