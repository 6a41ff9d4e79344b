"""Token buckets for Slack's rate limits, shared by every replica of the bot.

Slack limits each write method per workspace (chat.update: about 50 a minute) and posts per
channel (about one a second, with a short burst). A bucket per limit says, before a call is
sent, whether it may go now or how long until it may: a 429 should be the exception, not the
control signal. With Redis the buckets live in one hash per workspace and every decision is one
atomic script, so two or ten replicas together stay within one budget; without Redis (or while
it is unreachable) each process keeps its own.

The algorithm is GCRA (a token bucket written as one "theoretical arrival time" per bucket),
with two additions a scheduler needs:

- `reserve`: a call may be allowed only if `reserve` more tokens would remain after it, so
  partial edits never spend the tokens the final texts of answers in flight will need;
- `pause`: Slack's 429 empties the bucket until its `Retry-After` has passed, and slows the
  bucket down (its refill interval doubles, up to SLOWEST), recovering gradually; Slack's exact
  limits are not published, and the one it enforces may be lower than the one configured.

No maintained library fits: `limits` answers yes/no per window, `pyrate-limiter` and
`throttled-py` cannot take several buckets atomically (a post draws from its channel's and
the workspace's), cannot be paused by a 429, and read time themselves, where ours comes from
the injected clock so tests never sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from bot import keys
from bot.store import REDIS_TIMEOUT, StoreUnavailable

SLOWEST = 8.0  # a bucket slowed by repeated 429s refills at no less than 1/SLOWEST its rate
RECOVERY = 120.0  # seconds for a slowed bucket to recover one step of its rate
IDLE_TTL = 3600  # seconds a workspace's bucket state outlives its last use
# Seconds added to a wait for the next token: between taking a token and Slack receiving the
# call lie a few milliseconds that differ from call to call, and Slack counts receipt times.
MARGIN = 0.25


@dataclass(frozen=True)
class Rate:
    """A limit: `per_minute` calls on average, up to `burst` at once."""

    per_minute: float
    burst: int

    @property
    def interval(self) -> float:
        return 60.0 / self.per_minute


@dataclass(frozen=True)
class Bucket:
    name: str
    rate: Rate


@dataclass(frozen=True)
class Level:
    """A bucket's state right now: seconds until a call may go (0: now), whole tokens left,
    and the seconds one token takes to refill at the current (possibly slowed) rate."""

    wait: float
    tokens: int
    interval: float


class Buckets(Protocol):
    async def take(
        self, team: str, buckets: Sequence[Bucket], now: float, reserve: int = 0
    ) -> float:
        """Take one token from every bucket, all or none: 0.0 when taken, else the seconds
        until all of them could give one (while `reserve` more stay in each)."""
        ...

    async def pause(self, team: str, bucket: Bucket, now: float, seconds: float) -> None:
        """Slack refused a call with Retry-After `seconds`: nothing from this bucket until
        then, and a slower refill for a while."""
        ...

    async def level(self, team: str, bucket: Bucket, now: float) -> Level: ...


@dataclass
class _State:
    tat: float = 0.0  # theoretical arrival time: the bucket is full while tat <= now
    slow: float = 1.0  # refill interval multiplier after 429s
    slow_at: float = 0.0


def _interval(state: _State, rate: Rate, now: float) -> tuple[float, float]:
    """(the current refill interval, the current slow-down factor)."""
    slow = max(1.0, state.slow - max(0.0, now - state.slow_at) / RECOVERY)
    return rate.interval * slow, slow


def _wait(state: _State, rate: Rate, now: float, reserve: int) -> float:
    interval, _ = _interval(state, rate, now)
    tolerance = interval * (rate.burst - 1)
    margin = MARGIN if state.tat > now else 0.0
    return max(0.0, max(state.tat, now) + reserve * interval - tolerance + margin - now)


def _take(state: _State, rate: Rate, now: float) -> None:
    interval, _ = _interval(state, rate, now)
    state.tat = max(state.tat, now) + interval


def _pause(state: _State, rate: Rate, now: float, seconds: float) -> None:
    _, slow = _interval(state, rate, now)
    state.slow, state.slow_at = min(SLOWEST, slow * 2), now
    interval, _ = _interval(state, rate, now)
    state.tat = max(state.tat, now + seconds + interval * (rate.burst - 1))


def _level(state: _State, rate: Rate, now: float) -> Level:
    interval, _ = _interval(state, rate, now)
    tolerance = interval * (rate.burst - 1)
    spare = tolerance - (max(state.tat, now) - now)
    tokens = 0 if spare < 0 else min(rate.burst, int(spare // interval) + 1)
    return Level(_wait(state, rate, now, 0), tokens, interval)


class MemoryBuckets:
    """The buckets of one process: for a single instance, and while Redis is unreachable."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], _State] = {}

    def _state(self, team: str, name: str) -> _State:
        return self._states.setdefault((team, name), _State())

    async def take(
        self, team: str, buckets: Sequence[Bucket], now: float, reserve: int = 0
    ) -> float:
        states = [(self._state(team, b.name), b.rate) for b in buckets]
        wait = max(_wait(state, rate, now, reserve) for state, rate in states)
        if wait > 0:
            return wait
        for state, rate in states:
            _take(state, rate, now)
        return 0.0

    async def pause(self, team: str, bucket: Bucket, now: float, seconds: float) -> None:
        _pause(self._state(team, bucket.name), bucket.rate, now, seconds)

    async def level(self, team: str, bucket: Bucket, now: float) -> Level:
        return _level(self._state(team, bucket.name), bucket.rate, now)


