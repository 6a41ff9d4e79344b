"""One answer streamed by Slack's native chat streams, or by the update transport it wraps.

Slack's AI-app methods stream a reply in a thread: `chat.startStream` posts it (with the
search step below), `chat.appendStream` adds only the new text, `chat.stopStream` ends it
with the blocks shown under it (sources, feedback). Start and stop are Tier 2 (about 20 a
minute), append Tier 4, so which transport an answer uses is decided when it starts (see
`Transports`):

- natively where the asker is the one who watches (DM and assistant threads), by the update
  transport (bot/streaming.py) in channel threads, where only the asker would see a native
  stream grow, and in top-level DMs, since native streams are thread replies;
- natively only when the workspace's start and stop buckets have room for it, so a burst
  never waits on the scarce Tier 2 budget;
- never where Slack refused the methods lately (remembered per workspace for an hour).

Appends are Tier 4 for the whole workspace (100 a minute), while each stream would append
every `SLACK_UPDATE_INTERVAL`: a few streams at once outrun that budget. So appends while the
answer streams are offered like partial edits (the text new when the budget lets one go, else
nothing), and the last words go with chat.stopStream, so an answer's end never queues behind
other answers' appends.

While CustomGPT searches, the stream already shows a task step, "Searching <project>…", sent
with the start; the call that brings the first words marks it complete, and a stop with no
words marks it failed with a short reason (the notice under it says the rest). The step
costs no call of its own, and the status line is spent only where nothing is posted yet.

Whatever happens mid-answer, no text is lost: a stream Slack refuses, expires (about five
minutes after it starts) or fails is handed to the update transport, which finishes that
message with `chat.update` from its full text and carries on. A user who presses Stop ends
the answer at once (`user_stopped`): the text shown stays, with a short note.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bot import messages, slack_format
from bot.clock import Clock
from bot.config import Settings
from bot.edit_pace import EditPace
from bot.slack_calls import MessageGone, MessageTooLong, SlackCalls, SlackUnavailable
from bot.slack_scheduler import EditTicket, OfferWait
from bot.streaming import MESSAGE_LIMIT, AnswerStream, Ending, StreamResult, progress_of
from bot.tasks import set_or_done

log = logging.getLogger(__name__)

#: Slack's answers meaning the native methods are not for this app, token or channel.
REFUSALS = frozenset(
    {
        "unknown_method",
        "not_allowed_token_type",
        "missing_scope",
        "channel_type_not_supported",
        "invalid_arguments",
    }
)
EXPIRED = "message_not_in_streaming_state"
STOPPED = "stopped_by_user"
REFUSAL_MEMORY = 3600.0  # seconds a workspace that refused native streams is not asked again
APPEND_LIMIT = 12_000  # Slack's limit for `markdown_text` in one call


SEARCH_TASK = "search"  # the id of the one task step a native answer shows
TASK_DISPLAY = "timeline"  # the step as a card above the answer's text, not a plan block
NAME_SHOWN = 80  # characters of a project's name in the status line and the search step


def _where(project_name: str | None) -> str:
    """The project's name as the status line and the search step show it (Slack gives them
    little room; a project's name is not bounded by us)."""
    where = project_name or "the knowledge base"
    return where if len(where) <= NAME_SHOWN else where[: NAME_SHOWN - 1] + "…"


def loading_messages(project_name: str | None) -> list[str]:
    """The lines Slack cycles through under "is searching…" (at most 10)."""
    return [
        search_step(project_name),
        "Reading the most relevant pages…",
        "Writing the answer…",
    ]


def status_text(project_name: str | None) -> str:
    return f"is searching {_where(project_name)}…" if project_name else "is searching…"


def search_step(project_name: str | None) -> str:
    """The title of the task step a native stream opens with while CustomGPT searches."""
    return f"Searching {_where(project_name)}…"


@dataclass(frozen=True)
class Placement:
    """Where an answer goes and who asked: what the transport choice depends on."""

    team: str
    channel: str
    user: str
    reply_thread: str | None  # None: a top-level DM answer
    is_dm: bool


