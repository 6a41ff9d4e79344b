"""Token buckets for Slack's rate limits, shared by every replica of the bot.

Slack limits each write method per workspace (chat.update: about 50 a minute) and posts per
channel (about one a second, with a short burst). A bucket per limit says, before a call is
sent, whether it may go now or how long until it may: a 429 should be the exception, not the
control signal. With Redis the buckets live in one hash per workspace and every decision is one
atomic script, so two or ten replicas together stay within one budget; without Redis (or while
it is unreachable) each process keeps its own.

The algorithm is GCRA (a token bucket written as one "theoretical arrival time" per bucket),
with two additions a scheduler needs:

- expected finals: every answer streaming in the workspace (on any replica) registers the
  final edit it will need (`expect`, `settle`), and a partial call is allowed only if as many
  tokens would remain after it, so partial edits never spend what the final texts need;
- `pause`: Slack's 429 empties the bucket until its `Retry-After` has passed, and slows the
  bucket down (its refill interval grows by half, up to SLOWEST times), recovering
  gradually; Slack's exact limits are not published, and the one it enforces may be lower
  than the one configured.

No maintained library fits: `limits` answers yes/no per window, `pyrate-limiter` and
`throttled-py` cannot take several buckets atomically (a post draws from its channel's and
the workspace's), cannot be paused by a 429, and read time themselves, where ours comes from
the injected clock so tests never sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from bot import keys
from bot.store import REDIS_TIMEOUT, StoreUnavailable

SLOWEST = 8.0  # a bucket slowed by repeated 429s refills at no less than 1/SLOWEST its rate
SLOW_DOWN = 1.5  # each 429 stretches the refill interval by this much (a stray 429 costs little)
RECOVERY = 120.0  # seconds for a slowed bucket to recover one step of its rate
IDLE_TTL = 3600  # seconds a workspace's bucket state outlives its last use
# Seconds added to a wait for the next token: between taking a token and Slack receiving the
# call lie a few milliseconds that differ from call to call, and Slack counts receipt times.
MARGIN = 0.5
EPSILON = 1e-4  # seconds below which a wait is none (the script stores times to 1 µs)


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
    the seconds one token takes to refill at the current (possibly slowed) rate, and the
    final texts expected in the workspace."""

    wait: float
    tokens: int
    interval: float
    expected: int = 0


class Buckets(Protocol):
    async def take(
        self, team: str, buckets: Sequence[Bucket], now: float, partial: bool = False
    ) -> float:
        """Take one token from every bucket, all or none: 0.0 when taken, else the seconds
        until all of them could give one. A `partial` call also leaves as many tokens as
        there are final texts expected."""
        ...

    async def expect(
        self, team: str, answer: str, now: float, until: float, bucket: Bucket
    ) -> Level:
        """An answer will need a final edit (forgotten at `until` if never settled). Returns
        `bucket`'s level with it counted: an answer deciding how to deliver itself needs both,
        and one round trip serves them."""
        ...

    async def settle(self, team: str, answer: str) -> None:
        """The answer's final edit is done, or will never be needed."""
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
    wait = max(state.tat, now) + reserve * interval - tolerance + margin - now
    return 0.0 if wait <= EPSILON else wait


def _take(state: _State, rate: Rate, now: float) -> None:
    interval, _ = _interval(state, rate, now)
    state.tat = max(state.tat, now) + interval


def _pause(state: _State, rate: Rate, now: float, seconds: float) -> None:
    _, slow = _interval(state, rate, now)
    state.slow, state.slow_at = min(SLOWEST, slow * SLOW_DOWN), now
    interval, _ = _interval(state, rate, now)
    state.tat = max(state.tat, now + seconds + interval * (rate.burst - 1))


