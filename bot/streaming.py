"""One answer streamed into a Slack thread: a placeholder, throttled edits, a final text.

Exactly one writer task edits the messages, so edits land in order and each shows at least as
much as the one before. The reader (`append`) only records text and wakes the writer. The
writer offers a partial edit to the workspace's scheduler, which renders it when the budget
lets it go, so text that arrives meanwhile is coalesced into it and an edit the budget never
allows costs nothing. When the answer outgrows one message, that message is finished at a
clean boundary and the answer continues in a new reply in the same thread.

When the workspace's edit budget cannot even give an answer its final edit promptly, the
answer is delivered whole instead (`whole=True`): no placeholder and no partial edits, an
hourglass reaction on the question meanwhile, and the complete answer posted when it is done.
Posts are budgeted per channel, edits per workspace, so a burst over many channels then lands
many more answers a minute than edits alone could carry.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot import messages, slack_format
from bot.clock import Clock
from bot.edit_pace import EditPace
from bot.slack_calls import (
    Content,
    MessageGone,
    MessageTooLong,
    PostedThenCancelled,
    SlackCalls,
    SlackUnavailable,
)
from bot.slack_format import Source
from bot.slack_scheduler import EditTicket, OfferWait
from bot.tasks import set_or_done

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 3000
MIN_MESSAGE_LIMIT = 500
HOURGLASS_AFTER = 2.0  # seconds a placeholder may wait before the question shows it is queued


@dataclass
class _Part:
    """One Slack message of the answer."""

    markdown: str = ""
    ts: str | None = None
    shown: str | None = None  # the markdown the message displays now
    done: bool = False  # its final text has landed
    # Its partial edits, rendering each finished paragraph once.
    typing: slack_format.TypingRender = field(default_factory=slack_format.TypingRender)


class _Message(Protocol):
    ts: str | None
    markdown: str


def progress_of(messages: Sequence[_Message]) -> tuple[str | None, str]:
    """The last message already posted (None: none yet) and the answer's text from it on:
    what another process needs to finish the reply."""
    posted = [i for i, message in enumerate(messages) if message.ts is not None]
    first = posted[-1] if posted else 0
    return messages[first].ts, "".join(message.markdown for message in messages[first:])


@dataclass(frozen=True)
class Ending:
    """How the answer ends: what the last message carries besides the text."""

    sources: Sequence[Source] = ()
    feedback_value: str | None = None
    notice: str | None = None  # mrkdwn, shown under whatever text arrived
    failure: str | None = None  # why the answer is not complete (a metrics reason), if not


@dataclass
class StreamResult:
    message_ts: list[str] = field(default_factory=list)
    edits: int = 0
    complete: bool = True  # False when Slack refused part of the answer for good
    first_shown_at: float | None = None  # clock time Slack first showed answer text


class AnswerStream:
    def __init__(
        self,
        calls: SlackCalls,
        channel: str,
        thread_ts: str | None,
        *,
        interval: float,
        clock: Clock,
        arrivals_every: float = 0.0,
        limit: int = MESSAGE_LIMIT,
        question_ts: str | None = None,
        existing_ts: str | None = None,
        overload_wait: float | None = None,
    ) -> None:
        """`arrivals_every`: how often text arrives while the answer streams (its stream's
        read pace), so that edits ride on it (bot/edit_pace.py). `existing_ts`: a reply
        already posted for this question (it waited in line), which the answer takes over
        instead of posting a placeholder. `overload_wait`: deliver the
        answer whole when its final edit would wait longer than that for the edit budget."""
        self._calls = calls
        self._channel = channel
        self._thread_ts = thread_ts
        self._pace = EditPace(clock, interval, arrivals_every)
        self._clock = clock
        self._limit = limit
        self._question_ts = question_ts
        self.whole = False  # deliver the answer whole (decided by `open`)
        self._overload_wait = overload_wait
        self.existing_ts = existing_ts
        self._parts = [_Part()]
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._placed = asyncio.Event()
        self._ending: Ending | None = None
        self._writer: asyncio.Task[None] | None = None
        self._result = StreamResult()
        self._stale_since: float | None = None
        self._expects_final = False
        self._id = uuid.uuid4().hex  # names this answer's expected final edit
        self._hourglass: _Hourglass | None = None
        self._offer = OfferWait(self._closed)  # the partial edit the writer waits on
        self._sent_at = float("-inf")  # when the last partial edit left for Slack

    @property
    def text(self) -> str:
        """All the markdown received so far."""
        return "".join(p.markdown for p in self._parts)

    async def open(self, placeholder: str) -> str | None:
        """Post the placeholder reply (or make the existing reply show it) and start the
        writer. Returns the reply's ts; None when the answer is delivered whole (nothing is
        posted before it is complete)."""
        existing_ts = self.existing_ts
        # The final edit is counted first, so answers deciding at the same moment (on any
        # replica) each see the ones decided before them.
        scheduler = self._calls.scheduler
        self._expects_final = True
        if self._question_ts is not None:
            self._hourglass = _Hourglass(self._calls, self._clock, self._channel, self._question_ts)
        try:
            delay = await scheduler.expect_final(self._id)
            if existing_ts is None and self._overload_wait is not None:
                if delay > self._overload_wait:
                    log.info(
                        "edit budget overloaded: question %s answered whole", self._question_ts
                    )
                    self.whole = True
                    await self._final_settled()
            if existing_ts is not None:
                ts: str | None = existing_ts
                if not self.whole:
                    await self._calls.update(self._channel, existing_ts, Content(placeholder))
            elif self.whole:
                ts = None
                self._show_waiting(0.0)
            else:
                self._show_waiting(HOURGLASS_AFTER)
                ts = await self._calls.post_through_shutdown(
                    self._channel, self._thread_ts, Content(placeholder)
                )
                self._reply_appeared()
        except PostedThenCancelled as landed:
            self._take_over(landed.ts)  # shutdown: `close` gives it the restart notice
            raise
        except BaseException:
            await self._final_settled()
            if self._hourglass is not None:
                await self._hourglass.clear()
            raise
        self._take_over(ts)
        return ts

    def _take_over(self, ts: str | None) -> None:
        if ts is not None:
            self._parts[0].ts = ts
            self._result.message_ts.append(ts)
        self._writer = asyncio.create_task(
            self._write(), name=f"stream-{self._channel}-{ts or 'whole'}"
        )

    def append(self, chunk: str) -> None:
        """Record text; the writer decides when it is shown (no rendering here)."""
        if self._ending is not None or not chunk:
            return
        last = self._parts[-1]
        if self._stale_since is None:
            self._stale_since = self._clock.now()
        last.markdown += chunk
        self._wake.set()

    def progress(self) -> tuple[str | None, str]:
        """The answer's last posted message and the text from it on (what another process
        needs to finish the reply); read by the journal when it writes, not per chunk."""
        return progress_of(self._parts)

    def finish(self, ending: Ending) -> None:
        """The reader is done: the writer lands the rest (see `placed` and `close`)."""
        if self._ending is None:
            self._ending = ending
        self._closed.set()
        self._wake.set()
        self._offer.end()

    async def placed(self) -> None:
        """Wait until every message of the answer exists in Slack (only final edits may be
        outstanding): the next answer in the thread may then be posted after it."""
        if self._writer is None:
            return
        await set_or_done(self._placed, self._writer)

    async def close(self, ending: Ending) -> StreamResult:
        """Finish: the last message gets the complete text and `ending`. Waits for Slack.

        A stream never opened (shutdown came first) posts its ending as a reply of its own,
        so the question is never left without an answer or a notice."""
        self.finish(ending)
        if self._writer is None:
            self.whole = True
            self._take_over(self.existing_ts)
        assert self._writer is not None
        await self._writer
        return self._result

    def _reflow(self) -> None:
        """Split the last part while it is too long for one message, never cutting off text
        the message already shows (its edits only ever grow)."""
        while True:
            last = self._parts[-1]
            shown = last.shown or ""
            min_head = len(shown) if last.markdown.startswith(shown) else 0
            head, tail = slack_format.split_for_slack(last.markdown, self._limit, min_head)
            if not tail or not head:
                return
            last.markdown = head
            self._parts.append(_Part(markdown=tail))

    async def _write(self) -> None:
        try:
            await self._write_all()
        except (SlackUnavailable, MessageTooLong) as error:
            self._result.complete = False
            log.error(
                "answer delivery to Slack stopped in %s (question %s): %s",
                self._channel,
                self._question_ts,
                error or type(error).__name__,
            )
            await self._closed.wait()  # the reader still finishes; then say what went missing
            await self._salvage()
        finally:
            await self._final_settled()
            self._placed.set()
            if self._hourglass is not None:
                await self._hourglass.clear()

    async def _final_settled(self) -> None:
        if self._expects_final:
            self._expects_final = False
            await self._calls.scheduler.settle_final(self._id)

    async def _salvage(self) -> None:
        """Slack refused a part of the answer for good: the last message that did reach Slack
        ends the answer, saying the rest is missing (best effort: Slack may still refuse)."""
        posted = [p for p in self._parts if p.ts is not None]
        if not posted:
            return
        self._parts = posted
        self._ending = replace(self._ending or Ending(), notice=messages.SLACK_REFUSED_REST)
        last = posted[-1]
        last.done = False
        try:
            await self._calls.update(self._channel, str(last.ts), self._final_content(last))
        except (SlackUnavailable, MessageTooLong, MessageGone) as error:
            log.error("the answer's ending could not be shown either: %s", error)

    async def _write_all(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.whole:
                if self._closed.is_set():
                    break
                continue
            await self._finish_sealed()
            if self._closed.is_set():
                break
            if not self._pace.due():
                # The end of the answer cuts the wait short: the final text never waits.
                await self._pace.wait(self._wake, self._closed)
                if self._closed.is_set():
                    break
                await self._finish_sealed()
            current = self._parts[-1]
            if current.ts is None or current.markdown == current.shown or not current.markdown:
                continue
            offered_at = self._clock.now()
            if await self._edit(current):
                self._result.edits += 1
                self._pace.shown(offered_at, self._sent_at)
            if self._unshown():
                self._wake.set()
        await self._finish_last()

    def _unshown(self) -> bool:
        """Whether the writer has more to do: text not shown yet, or a part to finish."""
        last = self._parts[-1]
        return last.markdown != last.shown or any(not p.done for p in self._parts[:-1])

    async def _edit(self, part: _Part) -> bool:
        """Offer the scheduler a partial edit of `part` and wait for it (or for the end of
        the answer, which withdraws it). True when Slack showed it."""
        before = part.shown
        stale_since = self._stale_since if self._stale_since is not None else self._clock.now()
        ticket = self._calls.offer_edit(
            self._channel, str(part.ts), lambda: self._render_partial(part), stale_since
        )
        try:
            sent = await self._settle(ticket)
        except MessageTooLong:
            part.shown = before
            self._shrink_from(part)
            return False
        except MessageGone:
            await self._repost(part, self._typing(part.markdown))
            return True
        if not sent:
            part.shown = before
            return False
        self._shown()
        self._stale_since = None if part.markdown == part.shown else self._clock.now()
        return True

    def _render_partial(self, part: _Part) -> Content | None:
        """Called by the scheduler right before the edit goes out: the newest text."""
        self._reflow()
        if part.ts is None or part.markdown == part.shown or not part.markdown:
            return None
        # Counted as shown while in flight: text arriving meanwhile may split this part,
        # and the split must keep what Slack is about to display.
        part.shown = part.markdown
        self._sent_at = self._clock.now()  # the scheduler sends it now (see `_write_all`)
        return Content(*part.typing.blocks(part.markdown))

    async def _settle(self, ticket: EditTicket) -> bool:
        """The edit's fate, or its withdrawal when the answer ends first; a refusal met by
        an edit the end waited for is left to the final text, which meets (and reports)
        the same one."""
        settled = await self._offer.fate(ticket)
        if settled.cancelled():
            return False
        if self._closed.is_set() and settled.exception() is not None:
            return False
        return settled.result() is not None

    async def _repost(self, part: _Part, content: Content) -> None:
        """Someone deleted the message: the answer carries on in a fresh reply."""
        log.info("a reply in %s was deleted; posting the answer again", self._channel)
        part.ts = await self._calls.post(self._channel, self._thread_ts, content)
        self._result.message_ts.append(part.ts)

    def _typing(self, markdown: str) -> Content:
        text, blocks = slack_format.answer_blocks(markdown, typing=True)
        return Content(text, blocks)

    def _final_content(self, part: _Part) -> Content:
        if part is not self._parts[-1]:
            return Content(*slack_format.answer_blocks(part.markdown))
        ending = self._ending or Ending()
        text, blocks = slack_format.answer_blocks(
            part.markdown, sources=ending.sources, feedback_value=ending.feedback_value
        )
        if not ending.notice:
            return Content(text, blocks)
        notice = {"type": "context", "elements": [{"type": "mrkdwn", "text": ending.notice}]}
        if not part.markdown.strip():
            return Content(ending.notice, [notice])
        return Content(f"{text}\n\n{ending.notice}", [*blocks, notice])

    async def _finish_sealed(self) -> None:
        """Give every finished part its final text and make sure the part after it exists.

        A part's successor is posted only after the part itself has landed, so an unfinished
        part is never followed by a posted one (which keeps `_shrink_from` simple)."""
        self._reflow()
        while True:
            pending = next((p for p in self._parts[:-1] if not p.done), None)
            if pending is None:
                return
            await self._land(pending)
            index = self._parts.index(pending)
            following = self._parts[index + 1]
            if following.ts is None and following.markdown and not self.whole:
                await self._continue_in(following)

    async def _continue_in(self, part: _Part) -> None:
        """Post the reply that carries the answer on, showing its text so far; Slack
        refusing it as too long splits it further, as it does a final text."""
        while True:
            # Text arriving while the post is in flight counts as shown: a split made
            # meanwhile must keep what the new message is about to display.
            part.shown = part.markdown
            try:
                part.ts = await self._calls.post(
                    self._channel, self._thread_ts, self._typing(part.shown)
                )
            except MessageTooLong as error:
                part.shown = None  # Slack shows none of it
                self._split_further(part, error)
                continue
            self._result.message_ts.append(part.ts)
            return

    async def _finish_last(self) -> None:
        while True:
            await self._finish_sealed()
            last = self._parts[-1]
            if all(p.ts is not None for p in self._parts):
                self._placed.set()
            if last.done:
                return
            await self._land(last)

    async def _land(self, part: _Part) -> None:
        """Put a part's final text in place (posting it, when the answer is delivered whole);
        a too-long refusal splits it further, a deleted message is posted again."""
        while True:
            content = self._final_content(part)
            try:
                if part.ts is None:
                    part.ts = await self._calls.post(self._channel, self._thread_ts, content)
                    self._result.message_ts.append(part.ts)
                    self._reply_appeared()
                else:
                    await self._calls.update(self._channel, part.ts, content)
            except MessageTooLong as error:
                self._split_further(part, error)
                continue
            except MessageGone:
                await self._repost(part, content)
            part.done = True
            part.shown = part.markdown
            if part.markdown.strip():
                self._shown()
            if part is self._parts[-1]:
                await self._final_settled()
            self._result.edits += 1
            return

    def _shown(self) -> None:
        if self._result.first_shown_at is None:
            self._result.first_shown_at = self._clock.now()

    def _show_waiting(self, after: float) -> None:
        if self._hourglass is not None:
            self._hourglass.show(after)

    def _reply_appeared(self) -> None:
        if self._hourglass is not None:
            self._hourglass.start_clearing()

    def _split_further(self, part: _Part, error: MessageTooLong) -> None:
        """A message that must land was refused as too long: split it smaller, down to
        MIN_MESSAGE_LIMIT, below which Slack is taken to refuse the answer for good."""
        if self._limit <= MIN_MESSAGE_LIMIT:
            raise SlackUnavailable("Slack refuses even short messages as too long") from error
        self._shrink_from(part)

    def _shrink_from(self, part: _Part) -> None:
        """Slack's real limit was lower than ours: merge this part with the (unposted) ones
        after it and split again at a smaller size."""
        smaller = max(MIN_MESSAGE_LIMIT, int(self._limit * 0.75))
        accepted = len(slack_format.to_mrkdwn(part.shown or ""))
        if accepted < self._limit:
            # Slack took the text it shows now: never split below it, or the message shrinks.
            smaller = max(smaller, accepted)
        self._limit = smaller
        log.info("message too long for Slack; splitting at %d characters", self._limit)
        index = self._parts.index(part)
        part.markdown = "".join(p.markdown for p in self._parts[index:])
        del self._parts[index + 1 :]
        self._reflow()


class _Hourglass:
    """The :hourglass_flowing_sand: reaction on a question whose reply is not there yet.

    A courtesy from its own small budget: offered after a delay, withdrawn if the reply
    appears first, removed once the reply is there."""

    def __init__(self, calls: SlackCalls, clock: Clock, channel: str, question_ts: str) -> None:
        self._calls = calls
        self._clock = clock
        self._channel = channel
        self._question_ts = question_ts
        self._showing: asyncio.Task[None] | None = None
        self._ticket: EditTicket | None = None
        self._clearing: asyncio.Task[None] | None = None

    def show(self, after: float) -> None:
        self._showing = asyncio.create_task(self._show(after), name="hourglass")

    async def _show(self, after: float) -> None:
        if after > 0:
            await self._clock.sleep(after)
        self._ticket = self._calls.offer_reaction(self._channel, self._question_ts)

    def start_clearing(self) -> None:
        if self._clearing is None:
            self._clearing = asyncio.create_task(self._clear(), name="hourglass-clear")

    async def _clear(self) -> None:
        if self._showing is not None:
            self._showing.cancel()
            await asyncio.gather(self._showing, return_exceptions=True)
            self._showing = None  # its CancelledError would keep the sleep's frame alive
        if self._ticket is not None and await self._ticket.withdraw():
            await self._calls.remove_reaction(self._channel, self._question_ts)

    async def clear(self) -> None:
        """Make sure the reaction is gone (or never comes); waits for its removal."""
        self.start_clearing()
        assert self._clearing is not None
        await asyncio.shield(self._clearing)
