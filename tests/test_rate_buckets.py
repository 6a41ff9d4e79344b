"""The token buckets: Redis's script and the in-process twin decide alike, whatever happens."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from bot import keys
from bot.rate_buckets import MARGIN, Bucket, MemoryBuckets, Rate, RedisBuckets
from tests.conftest import REDIS_URL

CHANNEL = Bucket("post:C1", Rate(60, 2))
WORKSPACE = Bucket("post", Rate(120, 3))
UPDATE = Bucket("update", Rate(30, 4))

# Times on a millisecond grid: the script keeps microseconds, and a boundary hit exactly
# must read the same on both sides.
_SECONDS = st.integers(0, 5000).map(lambda ms: ms / 1000)
_OPS = st.one_of(
    st.tuples(st.just("advance"), _SECONDS),
    st.tuples(st.just("take"), st.sampled_from(["update", "post"]), st.booleans()),
    st.tuples(st.just("pause"), _SECONDS),
    st.tuples(st.just("expect"), st.integers(0, 4)),
    st.tuples(st.just("settle"), st.integers(0, 4)),
)


@pytest.fixture
async def client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, decode_responses=True)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(_OPS, min_size=1, max_size=40))
async def test_the_redis_script_and_the_in_process_buckets_decide_alike(
    client: redis.Redis, ops: list[tuple[object, ...]]
) -> None:
    team = f"TB{uuid.uuid4().hex[:8]}"
    shared, local = RedisBuckets(client), MemoryBuckets()
    now = 1_800_000_000.0
    try:
        for op in ops:
            if op[0] == "advance":
                now += float(op[1])  # type: ignore[arg-type]
            elif op[0] == "take":
                buckets = [UPDATE] if op[1] == "update" else [CHANNEL, WORKSPACE]
                partial = bool(op[2])
                got = await shared.take(team, buckets, now, partial)
                want = await local.take(team, buckets, now, partial)
                assert got == pytest.approx(want, abs=1e-3)
            elif op[0] == "pause":
                await shared.pause(team, UPDATE, now, float(op[1]))  # type: ignore[arg-type]
                await local.pause(team, UPDATE, now, float(op[1]))  # type: ignore[arg-type]
            elif op[0] == "expect":
                got_expect = await shared.expect(team, f"a{op[1]}", now, now + 30, UPDATE)
                want_expect = await local.expect(team, f"a{op[1]}", now, now + 30, UPDATE)
                assert (got_expect.tokens, got_expect.expected) == (
                    want_expect.tokens,
                    want_expect.expected,
                )
            else:
                await shared.settle(team, f"a{op[1]}")
                await local.settle(team, f"a{op[1]}")
            got_level = await shared.level(team, UPDATE, now)
            want_level = await local.level(team, UPDATE, now)
            assert (got_level.tokens, got_level.expected) == (
                want_level.tokens,
                want_level.expected,
            )
            assert got_level.wait == pytest.approx(want_level.wait, abs=1e-3)
    finally:
        await client.delete(keys.slack_buckets(team), keys.finals_expected(team))


async def test_a_burst_then_one_token_per_interval_and_partials_leave_the_finals_theirs() -> None:
    buckets = MemoryBuckets()
    now = 1000.0
    assert [await buckets.take("T", [UPDATE], now) for _ in range(3)] == [0.0] * 3
    # The last token of a burst, like every token refilled later, waits a small margin: the
    # bot's clock and Slack's receipt of the call are a few milliseconds apart.
    assert await buckets.take("T", [UPDATE], now) == pytest.approx(MARGIN)
    assert await buckets.take("T", [UPDATE], now + MARGIN) == 0.0
    assert await buckets.take("T", [UPDATE], now + MARGIN) > 1.9  # 30 a minute: 2 s each
    now += 10.0  # the bucket is full again
    assert (await buckets.expect("T", "answer-1", now, now + 60, UPDATE)).expected == 1
    assert (await buckets.expect("T", "answer-2", now, now + 60, UPDATE)).expected == 2
    assert await buckets.take("T", [UPDATE], now, partial=True) == 0.0  # 4 - 1 >= 2 reserved
    assert await buckets.take("T", [UPDATE], now, partial=True) > 0  # 3 - 1: the margin
    assert await buckets.take("T", [UPDATE], now + MARGIN, partial=True) == 0.0
    assert await buckets.take("T", [UPDATE], now + MARGIN, partial=True) > 1  # a final's
    assert await buckets.take("T", [UPDATE], now) == 0.0  # a final may
    await buckets.settle("T", "answer-1")
    assert (await buckets.level("T", UPDATE, now)).expected == 1


async def test_a_429_pauses_the_bucket_and_slows_it_down() -> None:
    buckets = MemoryBuckets()
    now = 1000.0
    await buckets.pause("T", UPDATE, now, 30)
    assert await buckets.take("T", [UPDATE], now + 29) > 0
    assert await buckets.take("T", [UPDATE], now + 45) == 0.0
    level = await buckets.level("T", UPDATE, now + 40)
    assert level.interval > UPDATE.rate.interval  # still slower than configured


def test_keys_one_script_uses_share_a_redis_cluster_slot() -> None:
    for team in ("T1", "TABCDEF123", "E0{odd}"):
        assert key_slot(keys.slack_buckets(team).encode()) == key_slot(
            keys.finals_expected(team).encode()
        )
