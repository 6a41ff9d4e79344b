"""One scheduler per workspace for every Slack write the bot makes.

Many answers streaming at once share a few small budgets (chat.update: about 50 a minute for
the whole workspace; posts: about one a second per channel). If each answer retried on its own,
forty writers would wake together, overrun the window together and give up together. Instead
every write waits in a lane (one per budget: edits, posts to one channel, reactions) and the
lane sends it only when its token buckets allow:

- calls that must land (placeholders, final texts, continuations, notices) go before partial
  edits; among partial edits the message whose visible text is stalest goes first, and partial
  edits never spend the tokens the final texts of answers in flight will need;
- a partial edit is rendered when it is sent, not when it is offered, so it always carries the
  newest text and an edit the budget never allows costs nothing;
- Slack's 429 pauses the lane's bucket for every answer and every replica (and slows it for a
  while); the refused call goes back to the head of its lane instead of retrying on its own;
- a passing failure (HTTP 5xx, a network error, `internal_error`) is retried with back-off when
  repeating the call is safe; a permanent refusal reaches the caller;
- a call that must land waits however long the queue is, up to the delivery deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.clock import Clock, sleep_unless
from bot.metrics import Metrics
from bot.rate_buckets import Bucket, Buckets, Level, MemoryBuckets, Rate
from bot.store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0  # seconds between retries of a call that failed in passing
IN_FLIGHT_PATIENCE = 2.0  # real seconds a lane waits for Slack's answer before sending on
PARTIAL = 1
MUST_LAND = 0
# Slack's rate-limit tiers as budgets (a short burst, then the tier's rate).
TIER_2 = Rate(per_minute=20, burst=5)
TIER_3 = Rate(per_minute=50, burst=10)
TIER_4 = Rate(per_minute=100, burst=20)


class RateLimited(Exception):
    """Slack refused the call for now (HTTP 429 or `ratelimited`)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:g}s")
        self.retry_after = retry_after


class PassingFailure(Exception):
    """Slack or the network failed in a way that may pass. `maybe_arrived`: Slack may have
    acted on the call anyway, so only a call that is safe to repeat is sent again."""

    def __init__(self, reason: str, *, maybe_arrived: bool) -> None:
        super().__init__(reason)
        self.maybe_arrived = maybe_arrived


