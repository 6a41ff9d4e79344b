"""One question → one streamed answer in its Slack thread, top to bottom.

The steps follow the design's request flow: claim the message, resolve the project, take the
thread's lock, resolve the conversation, stream, finish with sources and feedback. Every
failure ends as a notice in the reply itself, under whatever text had already arrived.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from typing import Any

from bot import keys, log_setup, messages
from bot.citations import CitationResolver
from bot.clock import Clock
from bot.config import Settings
from bot.customgpt import (
    Chunk,
    CustomGPTClient,
    CustomGPTError,
    Finish,
    NotFound,
    check_prompt,
    failure_log_level,
)
from bot.customgpt_keys import CustomGPTKeys, NoKey
from bot.journal import Entry, Journal
from bot.metrics import ANSWERED, Metrics, reason_for
from bot.native_stream import NativeStream, Placement, Transports
from bot.slack_calls import (
    Content,
    PostedThenCancelled,
    SlackCalls,
    SlackSchedulers,
    SlackUnavailable,
)
from bot.slack_format import BUTTON_VALUE_LIMIT
from bot.store import LockTimeout, Store, StoreUnavailable
from bot.streaming import AnswerStream, Ending, StreamResult

log = logging.getLogger(__name__)

CLAIM_TTL = 24 * 3600
LOCK_LEASE = 20.0  # renewed while answering; a killed process frees its thread after this
LOCK_WAIT = 120.0
PROJECT_NAME_TTL = 3600
PROJECT_NAME_WAIT = 2.0
DM_THREAD = "dm"


@dataclass(frozen=True)
class Question:
    team: str
    channel: str
    user: str
    text: str
    message_ts: str
    thread_ts: str | None  # the thread the user wrote in; None for a top-level message
    is_dm: bool
    event_id: str | None = None
    has_files: bool = False  # files are not passed to CustomGPT yet: the answer says so

    @property
    def reply_thread(self) -> str | None:
        """Where the answer goes: channels always answer in a thread; DMs answer where the
        user wrote (top level stays top level, so a DM reads like a chat)."""
        if self.is_dm:
            return self.thread_ts
        return self.thread_ts or self.message_ts

    @property
    def conversation_thread(self) -> str:
        """The Slack thread that names the CustomGPT conversation: one per channel thread,
        one per thread in a DM (an assistant thread is one), and one for the DM's top level
        (until `/customgpt new`)."""
        if self.is_dm:
            return self.thread_ts or DM_THREAD
        return self.thread_ts or self.message_ts


_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def question_text(text: str, bot_user_id: str | None) -> str:
    """The prompt without the bot's own mention (other mentions stay: they carry meaning)."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    return " ".join(text.split())


def question_from_event(
    team: str, body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None, *, is_dm: bool
) -> Question:
    """The question a person's message event asks (a mention, a DM, a thread reply)."""
    return Question(
        team=team,
        channel=str(event["channel"]),
        user=str(event.get("user") or ""),
        text=question_text(str(event.get("text") or ""), bot_user_id),
        message_ts=str(event["ts"]),
        thread_ts=event.get("thread_ts"),
        is_dm=is_dm,
        event_id=body.get("event_id"),
        has_files=bool(event.get("files")) or event.get("subtype") == "file_share",
    )


def feedback_value(
    project_id: str, session_id: str, message_id: str | None, asker: str
) -> str | None:
    """What the feedback buttons carry, so a click needs no store look-up (`u`: who asked,
    the one person whose click is recorded). None when it would not fit in a button (ids
    CustomGPT made that long): the answer then ends without the buttons, not without its
    final text."""
    value = {"p": project_id, "s": session_id, "m": message_id, "u": asker}
    encoded = json.dumps(value, separators=(",", ":"))
    return encoded if len(encoded) <= BUTTON_VALUE_LIMIT else None


@dataclass
class _Progress:
    """How far a question got: whether it has a reply that will say how its answer ended,
    and whether that reply is final (else the journal keeps it for another process)."""

    replied: bool = False
    delivered: bool = False
    entry: Entry | None = None
    taken_at: float | None = None  # when the question was taken on (claimed)
    outcome: str | None = None  # ANSWERED, else why not (a metrics reason)