# The same steps as the Python functions above, run atomically inside Redis. KEYS[1] is the
# workspace's hash; fields are "<bucket>:tat", "<bucket>:slow", "<bucket>:at". ARGV: now, op
# ("take" | "pause" | "level"), op argument (reserve, or Retry-After seconds), idle TTL in ms,
# then (name, interval, burst) per bucket. One key per script: Cluster-safe as it stands.
_SCRIPT = (
    """
local now, op, arg, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local recovery, slowest = tonumber('@RECOVERY@'), tonumber('@SLOWEST@')
local buckets = {}
for i = 5, #ARGV, 3 do
  local name = ARGV[i]
  local state = redis.call('HMGET', KEYS[1], name .. ':tat', name .. ':slow', name .. ':at')
  buckets[#buckets + 1] = {
    name = name, base = tonumber(ARGV[i + 1]), burst = tonumber(ARGV[i + 2]),
    tat = tonumber(state[1]) or 0, slow = tonumber(state[2]) or 1, at = tonumber(state[3]) or 0,
  }
end
local function factor(b)
  return math.max(1, b.slow - math.max(0, now - b.at) / recovery)
end
local function wait(b, reserve)
  local interval = b.base * factor(b)
  local margin = 0
  if b.tat > now then margin = tonumber('@MARGIN@') end
  return math.max(0,
    math.max(b.tat, now) + reserve * interval - interval * (b.burst - 1) + margin - now)
end
local result = 0
if op == 'take' then
  for _, b in ipairs(buckets) do result = math.max(result, wait(b, arg)) end
  if result == 0 then
    for _, b in ipairs(buckets) do
      local tat = math.max(b.tat, now) + b.base * factor(b)
      redis.call('HSET', KEYS[1], b.name .. ':tat', string.format('%.6f', tat))
    end
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
  return string.format('%.6f', result)
elseif op == 'pause' then
  local b = buckets[1]
  local slow = math.min(slowest, factor(b) * 2)
  b.slow, b.at = slow, now
  local tat = math.max(b.tat, now + arg + b.base * slow * (b.burst - 1))
  redis.call('HSET', KEYS[1], b.name .. ':tat', string.format('%.6f', tat),
    b.name .. ':slow', string.format('%.6f', slow), b.name .. ':at', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return '0'
end
local b = buckets[1]
return {string.format('%.6f', b.tat), string.format('%.6f', b.slow), string.format('%.6f', b.at)}
""".replace("@RECOVERY@", repr(RECOVERY))
    .replace("@SLOWEST@", repr(SLOWEST))
    .replace("@MARGIN@", repr(MARGIN))
)


class StoreHealth(Protocol):
    """Whether Redis is marked down (bot/degraded_store.py), shared with the store."""

    @property
    def down(self) -> bool: ...

    def failed(self, error: BaseException) -> None: ...


class RedisBuckets:
    """Buckets every replica shares. An unreachable Redis raises StoreUnavailable; the
    caller (the scheduler) then falls back to its own process's buckets. With `health`, a
    Redis marked down raises at once (a hung Redis would cost every call a timeout), and a
    failure here marks it down for the store too."""

    def __init__(self, client: redis.Redis, health: StoreHealth | None = None) -> None:
        self._script = client.register_script(_SCRIPT)
        self._health = health

    async def _run(
        self, team: str, op: str, arg: float, now: float, buckets: Sequence[Bucket]
    ) -> Any:
        argv: list[str | float | int] = [repr(now), op, repr(float(arg)), IDLE_TTL * 1000]
        for bucket in buckets:
            argv += [bucket.name, repr(bucket.rate.interval), bucket.rate.burst]
        if self._health is not None and self._health.down:
            raise StoreUnavailable("marked down")
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                return await cast(
                    Awaitable[Any], self._script(keys=[keys.slack_buckets(team)], args=argv)
                )
        except (RedisError, OSError, TimeoutError) as error:
            unavailable = StoreUnavailable(type(error).__name__)
            if self._health is not None:
                self._health.failed(unavailable)
            raise unavailable from error

    async def take(
        self, team: str, buckets: Sequence[Bucket], now: float, reserve: int = 0
    ) -> float:
        return float(await self._run(team, "take", reserve, now, buckets))

    async def pause(self, team: str, bucket: Bucket, now: float, seconds: float) -> None:
        await self._run(team, "pause", seconds, now, [bucket])

    async def level(self, team: str, bucket: Bucket, now: float) -> Level:
        tat, slow, at = await self._run(team, "level", 0, now, [bucket])
        return _level(_State(float(tat), float(slow), float(at)), bucket.rate, now)