def _level(state: _State, rate: Rate, now: float) -> Level:
    interval, _ = _interval(state, rate, now)
    tolerance = interval * (rate.burst - 1)
    spare = tolerance - (max(state.tat, now) - now) + EPSILON
    tokens = 0 if spare < 0 else min(rate.burst, int(spare // interval) + 1)
    return Level(_wait(state, rate, now, 0), tokens, interval)


class MemoryBuckets:
    """The buckets of one process: for a single instance, and while Redis is unreachable."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], _State] = {}
        self._expected: dict[str, dict[str, float]] = {}

    def _state(self, team: str, name: str) -> _State:
        return self._states.setdefault((team, name), _State())

    def _count(self, team: str, now: float) -> int:
        expected = self._expected.get(team, {})
        for answer in [a for a, until in expected.items() if until <= now]:
            del expected[answer]
        return len(expected)

    async def expect(
        self, team: str, answer: str, now: float, until: float, bucket: Bucket
    ) -> Level:
        self._expected.setdefault(team, {})[answer] = until
        return await self.level(team, bucket, now)

    async def settle(self, team: str, answer: str) -> None:
        self._expected.get(team, {}).pop(answer, None)

    async def take(
        self, team: str, buckets: Sequence[Bucket], now: float, partial: bool = False
    ) -> float:
        reserve = self._count(team, now) if partial else 0
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
        level = _level(self._state(team, bucket.name), bucket.rate, now)
        return replace(level, expected=self._count(team, now))


# The same steps as the Python functions above, run atomically inside Redis. KEYS[1] is the
# workspace's hash; fields are "<bucket>:tat", "<bucket>:slow", "<bucket>:at". KEYS[2] is the
# sorted set of final edits expected (answer → expiry). ARGV: now, op ("take" | "pause" |
# "level" | "expect" | "settle"), op argument (1 for a partial take, Retry-After seconds, or
# an expiry), idle TTL in ms, then (name, interval, burst) per bucket, after the answer's id
# for "expect" and "settle". "expect" answers as "level" does, with the answer counted.
# Both keys share a hash tag, so the script runs on Redis Cluster too.
_SCRIPT = (
    """
local now, op, arg, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local recovery, slowest = tonumber('@RECOVERY@'), tonumber('@SLOWEST@')
local buckets = {}
local first = 5
if op == 'expect' or op == 'settle' then first = 6 end
for i = first, #ARGV, 3 do
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
  local w = math.max(b.tat, now) + reserve * interval - interval * (b.burst - 1) + margin - now
  if w <= tonumber('@EPSILON@') then return 0 end
  return w
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if op == 'expect' then
  redis.call('ZADD', KEYS[2], arg, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ttl)
elseif op == 'settle' then
  redis.call('ZREM', KEYS[2], ARGV[5])
  return '0'
end
local expected = redis.call('ZCARD', KEYS[2])
local result = 0
if op == 'take' then
  local reserve = 0
  if arg == 1 then reserve = expected end
  for _, b in ipairs(buckets) do result = math.max(result, wait(b, reserve)) end
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
  local slow = math.min(slowest, factor(b) * tonumber('@SLOW_DOWN@'))
  b.slow, b.at = slow, now
  local tat = math.max(b.tat, now + arg + b.base * slow * (b.burst - 1))
  redis.call('HSET', KEYS[1], b.name .. ':tat', string.format('%.6f', tat),
    b.name .. ':slow', string.format('%.6f', slow), b.name .. ':at', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return '0'
end
local b = buckets[1]
return {string.format('%.6f', b.tat), string.format('%.6f', b.slow),
  string.format('%.6f', b.at), tostring(expected)}
""".replace("@RECOVERY@", repr(RECOVERY))
    .replace("@SLOWEST@", repr(SLOWEST))
    .replace("@MARGIN@", repr(MARGIN))
    .replace("@EPSILON@", repr(EPSILON))
    .replace("@SLOW_DOWN@", repr(SLOW_DOWN))
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
        return await self._call(team, argv + _bucket_args(buckets))

    async def _call(self, team: str, argv: list[str | float | int]) -> Any:
        if self._health is not None and self._health.down:
            raise StoreUnavailable("marked down")
        script_keys = [keys.slack_buckets(team), keys.finals_expected(team)]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                return await cast(Awaitable[Any], self._script(keys=script_keys, args=argv))
        except (RedisError, OSError, TimeoutError) as error:
            unavailable = StoreUnavailable(type(error).__name__)
            if self._health is not None:
                self._health.failed(unavailable)
            raise unavailable from error

    async def take(
        self, team: str, buckets: Sequence[Bucket], now: float, partial: bool = False
    ) -> float:
        return float(await self._run(team, "take", 1 if partial else 0, now, buckets))

    async def expect(
        self, team: str, answer: str, now: float, until: float, bucket: Bucket
    ) -> Level:
        argv: list[str | float | int] = [repr(now), "expect", repr(until), IDLE_TTL * 1000, answer]
        return _read_level(await self._call(team, argv + _bucket_args([bucket])), bucket, now)

    async def settle(self, team: str, answer: str) -> None:
        await self._call(team, ["0", "settle", "0", IDLE_TTL * 1000, answer])

    async def pause(self, team: str, bucket: Bucket, now: float, seconds: float) -> None:
        await self._run(team, "pause", seconds, now, [bucket])

    async def level(self, team: str, bucket: Bucket, now: float) -> Level:
        return _read_level(await self._run(team, "level", 0, now, [bucket]), bucket, now)


def _bucket_args(buckets: Sequence[Bucket]) -> list[str | float | int]:
    """The script's arguments naming `buckets`: (name, interval, burst) each."""
    return [arg for b in buckets for arg in (b.name, repr(b.rate.interval), b.rate.burst)]


def _read_level(reply: Any, bucket: Bucket, now: float) -> Level:
    """The script's answer for one bucket's level (its state and the finals expected)."""
    tat, slow, at, expected = reply
    level = _level(_State(float(tat), float(slow), float(at)), bucket.rate, now)
    return replace(level, expected=int(expected))
