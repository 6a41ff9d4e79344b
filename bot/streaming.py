"""One answer streamed into a Slack thread: a placeholder, throttled edits, a final text.

Exactly one writer task edits the messages, so edits land in order and each shows at least as
much as the one before. The reader (`append`) only changes state and wakes the writer; text
that arrives while an edit is in flight or while the throttle holds is coalesced into the next
edit. When the answer outgrows one message, that message is finished at a clean boundary and
the answer continues in a new reply in the same thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bot import messages, slack_format
from bot.clock import Clock
from bot.slack_calls import Content, MessageTooLong, SlackCalls, SlackUnavailable
from bot.slack_format import Source

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 3000
MIN_MESSAGE_LIMIT = 500
DENIED_BACKOFF = 1.0  # seconds before retrying an edit the budget refused


@dataclass
class _Part:
    """One Slack message of the answer."""

    markdown: str = ""
    ts: str | None = None
    shown: str | None = None  # the markdown the message displays now
    done: bool = False  # its final text has landed


@dataclass(frozen=True)
class Ending:
    """How the answer ends: what the last message carries besides the text."""

    sources: Sequence[Source] = ()
    feedback_value: str | None = None
    notice: str | None = None  # mrkdwn, shown under whatever text arrived


@dataclass
class StreamResult:
    message_ts: list[str] = field(default_factory=list)
    edits: int = 0


class AnswerStream:
    def __init__(
        self,
        calls: SlackCalls,
        channel: str,
        thread_ts: str | None,
        *,
        interval: float,
        clock: Clock,
        limit: int = MESSAGE_LIMIT,
    ) -> None:
        self._calls = calls
        self._channel = channel
        self._thread_ts = thread_ts
        self._interval = interval
        self._clock = clock
        self._limit = limit
        self._parts = [_Part()]
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._ending: Ending | None = None
        self._writer: asyncio.Task[None] | None = None
        self._result = StreamResult()

    @property
    def text(self) -> str:
        """All the markdown received so far."""
        return "".join(p.markdown for p in self._parts)

    async def open(self, placeholder: str, existing_ts: str | None = None) -> str:
        """Post the placeholder reply (or take over `existing_ts`, a reply already posted,
        showing the placeholder) and start the writer. Returns the reply's ts."""
        if existing_ts is None:
            ts = await self._calls.post(self._channel, self._thread_ts, Content(placeholder))
        else:
            ts = existing_ts
            await self._calls.update(self._channel, ts, Content(placeholder))
        self._parts[0].ts = ts
        self._result.message_ts.append(ts)
        self._writer = asyncio.create_task(self._write(), name=f"stream-{self._channel}-{ts}")
        return ts

    def append(self, chunk: str) -> None:
        if self._ending is not None or not chunk:
            return
        self._parts[-1].markdown += chunk
        self._reflow()
        self._wake.set()

    async def close(self, ending: Ending) -> StreamResult:
        """Finish: the last message gets the complete text and `ending`. Waits for Slack."""
        self._ending = ending
        self._closed.set()
        self._wake.set()
        if self._writer is not None:
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
            log.error("answer delivery to Slack stopped: %s", error or type(error).__name__)
            await self._closed.wait()  # the reader still finishes; then say what went missing
            await self._salvage()

    async def _salvage(self) -> None:
        """Slack refused a part of the answer for good: the last message that did reach Slack
        ends the answer, saying the rest is missing (best effort: Slack may still refuse)."""
        posted = [p for p in self._parts if p.ts is not None]
        self._parts = posted
        self._ending = replace(self._ending or Ending(), notice=messages.SLACK_REFUSED_REST)
        last = posted[-1]
        last.done = False
        try:
            await self._calls.update(self._channel, str(last.ts), self._final_content(last))
        except (SlackUnavailable, MessageTooLong) as error:
            log.error("the answer's ending could not be shown either: %s", error)

    async def _write_all(self) -> None:
        next_edit_at = float("-inf")
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._finish_sealed()
            if self._closed.is_set():
                break
            remaining = next_edit_at - self._clock.now()
            if remaining > 0:
                await self._throttle(remaining)
                if self._closed.is_set():
                    break
                await self._finish_sealed()
            current = self._parts[-1]
            if current.ts is None or current.markdown == current.shown or not current.markdown:
                continue
            snapshot, before = current.markdown, current.shown
            # Counted as shown while in flight: text arriving meanwhile may split this part,
            # and the split must keep what Slack is about to display.
            current.shown = snapshot
            try:
                shown = await self._calls.update_if_allowed(
                    self._channel, current.ts, self._typing(snapshot)
                )
            except MessageTooLong:
                current.shown = before
                self._shrink_from(current)
                self._wake.set()
                continue
            if shown:
                self._result.edits += 1
                next_edit_at = self._clock.now() + self._interval
            else:
                # Budget spent or Slack pushing back: the text waits for a later edit.
                current.shown = before
                next_edit_at = self._clock.now() + max(self._interval, DENIED_BACKOFF)
                self._wake.set()
        await self._finish_last()

    async def _throttle(self, seconds: float) -> None:
        """Wait out the edit interval on the injected clock; the end of the answer cuts it
        short, so the final text never waits for the throttle."""
        pause = asyncio.ensure_future(self._clock.sleep(seconds))
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({pause, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (pause, closing):
                waiter.cancel()
            await asyncio.gather(pause, closing, return_exceptions=True)

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
        while True:
            pending = next((p for p in self._parts[:-1] if not p.done), None)
            if pending is None:
                return
            await self._land(pending)
            index = self._parts.index(pending)
            following = self._parts[index + 1]
            if following.ts is None and following.markdown:
                snapshot = following.markdown  # text may arrive while the post is in flight
                following.ts = await self._calls.post(
                    self._channel, self._thread_ts, self._typing(snapshot)
                )
                following.shown = snapshot
                self._result.message_ts.append(following.ts)

    async def _finish_last(self) -> None:
        while True:
            await self._finish_sealed()
            last = self._parts[-1]
            if last.done:
                return
            await self._land(last)

    async def _land(self, part: _Part) -> None:
        """Put a part's final text in place; a too-long refusal splits it further."""
        assert part.ts is not None
        while True:
            try:
                await self._calls.update(self._channel, part.ts, self._final_content(part))
            except MessageTooLong as error:
                if self._limit <= MIN_MESSAGE_LIMIT:
                    raise SlackUnavailable(
                        "Slack refuses even short messages as too long"
                    ) from error
                self._shrink_from(part)
                continue
            part.done = True
            part.shown = part.markdown
            self._result.edits += 1
            return

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