class Transports:
    """Chooses each answer's transport (`SLACK_STREAMING`) and remembers which workspaces
    refused native streams."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._refused_until: dict[str, float] = {}

    def native_wanted(self, place: Placement) -> bool:
        """Whether the answer may stream natively, before any budget is asked."""
        mode = self._settings.slack_streaming
        if mode == "update" or place.reply_thread is None or self.refused(place.team):
            return False
        return mode == "native" or place.is_dm or self._settings.slack_native_in_channels

    def refused(self, team: str) -> bool:
        return self._refused_until.get(team, float("-inf")) > self._clock.now()

    def remember_refusal(self, team: str, code: str | None) -> None:
        log.warning(
            "Slack refused native streaming in workspace %s (%s): answers use chat.update "
            "there for the next hour",
            team,
            code,
        )
        self._refused_until[team] = self._clock.now() + REFUSAL_MEMORY

    def stream(
        self,
        fallback: AnswerStream,
        calls: SlackCalls,
        place: Placement,
        *,
        arrivals_every: float = 0.0,
    ) -> NativeStream:
        """The answer's stream: native when chosen at `open`, else `fallback` (not opened
        yet), which also takes over whatever a native stream cannot finish.
        `arrivals_every`: as for AnswerStream."""
        return NativeStream(
            fallback,
            calls,
            place,
            transports=self,
            native=self.native_wanted(place),
            must_have_room=self._settings.slack_streaming == "auto",
            interval=self._settings.slack_update_interval,
            clock=self._clock,
            arrivals_every=arrivals_every,
        )


class _Failed(Exception):
    """A native call failed; `code` is Slack's error, `gone` when the message was deleted."""

    def __init__(self, code: str | None, *, gone: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.gone = gone


@dataclass
class _Piece:
    """One natively streamed message of the answer."""

    markdown: str = ""  # the answer's text in this message
    ts: str | None = None
    sent: str = ""  # the (neutralised) text Slack holds
    covered: int = 0  # how much of `markdown` `sent` covers
    stopped: bool = False  # its stream has ended (a later piece continues the answer)
    shown_at: float = float("-inf")  # when Slack last showed something new of it


class NativeStream:
    """The answer's stream, as bot/answer.py uses it (`open`, `append`, `placed`, `close`,
    `text`, `existing_ts`, like AnswerStream), plus `user_stopped`."""

    def __init__(
        self,
        fallback: AnswerStream,
        calls: SlackCalls,
        place: Placement,
        *,
        transports: Transports,
        native: bool,
        must_have_room: bool,
        interval: float,
        clock: Clock,
        arrivals_every: float = 0.0,
        limit: int = MESSAGE_LIMIT,
    ) -> None:
        self._fallback = fallback
        self._calls = calls
        self._place = place
        self._transports = transports
        self._native = native
        self._must_have_room = must_have_room
        self._pace = EditPace(clock, interval, arrivals_every)  # see bot/edit_pace.py
        self._sent_at: float | None = None  # when the last partial append left for Slack
        self._clock = clock
        self._limit = limit
        self._delegate: AnswerStream | None = None  # carries the answer (from some piece on)
        self._pieces = [_Piece()]
        self._handed_over = 0  # pieces before this one stay native; the rest the delegate's
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._offer = OfferWait(self._closed)  # the append the writer waits on
        self._placed = asyncio.Event()
        self._ending: Ending | None = None
        self._writer: asyncio.Task[StreamResult] | None = None
        self._result = StreamResult()
        self._status: EditTicket | None = None
        self._status_wanted: tuple[str, list[str]] | None = None
        self._search: str | None = None  # the search step's title, when one is shown
        self._search_open = False  # the step shows "in progress": the first words complete it
        self._placeholder = messages.THINKING
        self._start_counted = False
        self._stop_counted = False
        #: Set when the user pressed Stop on the stream: stop reading the answer.
        self.user_stopped = asyncio.Event()

    # -- what answer.py uses ---------------------------------------------------------------

    @property
    def existing_ts(self) -> str | None:
        return self._fallback.existing_ts

    @existing_ts.setter
    def existing_ts(self, ts: str | None) -> None:
        self._fallback.existing_ts = ts

    @property
    def text(self) -> str:
        native = "".join(p.markdown for p in self._pieces[: self._handed_over])
        if self._delegate is not None:
            return native + self._delegate.text
        return "".join(p.markdown for p in self._pieces)

    @property
    def streaming(self) -> bool:
        """Whether the answer's last posted message is a native stream still open, which
        chat.update cannot finish before chat.stopStream (the journal keeps this for a
        process that finishes the answer after this one died)."""
        if self._delegate is not None:
            return False
        posted = [p for p in self._pieces if p.ts is not None]
        return bool(posted) and not posted[-1].stopped

    def show_searching(self, project_name: str | None) -> None:
        """What people see while CustomGPT searches `project_name`.

        A native stream opens at once with a task step ("Searching <project>…") in progress;
        the call carrying the first words marks it complete, and the stop marks it errored,
        with a short reason, when no words came. Slack's status line (with a few loading
        messages) shows where nothing is posted meanwhile: while an answer is delivered
        whole, and while a native stream's start waits for its budget; the answer's first
        message clears it. Where the update transport posts a placeholder at once, the
        placeholder says it all."""
        self._status_wanted = (status_text(project_name), loading_messages(project_name))
        self._search = search_step(project_name)

    def _offer_status(self, *, while_searching: bool = False) -> None:
        """Offer the status line; `while_searching`: only until the first words arrive (it
        says the bot is searching, which is over then)."""
        if self._status_wanted is None or self._place.reply_thread is None:
            return
        status, loading = self._status_wanted
        self._status = self._calls.offer_status(
            self._place.channel,
            self._place.reply_thread,
            status,
            loading,
            wanted=(lambda: not self.text) if while_searching else (lambda: True),
        )

    async def open(self, placeholder: str) -> str | None:
        """Decide the transport and start it. Native: the stream starts at once with the
        search step (see `show_searching`; without one, with the first words); returns
        None."""
        scheduler = self._calls.scheduler
        native = self._native and self.existing_ts is None
        room = native and await scheduler.stream_room()
        if native and self._must_have_room:
            native = room
        if not native:
            return await self._open_fallback(placeholder)
        self._placeholder = placeholder
        scheduler.starts_expected += 1
        scheduler.stops_expected += 1
        self._start_counted = self._stop_counted = True
        if not room:
            # The start waits for its budget: the status line says the bot is searching.
            self._offer_status(while_searching=True)
        self._writer = asyncio.create_task(
            self._write(), name=f"native-{self._place.channel}-{self._place.reply_thread}"
        )
        return None

    def append(self, chunk: str) -> None:
        if self.user_stopped.is_set():
            return  # text the user asked not to see
        if self._delegate is not None:
            self._delegate.append(chunk)
            return
        if self._ending is not None or not chunk:
            return
        self._pieces[-1].markdown += chunk
        self._wake.set()

    def finish(self, ending: Ending) -> None:
        if self._ending is None:
            self._ending = ending
        self._closed.set()
        self._wake.set()
        self._offer.end()
        if self._delegate is not None and self._writer is None:
            self._delegate.finish(ending)

    async def placed(self) -> None:
        """Wait until every message of the answer exists (only its end may be to come)."""
        if self._writer is None:
            if self._delegate is not None:
                await self._delegate.placed()
            return
        await set_or_done(self._placed, self._writer)

    async def close(self, ending: Ending) -> StreamResult:
        """Finish: the complete text and `ending` land. Waits for Slack."""
        self.finish(ending)
        if self._writer is not None:
            return await self._writer
        if self._delegate is None:  # never opened (shutdown came first)
            self._adopt_fallback()
        assert self._delegate is not None
        try:
            return await self._delegate.close(ending)
        finally:
            await self._drop_status()

    async def unless_stopped(self, answer: Awaitable[Ending]) -> Ending:
        """Run `answer` (reading CustomGPT's answer into this stream) unless the user presses
        Stop first; then it is cancelled at once and the answer ends with a note."""
        reading = asyncio.ensure_future(answer)
        stopped = asyncio.ensure_future(self.user_stopped.wait())
        try:
            await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            raise
        finally:
            stopped.cancel()
        if reading.done():
            return reading.result()
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        log.info("the user stopped an answer in %s", self._place.channel)
        return Ending(notice=messages.STOPPED_BY_USER)

    # -- the update transport --------------------------------------------------------------

    async def _open_fallback(self, placeholder: str) -> str | None:
        ts = await self._adopt_fallback().open(placeholder)
        if ts is None:
            self._offer_status()  # delivered whole: the status is all people see meanwhile
        return ts

    def _adopt_fallback(self) -> AnswerStream:
        delegate = self._delegate = self._fallback
        return delegate

    async def _drop_status(self) -> bool:
        """Withdraw the status offer; True when it was shown (a reply will clear it)."""
        ticket, self._status = self._status, None
        return ticket is not None and await ticket.withdraw()

    # -- the native writer -----------------------------------------------------------------

    async def _write(self) -> StreamResult:
        try:
            try:
                await self._open_search()
                await self._stream_all()
            except _Failed as failure:
                return await self._hand_over(failure)
            return self._result
        finally:
            self._settle_counts()
            self._placed.set()
            await self._drop_status()

    async def _open_search(self) -> None:
        """Start the stream at once with the search step in progress, when one is wanted:
        people see the bot at work while CustomGPT searches, and the start that had to go out
        anyway carries it."""
        if self._search is None:
            return
        step = [self._search_chunk("in_progress")]
        await self._start(self._pieces[0], step, task_display_mode=TASK_DISPLAY)
        self._search_open = True

    async def _start(
        self, piece: _Piece, chunks: list[dict[str, Any]], task_display_mode: str | None = None
    ) -> None:
        """Start the piece's stream with `chunks` (its first words, or the search step)."""
        with _as_failure():
            piece.ts = await self._calls.start_stream(
                self._place.channel,
                str(self._place.reply_thread),
                chunks,
                recipient_team=self._place.team,
                recipient_user=self._place.user,
                task_display_mode=task_display_mode,
            )
        await self._drop_status()  # shown meanwhile, the stream's message clears it
        self._started()
        piece.shown_at = self._clock.now()
        self._result.message_ts.append(piece.ts)
        self._result.edits += 1

    def _carrying(self, text: str) -> list[dict[str, Any]]:
        """The chunks of a call that adds `text` to a stream: the first words also mark the
        search step complete (in the same call, never one of its own)."""
        chunks: list[dict[str, Any]] = []
        if self._search_open and text:
            self._search_open = False
            chunks.append(self._search_chunk("complete"))
        if text:
            chunks.append({"type": "markdown_text", "text": text})
        return chunks

    def _search_chunk(self, status: str, reason: str | None = None) -> dict[str, Any]:
        chunk = {"type": "task_update", "id": SEARCH_TASK, "title": self._search, "status": status}
        if reason is not None:
            chunk["output"] = reason
        return chunk

    def _shown(self, piece: _Piece, text: str) -> None:
        """Slack took `text` for the piece: it is what people see now."""
        if not text:
            return
        piece.shown_at = self._clock.now()
        if self._result.first_shown_at is None:
            self._result.first_shown_at = piece.shown_at

    async def _stream_all(self) -> None:
        # The start counts as a call of the stream's pace: opened for the search step, the
        # first words wait out the interval from it, so the step costs no call of its own.
        started = self._pieces[0].shown_at
        self._pace.shown(started, started)
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closed.is_set():
                break
            if not self._pace.due():
                # The end of the answer cuts the wait short: the final text never waits.
                await self._pace.wait(self._wake, self._closed)
                if self._closed.is_set():
                    break
            self._sent_at = None
            offered_at = self._clock.now()
            if await self._push(final=False):
                # A partial append notes when it left; a call that had to land, when it did.
                sent_at = self._sent_at
                self._pace.shown(offered_at, self._clock.now() if sent_at is None else sent_at)
        await self._push(final=True)
        last = self._pieces[-1]
        if last.ts is None:
            raise _Failed(None)  # no text at all: the ending is a reply of its own
        self._placed.set()
        # The last words go with chat.stopStream: the final text then waits for the stop
        # budget `auto` made sure of, never behind other answers' appends.
        tail, _ = self._delta(last, final=True)
        ending = self._ending or Ending()
        if self._search_open and not tail:
            # No words at all: the search step says it failed, the notice below says why.
            self._search_open = False
            chunks = [self._search_chunk("error", messages.search_failed(ending.failure))]
        else:
            chunks = self._carrying(tail)
        with _as_failure():
            await self._calls.stop_stream(
                self._place.channel, last.ts, self._ending_blocks(ending), chunks=chunks
            )
        last.sent += tail
        last.stopped = True
        self._result.edits += 1
        self._shown(last, tail)

    async def _push(self, *, final: bool) -> bool:
        """Send what Slack does not have yet: finish each piece that is full (stopping its
        stream, starting the next one), then the newest text. True when anything was sent."""
        self._reflow()
        sent = False
        for index, piece in enumerate(self._pieces):
            sealed = index < len(self._pieces) - 1
            sent = await self._send(piece, final=final or sealed, hold_back=not sealed) or sent
            if sealed and piece.ts is not None and not piece.stopped:
                with _as_failure():
                    await self._calls.stop_stream(self._place.channel, piece.ts)
                piece.stopped = True
                self._result.edits += 1
        return sent

    async def _send(self, piece: _Piece, *, final: bool, hold_back: bool) -> bool:
        """Send the piece's new text: its first words start its stream; later text while the
        answer streams is a partial append (see `_append_partial`); the rest of a finished
        piece must land, except its last chunk when `hold_back` (it goes with the stop)."""
        delta, covered = self._delta(piece, final=final)
        if not delta:
            return False
        if piece.ts is not None and not final:
            return await self._append_partial(piece)
        texts = [delta[i : i + APPEND_LIMIT] for i in range(0, len(delta), APPEND_LIMIT)]
        held = False
        if piece.ts is None:
            first = texts.pop(0)
            await self._start(piece, self._carrying(first))
            piece.sent += first
            self._shown(piece, first)
        elif hold_back:
            texts.pop()  # the stop carries it
            held = True
        with _as_failure():
            for text in texts:
                await self._calls.append_stream(
                    self._place.channel, str(piece.ts), self._carrying(text)
                )
                piece.sent += text
                self._result.edits += 1
                self._shown(piece, text)
        if not held:
            piece.covered = covered
        return True

    async def _append_partial(self, piece: _Piece) -> bool:
        """Offer the scheduler an append of the text that is new when it goes out (like a
        partial edit: rendered then, so it carries everything up to that moment). It waits
        for the append budget without holding the answer's end back: the end withdraws it.
        True when Slack took it."""
        rendered = False
        before = (piece.sent, piece.covered)

        def render() -> dict[str, Any] | None:
            nonlocal rendered, before
            self._reflow()  # text that arrived meanwhile may fill this message
            delta, covered = self._delta(piece, final=False)
            if not delta or len(delta) > APPEND_LIMIT:
                return None  # nothing new; or so much that the finished piece sends it
            rendered, before = True, (piece.sent, piece.covered)
            self._sent_at = self._clock.now()  # the scheduler sends it now
            piece.sent += delta  # counted as sent while in flight: a split must keep it
            piece.covered = covered
            shown.append(delta)
            return {"channel": self._place.channel, "ts": piece.ts, "chunks": self._carrying(delta)}

        shown: list[str] = []
        # The stream whose text went longest without news goes first (the first words of a
        # stream opened for the search step, above all).
        ticket = self._calls.offer_append(render, stale_since=piece.shown_at)
        try:
            sent = await self._settle(ticket)
        except (SlackUnavailable, MessageTooLong, MessageGone) as error:
            piece.sent, piece.covered = before  # refused: Slack shows what it showed before
            raise _failure(error) from error
        if rendered and not sent:
            # Refused for now or lost on the way: whether Slack shows it is unknown, and
            # sending it again could show it twice. chat.update takes over from the full text.
            raise _Failed(None)
        if sent:
            self._result.edits += 1
            self._shown(piece, "".join(shown))
        return sent

    async def _settle(self, ticket: EditTicket) -> bool:
        """The offer's fate, or its withdrawal when the answer ends first."""
        settled = await self._offer.fate(ticket)
        if settled.cancelled():
            return False
        # What Slack refused for good (the user's Stop above all) is raised, also for an
        # append the end of the answer waited for.
        return settled.result() is not None

    def _delta(self, piece: _Piece, *, final: bool) -> tuple[str, int]:
        """The piece's safe text Slack does not have yet, and how much of its markdown the
        safe text covers."""
        safe, covered = slack_format.safe_markdown(piece.markdown, final=final)
        return safe[len(piece.sent) :], covered

    def _reflow(self) -> None:
        """Continue the answer in a new message when this one is full, at the clean
        boundary the update transport would choose, never before text already sent."""
        while True:
            last = self._pieces[-1]
            head, tail = slack_format.split_for_slack(last.markdown, self._limit, last.covered)
            if not tail or not head or len(head) < last.covered:
                return
            last.markdown = head
            self._pieces.append(_Piece(markdown=tail))

    def _ending_blocks(self, ending: Ending) -> list[dict[str, Any]]:
        blocks = [slack_format.sources_block(ending.sources)]
        if ending.feedback_value is not None:
            blocks.append(slack_format.feedback_block(ending.feedback_value))
        if ending.notice:
            notice = {"type": "mrkdwn", "text": ending.notice}
            blocks.append({"type": "context", "elements": [notice]})
        return [block for block in blocks if block is not None]

    # -- when native streaming fails -------------------------------------------------------

    async def _hand_over(self, failure: _Failed) -> StreamResult:
        """The update transport finishes the answer from the piece Slack would not take on:
        that message is finished with chat.update from its full text (or, refused before it
        existed, the answer starts over by chat.update), and nothing received is lost."""
        index = next((i for i, p in enumerate(self._pieces) if not p.stopped), 0)
        piece = self._pieces[index]
        if failure.code == STOPPED:
            # The user pressed Stop: the text they saw stays, the rest is not wanted.
            self.user_stopped.set()
            piece.markdown = piece.markdown[: piece.covered]
            del self._pieces[index + 1 :]
        elif piece.ts is None and index == 0 and failure.code in REFUSALS:
            self._transports.remember_refusal(self._place.team, failure.code)
        elif piece.ts is not None and failure.code != EXPIRED and not failure.gone:
            await self._stop_quietly(piece)
        if failure.code is not None:
            log.info(
                "native stream in %s handed to chat.update (%s)", self._place.channel, failure.code
            )
        self._settle_counts()
        delegate = self._adopt_fallback()
        delegate.existing_ts = None if failure.gone else piece.ts
        self._handed_over = index
        delegate.append("".join(p.markdown for p in self._pieces[index:]))
        if failure.code == STOPPED:
            await self._closed.wait()
        if not self._closed.is_set():
            # Carry on by chat.update; the first edit shows the message as it was.
            shown = self._typing(piece.markdown) or self._typing(piece.markdown[: piece.covered])
            await delegate.open(shown or self._placeholder)
        await self._closed.wait()
        ending = self._ending or Ending()
        if failure.code == STOPPED:
            ending = Ending(notice=messages.STOPPED_BY_USER)
        result = await delegate.close(ending)
        kept = [ts for ts in self._result.message_ts if ts not in result.message_ts]
        edits = self._result.edits + result.edits
        first_shown_at = self._result.first_shown_at or result.first_shown_at
        return StreamResult(kept + result.message_ts, edits, result.complete, first_shown_at)

    async def _stop_quietly(self, piece: _Piece) -> None:
        """End a stream that failed otherwise, so chat.update may finish its message."""
        try:
            await self._calls.stop_stream(self._place.channel, str(piece.ts))
        except (SlackUnavailable, MessageTooLong, MessageGone) as error:
            log.info("could not stop a failed native stream: %s", error)

    def _typing(self, markdown: str) -> str | None:
        """The message as it showed while streaming, for the takeover's first edit (so the
        message does not flash back to a placeholder); None when it would not fit."""
        text = f"{slack_format.to_mrkdwn_partial(markdown)} {slack_format.TYPING_MARKER}"
        return text if markdown.strip() and len(text) <= self._limit else None

    # -- bookkeeping -----------------------------------------------------------------------

    def _started(self) -> None:
        if self._start_counted:
            self._start_counted = False
            self._calls.scheduler.starts_expected -= 1

    def _settle_counts(self) -> None:
        self._started()
        if self._stop_counted:
            self._stop_counted = False
            self._calls.scheduler.stops_expected -= 1

    def progress(self) -> tuple[str | None, str]:
        """As AnswerStream.progress: the last posted message and the text from it on."""
        if self._delegate is not None:
            return self._delegate.progress()
        return progress_of(self._pieces)


async def stop_left_stream(calls: SlackCalls, channel: str, ts: str) -> None:
    """Stop a native stream a dead process left open, so chat.update can finish its message
    (on a message still streaming Slack answers `streaming_state_conflict`). Nothing more is
    needed when the stream expired meanwhile (`message_not_in_streaming_state`), the user
    stopped it, or the message is gone (the update transport posts the text again)."""
    try:
        await calls.stop_stream(channel, ts)
    except MessageGone:
        return
    except (SlackUnavailable, MessageTooLong) as error:
        code = getattr(error, "code", None)
        if code not in (EXPIRED, STOPPED):
            log.warning("could not stop a native stream left open: %s", error)


@contextmanager
def _as_failure() -> Iterator[None]:
    """A stream call Slack refused, raised as the stream's own failure (`_failure`)."""
    try:
        yield
    except (SlackUnavailable, MessageTooLong, MessageGone) as error:
        raise _failure(error) from error


def _failure(error: Exception) -> _Failed:
    if isinstance(error, MessageGone):
        return _Failed("message_not_found", gone=True)
    if isinstance(error, MessageTooLong):
        return _Failed("msg_too_long")
    code = getattr(error, "code", None)
    return _Failed(code if isinstance(code, str) else None)