class Answerer:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        customgpt_keys: CustomGPTKeys,
        slack: SlackSchedulers,
        clock: Clock,
        journal: Journal,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._journal = journal
        self._store = store
        self._keys = customgpt_keys
        self._slack = slack
        self._clock = clock
        self._citations = CitationResolver(store, settings.store_ttl_seconds)
        self._transports = Transports(settings, clock)
        # Answers streaming at once in this process; the rest wait their turn, in order.
        self._admission = asyncio.Semaphore(settings.max_concurrent_answers)

    async def claim(self, question: Question) -> bool:
        """True for the one delivery of a message that should be answered. The message is
        claimed, not the event: Slack's retries of an event carry its message, and Slack has
        delivered one message under two event ids (a mention and a message event), so one
        claim covers both, in one round trip."""
        return await self._store.claim(
            keys.message_claim(question.team, question.channel, question.message_ts), CLAIM_TTL
        )

    async def handle(self, question: Question) -> None:
        """Answer a delivered message once; never raises for anything a user should hear about.

        Cancelled (shutdown), the reply says the bot restarted before the task ends; so does
        a new reply when shutdown came before any reply existed."""
        log_setup.bind(team=question.team, channel=question.channel, thread=question.reply_thread)
        calls = self._slack.for_team(question.team)
        progress = _Progress()
        try:
            if not await self.claim(question):
                log.info("skipping a message already answered (%s)", question.event_id)
                return
            self._taken(progress)
            progress.entry = await self._journal.begin(
                question.team, question.channel, question.reply_thread, question.message_ts
            )
            await self._answer(question, calls, progress)
            progress.delivered = True
        except StoreUnavailable as error:
            log.error("store unreachable while answering: %s", error)
            if progress.taken_at is None:
                self._taken(progress)  # not deduplicated, yet a question the user was told about
            progress.outcome = progress.outcome or "store_unavailable"
            self._metrics.store_error("answer")
            await self._tell(question, calls, messages.STORE_DOWN)
            progress.delivered = True  # said, or Slack refused for good: nothing to finish
        except SlackUnavailable as error:
            progress.outcome = progress.outcome or "slack_refused"
            progress.delivered = True  # Slack refused for good: nothing anyone can finish
            log.error(
                "could not deliver an answer to Slack (question %s in %s): %s",
                question.message_ts,
                question.channel,
                error,
            )
        except asyncio.CancelledError:
            progress.outcome = progress.outcome or "shutdown"
            if not progress.replied:
                # Claimed, then stopped before any reply existed: say so, or it is lost.
                await self._tell(question, calls, messages.SHUTTING_DOWN)
                progress.delivered = True
            raise
        finally:
            self._ended(progress)
            if progress.entry is not None and progress.delivered:
                await self._journal.end(progress.entry)

    def _taken(self, progress: _Progress) -> None:
        progress.taken_at = self._clock.now()
        self._metrics.questions_received.inc()
        self._metrics.answers_in_flight.inc()

    def _ended(self, progress: _Progress) -> None:
        if progress.taken_at is None:
            return
        self._metrics.answers_in_flight.dec()
        self._metrics.question_ended(progress.outcome or "unexpected")

    async def _tell(self, question: Question, calls: SlackCalls, text: str) -> None:
        try:
            await calls.post(question.channel, question.reply_thread, Content(text))
        except SlackUnavailable as slack_error:
            log.error("could not tell the user either: %s", slack_error)

    async def _answer(self, question: Question, calls: SlackCalls, progress: _Progress) -> None:
        if not question.text:
            empty = messages.FILES_ONLY if question.has_files else messages.EMPTY_QUESTION
            progress.replied, progress.outcome = True, "empty_question"
            await calls.post(question.channel, question.reply_thread, Content(empty))
            return
        try:
            account = await self._keys.account_for(question.team)
        except NoKey:
            # Nothing to ask with: CustomGPT is not asked, and the reply says who can fix it.
            progress.replied, progress.outcome = True, "no_key"
            await calls.post(question.channel, question.reply_thread, Content(messages.NO_KEY))
            return
        customgpt = account.client
        project_id = await self.project_for(
            question.team, question.channel, account.default_project
        )
        if project_id is None:
            progress.replied, progress.outcome = True, "no_project"
            await calls.post(question.channel, question.reply_thread, Content(messages.NO_PROJECT))
            return
        lock_key = keys.thread_lock(question.team, question.channel, question.conversation_thread)
        queued_ts: str | None = None  # the "waiting" reply, once this question had to queue
        try:
            # The lock covers asking CustomGPT and placing the reply, not waiting for Slack to
            # take the final text: `_stream` releases it early through `held`.
            async with AsyncExitStack() as held:
                for wait in (0.0, LOCK_WAIT):
                    try:
                        await held.enter_async_context(
                            self._store.lock(
                                lock_key,
                                lease=LOCK_LEASE,
                                wait=wait,
                                order=float(question.message_ts),
                            )
                        )
                        break
                    except LockTimeout:
                        if queued_ts is None:
                            # Another answer is streaming in this thread: show this one waits.
                            queued_ts = await self._post_waiting(question, calls, messages.QUEUED)
                else:
                    assert queued_ts is not None
                    progress.outcome = "thread_busy"
                    await calls.update(question.channel, queued_ts, Content(messages.BUSY_THREAD))
                    return
                progress.replied = True  # from here on the answer says itself how it ended
                await self._stream(
                    question, project_id, customgpt, calls, queued_ts, held.aclose, progress
                )
        except PostedThenCancelled as landed:
            await self._end_waiting(question, calls, landed.ts, messages.SHUTTING_DOWN, progress)
            raise
        except (asyncio.CancelledError, StoreUnavailable) as error:
            if queued_ts is None or progress.replied:
                raise
            # Stopped while waiting in line: the waiting reply must not wait forever.
            cancelled = isinstance(error, asyncio.CancelledError)
            notice = messages.SHUTTING_DOWN if cancelled else messages.STORE_DOWN
            await self._end_waiting(question, calls, queued_ts, notice, progress)
            if cancelled:
                raise

    async def _post_waiting(self, question: Question, calls: SlackCalls, text: str) -> str:
        return await calls.post_through_shutdown(
            question.channel, question.reply_thread, Content(text)
        )

    @staticmethod
    async def _end_waiting(
        question: Question, calls: SlackCalls, ts: str, notice: str, progress: _Progress
    ) -> None:
        progress.replied = True
        await asyncio.shield(calls.update(question.channel, ts, Content(notice)))
        progress.delivered = True

    async def owns_thread(self, team: str, channel: str, thread_ts: str) -> bool:
        """Whether the bot answered in this thread (so a reply there is meant for it).

        An unreachable store counts as "no": better to miss a follow-up without a mention
        than to answer every thread reply in the workspace."""
        try:
            key = keys.conversation(team, channel, thread_ts)
            return await self._store.get(key) is not None
        except StoreUnavailable as error:
            log.warning("store unreachable; ignoring a thread reply: %s", error)
            return False

    async def project_for(self, team: str, channel: str, default: str | None) -> str | None:
        """The channel's binding first, then the default project (`Account.default_project`:
        the environment's, where its key serves the workspace)."""
        bound = await self._store.get(keys.binding(team, channel))
        return bound or default

    async def _stream(
        self,
        question: Question,
        project_id: str,
        customgpt: CustomGPTClient,
        calls: SlackCalls,
        queued_ts: str | None,
        release_thread: Callable[[], Awaitable[None]],
        progress: _Progress,
    ) -> None:
        update_stream = AnswerStream(
            calls,
            question.channel,
            question.reply_thread,
            interval=self._settings.slack_update_interval,
            clock=self._clock,
            arrivals_every=customgpt.read_pace,
            question_ts=question.message_ts,
            existing_ts=queued_ts,
            overload_wait=self._settings.slack_overload_wait,
        )
        place = Placement(
            question.team, question.channel, question.user, question.reply_thread, question.is_dm
        )
        stream = self._transports.stream(
            update_stream, calls, place, arrivals_every=customgpt.read_pace
        )
        entry = progress.entry
        if entry is not None:
            self._journal.follow(entry, stream)
        cancelled: asyncio.CancelledError | None = None
        must_wait = self._admission.locked()
        # Take a place in line first, so questions stream in the order they arrived however
        # long their "waiting" replies take to post.
        admission = asyncio.ensure_future(self._admission.acquire())
        try:
            if must_wait and queued_ts is None:
                # As many answers stream as this process takes: show this one waits its turn.
                stream.existing_ts = await self._post_waiting(question, calls, messages.ADMISSION)
            await admission
            name = await self.project_name(question.team, project_id, customgpt)
            stream.show_searching(name)
            await stream.open(messages.searching(name) if name else messages.THINKING)
            ending = await stream.unless_stopped(
                self._fill(question, project_id, customgpt, stream)
            )
        except PostedThenCancelled as landed:
            stream.existing_ts = stream.existing_ts or landed.ts
            cancelled, ending = landed, Ending(notice=messages.SHUTTING_DOWN)
        except asyncio.CancelledError as error:
            cancelled, ending = error, Ending(notice=messages.SHUTTING_DOWN)
        except Exception:
            # The last line of defence: whatever broke, the reply must not stay a placeholder.
            log.exception("answer failed unexpectedly")
            ending = Ending(notice=messages.UNEXPECTED, failure="unexpected")
        finally:
            if admission.done() and not admission.cancelled():
                self._admission.release()  # CustomGPT is done with: the next answer may stream
            else:
                admission.cancel()
        delivery = asyncio.ensure_future(stream.close(ending))
        if cancelled is not None:
            progress.delivered = await self._within_grace(delivery)
            raise cancelled
        try:
            await stream.placed()
            await release_thread()  # the thread's next question may ask CustomGPT now
            result = await asyncio.shield(delivery)
        except asyncio.CancelledError:
            progress.delivered = await self._within_grace(delivery)
            raise
        self._delivered(progress, ending, result)
        log.info(
            "%s in %s: %d characters, %d messages, %d edits",
            "answered" if result.complete else "answer cut short by Slack",
            question.channel,
            len(stream.text),
            len(result.message_ts),
            result.edits,
        )

    def _delivered(self, progress: _Progress, ending: Ending, result: StreamResult) -> None:
        """The answer's outcome and how long the asker waited for its text."""
        complete = ending.failure is None and result.complete
        progress.outcome = ANSWERED if complete else (ending.failure or "slack_refused")
        if progress.taken_at is None:
            return
        if result.first_shown_at is not None:
            self._metrics.first_text_seconds.observe(result.first_shown_at - progress.taken_at)
        if complete:
            self._metrics.final_text_seconds.observe(self._clock.now() - progress.taken_at)

    async def _within_grace(self, delivery: asyncio.Future[StreamResult]) -> bool:
        """Shutdown: the final text may take a moment to land, never longer than the grace.
        True when it landed; else the journal keeps the reply for the next process."""
        try:
            await asyncio.wait({delivery}, timeout=self._settings.shutdown_grace)
        finally:
            # Also when shutdown's own bound cancels this wait: no writer goes on unwatched.
            landed = delivery.done() and not delivery.cancelled()
            delivery.cancel()
        return landed

    async def _fill(
        self,
        question: Question,
        project_id: str,
        customgpt: CustomGPTClient,
        stream: NativeStream,
    ) -> Ending:
        """Feed CustomGPT's answer into the stream; return how the answer ends."""
        notes: list[str] = []
        try:
            check_prompt(question.text)  # before a conversation is created for nothing
            session_id, kept = await self._conversation(question, project_id, customgpt, notes)
            try:
                finish = await self._ask(question, customgpt, project_id, session_id, stream)
            except NotFound:
                if not kept or stream.text:
                    raise
                # The thread's conversation was deleted in CustomGPT (the 404 comes before
                # any answer, so nothing was asked): if the project is still there, start a
                # new conversation once and say so; else the project's absence is reported.
                await customgpt.get_project(project_id)
                session_id = await self.start_conversation(
                    customgpt,
                    question.team,
                    question.channel,
                    question.conversation_thread,
                    project_id,
                )
                notes.append(messages.CONVERSATION_RESTARTED)
                finish = await self._ask(question, customgpt, project_id, session_id, stream)
        except CustomGPTError as error:
            level = failure_log_level(error)
            log.log(level, "answer failed: %s %s", type(error).__name__, error.status)
            partial = bool(stream.text.strip())
            notice = messages.for_error(error, project_id=project_id, partial=partial)
            return Ending(notice=notice, failure=f"customgpt_{reason_for(error)}")
        except StoreUnavailable as error:
            log.error("store unreachable mid-answer: %s", error)
            return Ending(notice=messages.STORE_DOWN, failure="store_unavailable")
        if not stream.text.strip():
            return Ending(notice=messages.EMPTY_ANSWER, failure="empty_answer")
        sources = await self._citations.resolve(
            customgpt, question.team, project_id, finish.citations
        )
        if finish.skipped_frames:
            notes.append(messages.skipped_frames(finish.skipped_frames))
        if question.has_files:
            notes.append(messages.FILES_NOT_READ)
        return Ending(
            sources=sources,
            feedback_value=feedback_value(project_id, session_id, finish.message_id, question.user),
            notice="\n".join(notes) or None,
        )

    async def _ask(
        self,
        question: Question,
        customgpt: CustomGPTClient,
        project_id: str,
        session_id: str,
        stream: NativeStream,
    ) -> Finish:
        lang = self._settings.customgpt_lang
        if not self._settings.customgpt_stream:
            answer = await customgpt.send_message(project_id, session_id, question.text, lang=lang)
            stream.append(answer.text)
            return Finish(answer.message_id, answer.session_id, answer.citations)
        events = customgpt.stream_message(project_id, session_id, question.text, lang=lang)
        async with aclosing(events):  # closes the SSE response as soon as we stop reading
            async for event in events:
                if isinstance(event, Chunk):
                    stream.append(event.text)
                else:
                    return event
        raise AssertionError("stream_message ends with Finish or raises")

    async def _conversation(
        self, question: Question, project_id: str, customgpt: CustomGPTClient, notes: list[str]
    ) -> tuple[str, bool]:
        """The thread's CustomGPT session, created on first use (and when the channel's
        project changed since); True when it is one kept from before. A follow-up whose
        conversation the store cannot tell (it is down) starts a new one, noted in `notes`."""
        key = keys.conversation(question.team, question.channel, question.conversation_thread)
        ttl = self._settings.store_ttl_seconds
        try:
            stored = await self._store.lookup(key)
        except StoreUnavailable as error:
            stored = None
            if question.thread_ts is not None or question.is_dm:  # else there is no before
                log.warning("store unreachable; a follow-up starts a new conversation: %s", error)
                notes.append(messages.EARLIER_TURNS_UNSEEN)
        if stored is not None:
            data = json.loads(stored)
            if data.get("project_id") == project_id and data.get("session_id"):
                await self._store.set(key, stored, ttl=ttl)  # an active thread stays alive
                return str(data["session_id"]), True
        session_id = await self.start_conversation(
            customgpt, question.team, question.channel, question.conversation_thread, project_id
        )
        return session_id, False

    async def start_conversation(
        self, customgpt: CustomGPTClient, team: str, channel: str, thread: str, project_id: str
    ) -> str:
        """Create a CustomGPT conversation for a Slack thread and make it the thread's, in place
        of any before it (`/customgpt new` in a DM). Raises CustomGPTError, and then the
        thread keeps the conversation it had."""
        session_id = await customgpt.create_conversation(
            project_id, name=f"Slack {channel} {thread}"
        )
        await self._store.set(
            keys.conversation(team, channel, thread),
            json.dumps({"project_id": project_id, "session_id": session_id}),
            ttl=self._settings.store_ttl_seconds,
        )
        return session_id

    async def project_name(
        self, team: str, project_id: str, customgpt: CustomGPTClient
    ) -> str | None:
        """The project's name for "Searching <project name>…", from the store's cache or a
        quick look-up.

        Said in the first post (and the status line) rather than a later edit, which would
        cost one of the workspace's chat.update calls per answer. Any trouble here gives
        None (a generic placeholder): the question itself will meet (and report) the same
        problem."""
        key = keys.project_name(team, project_id)
        try:
            name = await self._store.get(key)
            if name is None:
                async with asyncio.timeout(PROJECT_NAME_WAIT):
                    name = (await customgpt.get_project(project_id)).name
                await self._store.set(key, name, ttl=PROJECT_NAME_TTL)
        except (CustomGPTError, TimeoutError, StoreUnavailable):
            return None
        return name
