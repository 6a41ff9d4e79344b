"""When an answer's next partial edit may go: once an interval, on the read that brings text.

Slack shows an answer's text at most once an interval (SLACK_UPDATE_INTERVAL), and the text
arrives in batches, one per read of the answer's stream (bot/customgpt.py reads it every
`read_pace`). An edit sent on a timer of its own wakes the process a second time for every
read it does not coincide with, and on a machine where a wake-up costs more than the work it
wakes for, that timer was a fair part of what a lone answer cost. So a due edit rides on a read:

- text arriving within `EARLY` of the due time, or after it, is sent at once, in the wake-up
  of the read that brought it;
- otherwise the edit waits for the next text until `arrivals_every` (the streams' read pace)
  after the due time, then goes with what it has: a stream that went quiet still shows its
  last words, that much later.

The first edit that rides on a read sets the pace of those after it: each is due an interval
after the one before was offered, which is when the stream's read clock brings its next batch
(the streams read once an interval: `read_pace`).
"""

from __future__ import annotations

import asyncio

from bot.clock import Clock, sleep_unless

EARLY = 0.05  # seconds an edit may go before its interval is up, to ride on a read


class EditPace:
    def __init__(self, clock: Clock, interval: float, arrivals_every: float = 0.0) -> None:
        self._clock = clock
        self._interval = interval
        self._arrivals_every = arrivals_every
        self._due = float("-inf")

    def due(self) -> bool:
        return self._due - self._clock.now() <= EARLY

    def shown(self, offered_at: float, sent_at: float) -> None:
        """An edit offered at `offered_at` (with a read) left for Slack at `sent_at` and was
        shown. The next is due an interval after the offer, which is when the stream's read
        clock brings the next batch: the streams read once an interval, so a due time counted
        from the send would miss that read by the token take's milliseconds and wait a whole
        read more. Yet never sooner than half an interval after the send: an edit that waited
        in the scheduler's queue is not followed by another at once."""
        self._due = max(offered_at + self._interval, sent_at + self._interval / 2)

    async def wait(self, wake: asyncio.Event, closed: asyncio.Event) -> None:
        """Wait until the next edit may go (or the answer ends: `closed`). `wake` is what the
        stream sets when text arrives (and when it ends); it is cleared here."""
        until = self._due + self._arrivals_every
        while not self.due() and not closed.is_set():
            wake.clear()
            await sleep_unless(self._clock, until - self._clock.now(), wake)
            if not wake.is_set():
                return  # no text since: what was read goes now