class DeliveryFailed(Exception):
    """A call that had to land did not: a permanent refusal, or the delivery deadline passed.
    `code` is Slack's error (`not_in_channel`, …); None for a deadline or a lost response."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


Send = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
Render = Callable[[], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Limits:
    """What the workspace may spend; bot/config.py reads the settings behind it."""

    update: Rate
    post_per_channel: Rate
    post_per_workspace: Rate
    reactions: Rate
    delivery_deadline: float
    #: chat.startStream and chat.stopStream, each its own bucket (Slack's Tier 2).
    stream_start_stop: Rate = TIER_2
    #: chat.appendStream (Tier 4).
    stream_append: Rate = TIER_4
    #: assistant.threads.setStatus: a courtesy, spent from its own bucket.
    status: Rate = TIER_3
    #: views.publish (the App Home; Tier 4).
    views: Rate = TIER_4
    #: assistant.threads.setSuggestedPrompts and setTitle (Tier 4).
    assistant: Rate = TIER_4
    #: users.info (Tier 4): whether someone is a workspace admin (bot/admins.py).
    users: Rate = TIER_4


@dataclass(eq=False)
class _Call:
    method: str
    render: Render
    priority: int
    order: float  # must-land: arrival; partial: when its visible text became stale
    deadline: float
    repeatable: bool
    done: asyncio.Future[dict[str, Any] | None]
    enqueued_at: float = 0.0
    not_before: float = float("-inf")
    attempts: int = 0
    in_flight: bool = False


@dataclass(eq=False)
class _Lane:
    name: str
    buckets: tuple[Bucket, ...]
    queue: list[_Call] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    sending: int = 0  # calls of this lane on their way to Slack

    def next_ready(self, now: float) -> _Call | None:
        ready = [c for c in self.queue if c.not_before <= now]
        return min(ready, key=lambda c: (c.priority, c.order), default=None)


class EditTicket:
    """A partial edit offered to the scheduler: it is sent when the budget allows (rendered
    then), or withdrawn when the final text is about to be queued."""

    def __init__(self, scheduler: WorkspaceScheduler, lane: _Lane, call: _Call) -> None:
        self._scheduler = scheduler
        self._lane = lane
        self._call = call

    @property
    def settled(self) -> asyncio.Future[dict[str, Any] | None]:
        """Resolves to Slack's answer once sent; to None when not shown (refused for now,
        nothing new to show); raises what Slack refused for good."""
        return self._call.done

    def withdraw_if_queued(self) -> None:
        """Take the offer back if it still waits in line (`settled` is then cancelled); one
        already in flight goes on, and `settled` tells its fate."""
        if self._call in self._lane.queue:
            self._lane.queue.remove(self._call)
            self._call.done.cancel()

    async def withdraw(self) -> bool:
        """Take the offer back; True if it was sent anyway (an edit already in flight is
        waited for, so a later final text can never be overtaken by it)."""
        call = self._call
        self.withdraw_if_queued()
        if call.done.cancelled():
            return False
        try:
            return await asyncio.shield(call.done) is not None
        except Exception:  # refused: the final text will meet (and report) the same refusal
            return False


class OfferWait:
    """The partial call a streamer waits on, taken back when its answer ends first.

    The streamer waits on the offer's own future; `end` (called as the answer ends) takes
    back an offer still in line, so nothing has to watch for the end beside the wait (a
    helper task per edit, once a second for every answer in flight). An offer already in
    flight is waited for, so a final text can never be overtaken by it."""

    def __init__(self, closed: asyncio.Event) -> None:
        self._closed = closed  # set when the answer has ended
        self._ticket: EditTicket | None = None

    async def fate(self, ticket: EditTicket) -> asyncio.Future[dict[str, Any] | None]:
        """Wait until `ticket` is sent, refused or taken back; returns its `settled`."""
        if self._closed.is_set():
            ticket.withdraw_if_queued()
        self._ticket = ticket
        try:
            await asyncio.wait({ticket.settled})
        finally:
            self._ticket = None
        return ticket.settled

    def end(self) -> None:
        """The answer has ended: take back the offer waited on, if it is still in line."""
        if self._ticket is not None:
            self._ticket.withdraw_if_queued()


class WorkspaceScheduler:
    def __init__(
        self,
        team: str,
        send: Send,
        buckets: Buckets,
        limits: Limits,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.team = team
        self._metrics = metrics or Metrics()
        self._metrics.watch_queues(self.queued)
        self._send = send
        self._shared = buckets
        self._local = MemoryBuckets()
        self._limits = limits
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._arrivals = itertools.count()
        self._shared_down = False
        #: Native streams decided on whose chat.startStream / chat.stopStream is still to go.
        self.starts_expected = 0
        self.stops_expected = 0

    # -- what callers use ------------------------------------------------------------------

    async def must_land(
        self, method: str, params: dict[str, Any], *, lane: str, repeatable: bool
    ) -> dict[str, Any]:
        """Send a call that has to land, waiting its turn; DeliveryFailed if it cannot."""
        call = self._enqueue(
            method, lambda: params, lane, MUST_LAND, next(self._arrivals), repeatable
        )
        result = await call.done
        assert result is not None
        return result

    def offer(self, method: str, render: Render, *, lane: str, stale_since: float) -> EditTicket:
        """Offer a call that may wait or be dropped (a partial edit, a courtesy reaction)."""
        call = self._enqueue(method, render, lane, PARTIAL, stale_since, True)
        return EditTicket(self, self._lanes[lane], call)

    async def expect_final(self, answer: str) -> float:
        """An answer streaming by edits will need a final edit: partial edits, on every
        replica, leave a token for it. Returns the seconds the last of the final texts
        expected now (this one included) would wait for the edit budget: the measure of an
        overloaded workspace, read in the same round trip."""
        now = self._clock.wall()
        until = now + self._limits.delivery_deadline
        bucket = self.update_bucket
        try:
            level = await self._shared.expect(self.team, answer, now, until, bucket)
        except StoreUnavailable:
            self._note_shared_down("expect")
            level = await self._local.expect(self.team, answer, now, until, bucket)
        return self._delay(level)

    async def settle_final(self, answer: str) -> None:
        await self._local.settle(self.team, answer)
        try:
            await self._shared.settle(self.team, answer)
        except StoreUnavailable:
            self._note_shared_down("settle")

    def _delay(self, level: Level) -> float:
        queued = sum(1 for c in self._lane("update").queue if c.priority == MUST_LAND)
        ahead = level.expected + queued - level.tokens
        return level.wait + max(0, ahead) * level.interval

    def queued(self) -> dict[str, int]:
        """Calls waiting now, per lane (read by the queue depth metric)."""
        return {name: len(lane.queue) for name, lane in self._lanes.items()}

    @property
    def update_bucket(self) -> Bucket:
        return Bucket("update", self._limits.update)

    async def stream_room(self) -> bool:
        """Whether one more native stream can start now and stop without waiting: a start
        token is there for it (and for every stream decided on but not started yet), the
        stop bucket holds one for every stream still to stop, and neither lane has a queue.
        Otherwise the answer goes by chat.update, so a burst is never slower than that."""
        if self._lane("stream-start").queue or self._lane("stream-stop").queue:
            return False
        start = await self._level(Bucket("stream-start", self._limits.stream_start_stop))
        stop = await self._level(Bucket("stream-stop", self._limits.stream_start_stop))
        return (
            start.wait == 0
            and self.starts_expected < start.tokens
            and self.stops_expected < stop.tokens
        )

    async def close(self) -> None:
        """Stop every lane; calls still queued are cancelled (shutdown's bound has passed)."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        tasks += list(self._sending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self._lanes.values():
            for call in lane.queue:
                call.done.cancel()
            lane.queue.clear()

    # -- lanes -----------------------------------------------------------------------------

    def _lane(self, name: str) -> _Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = _Lane(name, self._buckets_for(name))
            self._lanes[name] = lane
        return lane

    def _buckets_for(self, name: str) -> tuple[Bucket, ...]:
        if name.startswith("post:"):
            # The channel's bucket first: a 429 on a post is the channel's limit.
            return (
                Bucket(name, self._limits.post_per_channel),
                Bucket("post", self._limits.post_per_workspace),
            )
        if name == "update":
            return (self.update_bucket,)
        if name in ("stream-start", "stream-stop"):
            return (Bucket(name, self._limits.stream_start_stop),)
        if name == "stream-append":
            return (Bucket(name, self._limits.stream_append),)
        if name == "status":
            return (Bucket(name, self._limits.status),)
        if name == "views":
            return (Bucket(name, self._limits.views),)
        if name == "assistant":
            return (Bucket(name, self._limits.assistant),)
        if name == "users":
            return (Bucket(name, self._limits.users),)
        return (Bucket(name, self._limits.reactions),)

    def _enqueue(
        self,
        method: str,
        render: Render,
        lane_name: str,
        priority: int,
        order: float,
        repeatable: bool,
    ) -> _Call:
        lane = self._lane(lane_name)
        deadline = self._clock.now() + self._limits.delivery_deadline
        done: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        call = _Call(method, render, priority, order, deadline, repeatable, done, self._clock.now())
        lane.queue.append(call)
        self._kick(lane)
        return call

    def _kick(self, lane: _Lane) -> None:
        lane.wake.set()
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._run(lane), name=f"slack-{lane.name}")

    async def _run(self, lane: _Lane) -> None:
        while lane.queue:
            now = self._clock.now()
            self._expire(lane, now)
            call = lane.next_ready(now)
            if call is None:
                if lane.queue:
                    await self._pause(lane, min(c.not_before for c in lane.queue) - now)
                continue
            partial = call.priority == PARTIAL and lane.name == "update"
            wait = await self._take(lane.buckets, partial)
            if wait > 0:
                await self._pause(lane, wait)
                continue
            if call not in lane.queue or call.done.cancelled():
                continue  # withdrawn while the bucket was asked (its token is lost: rare)
            lane.queue.remove(call)
            self._metrics.queue_waited(lane.name, self._clock.now() - call.enqueued_at)
            call.in_flight = True
            lane.sending += 1
            task = asyncio.create_task(self._deliver(lane, call), name=f"slack-{call.method}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            # One call in flight per lane, so Slack's answer (a 429 above all) is heard before
            # the next call goes; a call that hangs frees the lane after a moment.
            await asyncio.wait({task}, timeout=IN_FLIGHT_PATIENCE)
        lane.task = None
        if lane.sending == 0 and self._lanes.get(lane.name) is lane:
            # Idle: forgotten, or a lane for every channel ever posted in would stay.
            del self._lanes[lane.name]

    def _expire(self, lane: _Lane, now: float) -> None:
        """Drop the calls whose caller stopped waiting (cancelled: nobody would learn what
        became of them) and those past the delivery deadline."""
        for call in [c for c in lane.queue if c.deadline <= now or c.done.cancelled()]:
            lane.queue.remove(call)
            if call.done.done():
                continue
            if call.priority == PARTIAL:
                # Not shown, not refused: the deadline is for calls that must land.
                call.done.set_result(None)
            else:
                call.done.set_exception(
                    DeliveryFailed(f"{call.method}: not delivered before the deadline")
                )

    async def _pause(self, lane: _Lane, seconds: float) -> None:
        """Wait for tokens (or a retry time), woken early by new work in the lane: a call
        that must land may go where a partial edit had to wait for its reserve."""
        lane.wake.clear()
        await sleep_unless(self._clock, max(0.0, seconds), lane.wake)

    async def _deliver(self, lane: _Lane, call: _Call) -> None:
        try:
            params = call.render()
            if params is None:
                call.done.set_result(None)
                return
            result = await self._send(call.method, params)
        except RateLimited as limited:
            log.info(
                "%s rate limited; the %s lane waits %.1fs",
                call.method,
                lane.name,
                limited.retry_after,
            )
            self._metrics.rate_limited(lane.name)
            await self._slow_down(lane.buckets[0], limited.retry_after)
            self._retry(lane, call, 0.0)
        except PassingFailure as failure:
            if call.repeatable or not failure.maybe_arrived:
                call.attempts += 1
                delay = min(MAX_BACKOFF, 2.0 ** (call.attempts - 1))
                log.warning(
                    "%s failed in passing (%s); retrying in %.0fs", call.method, failure, delay
                )
                self._retry(lane, call, delay)
            elif not call.done.done():
                call.done.set_exception(DeliveryFailed(f"{call.method}: {failure}"))
        except Exception as error:  # a refusal for good, for the caller to handle
            if not call.done.done():
                call.done.set_exception(error)
        else:
            if not call.done.done():
                call.done.set_result(result)
        finally:
            call.in_flight = False
            lane.sending -= 1
            self._kick(lane)

    def _retry(self, lane: _Lane, call: _Call, delay: float) -> None:
        if call.priority == PARTIAL:
            # A partial edit is not retried: newer text will be offered anyway.
            if not call.done.done():
                call.done.set_result(None)
            return
        call.not_before = self._clock.now() + delay
        lane.queue.append(call)

    # -- buckets (shared through the store, else this process's own) -----------------------

    async def _take(self, buckets: tuple[Bucket, ...], partial: bool) -> float:
        now = self._clock.wall()
        try:
            wait = await self._shared.take(self.team, buckets, now, partial)
        except StoreUnavailable:
            self._note_shared_down("take")
            return await self._local.take(self.team, buckets, now, partial)
        self._shared_down = False
        return wait

    async def _slow_down(self, bucket: Bucket, seconds: float) -> None:
        now = self._clock.wall()
        await self._local.pause(self.team, bucket, now, seconds)
        try:
            await self._shared.pause(self.team, bucket, now, seconds)
        except StoreUnavailable:
            self._note_shared_down("pause")

    async def _level(self, bucket: Bucket) -> Level:
        now = self._clock.wall()
        try:
            return await self._shared.level(self.team, bucket, now)
        except StoreUnavailable:
            self._note_shared_down("level")
            return await self._local.level(self.team, bucket, now)

    def _note_shared_down(self, operation: str) -> None:
        self._metrics.store_error(f"rate_{operation}")
        if not self._shared_down:
            log.warning("store unreachable: this process keeps its own Slack budgets for now")
        self._shared_down = True
