"""A journal of answers in flight, so no reply is left typing forever.

A process killed mid-answer (SIGKILL, a crash, a shutdown whose grace ran out) leaves replies
showing half an answer and the typing marker, or a question with no reply at all. Each answer
therefore keeps a small entry in the store while it runs: which reply it writes and the text
so far. Every process renews a short "alive" key; any process that finds an entry whose owner
is no longer alive finishes that reply itself, with the text so far and the restart notice
(or posts the notice when no reply existed yet), then forgets the entry. A reply that was a
native stream still open is stopped first: Slack refuses to edit a message while it streams.

Writes are cheap: the entry is written when the question is claimed, then at most once a
second while text changes (the flush loop reads the answers it follows and writes what
changed), and deleted when the answer's final text has landed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, fields
from typing import Protocol

from bot import keys, messages
from bot.clock import Clock
from bot.native_stream import stop_left_stream
from bot.slack_calls import SlackSchedulers, SlackUnavailable
from bot.store import Store, StoreUnavailable, Write
from bot.streaming import AnswerStream, Ending

log = logging.getLogger(__name__)

ALIVE_TTL = 10  # seconds a process counts as alive after its last heartbeat
FLUSH_EVERY = 1.0  # seconds between writes of changed entries (and heartbeats)
RECOVER_EVERY = 5.0  # seconds between looks for entries whose owner died
TAKEOVER_TTL = 1200  # seconds one process has to finish an orphaned entry (past the
# delivery deadline, so a slow finish is never taken over a second time)
ENTRY_TTL = 7 * 86400  # an entry nobody could finish is forgotten after a week


@dataclass
class Entry:
    team: str
    channel: str
    thread_ts: str | None  # where replies go
    question_ts: str
    owner: str
    ts: str | None = None  # the answer's last message, once posted
    markdown: str = ""  # the text of that message so far
    #: That message is a native stream still open: chat.update cannot finish it before
    #: chat.stopStream (Slack answers `streaming_state_conflict`).
    streaming: bool = False

    @property
    def member(self) -> str:
        return f"{self.channel}:{self.question_ts}"

    @classmethod
    def from_json(cls, raw: str) -> Entry:
        """An entry as stored; fields this version does not know (written by a newer one,
        during a rolling deploy) are left out rather than failing the whole recovery."""
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Followed(Protocol):
    """An answer in flight as the journal reads it (bot/native_stream.py's NativeStream)."""

    def progress(self) -> tuple[str | None, str]: ...

    @property
    def streaming(self) -> bool: ...


class Journal:
    def __init__(self, store: Store, slack: SlackSchedulers, clock: Clock, interval: float) -> None:
        self.process_id = uuid.uuid4().hex
        self._store = store
        self._slack = slack
        self._clock = clock
        self._interval = interval
        self._entries: dict[tuple[str, str], Entry] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._sources: dict[tuple[str, str], Followed] = {}
        self._teams: set[str] = set()

    async def begin(
        self, team: str, channel: str, thread_ts: str | None, question_ts: str
    ) -> Entry:
        entry = Entry(team, channel, thread_ts, question_ts, self.process_id)
        self._entries[(team, entry.member)] = entry
        self._teams.add(team)
        # The heartbeat, the entry and the index in one round trip; the entry before the
        # index, which recovery reads first (a member without its entry is dropped as
        # finished).
        await self._store.set_many(
            [self._alive_write(team), self._entry_write(entry)],
            [(keys.inflight_index(team), entry.member)],
        )
        return entry

    def follow(self, entry: Entry, answer: Followed) -> None:
        """Read the answer's progress at every flush (once a second), not at every chunk."""
        self._sources[(entry.team, entry.member)] = answer

    async def end(self, entry: Entry) -> None:
        """The answer is complete in Slack: nothing is left to finish."""
        self._entries.pop((entry.team, entry.member), None)
        self._sources.pop((entry.team, entry.member), None)
        self._dirty.discard((entry.team, entry.member))
        try:
            # One round trip; the index first, as recovery reads it first.
            await self._store.delete_many(
                [keys.inflight(entry.team, entry.channel, entry.question_ts)],
                [(keys.inflight_index(entry.team), entry.member)],
            )
        except StoreUnavailable as error:
            log.warning("could not forget a finished answer (%s); it is finished again", error)

    async def flush(self) -> None:
        for key, answer in list(self._sources.items()):
            entry = self._entries.get(key)
            if entry is None:
                continue
            # Its last message, the text from there on, and whether that message is a native
            # stream still open: marked for writing when any of them changed.
            now = (*answer.progress(), answer.streaming)
            if (entry.ts, entry.markdown, entry.streaming) != now:
                entry.ts, entry.markdown, entry.streaming = now
                self._dirty.add(key)
        # Every changed entry and every heartbeat in one round trip: a second's writes for a
        # hundred answers in flight were a hundred round trips, one after the other.
        dirty = [entry for key in self._dirty if (entry := self._entries.get(key)) is not None]
        await self._store.set_many(
            [*(self._entry_write(entry) for entry in dirty), *map(self._alive_write, self._teams)]
        )
        self._dirty.clear()

    async def abandon(self) -> None:
        """Shutdown: write what is unfinished and stop claiming to be alive, so another
        replica (or the next process) finishes these replies at once."""
        try:
            await self.flush()
            for team in self._teams:
                await self._store.delete(keys.process_alive(team, self.process_id))
        except StoreUnavailable as error:
            log.warning("store unreachable at shutdown (%s): unfinished replies wait", error)

    async def run(self, served: Callable[[], Awaitable[Iterable[str]]]) -> None:
        """Flush and heartbeat every second; every RECOVER_EVERY seconds finish the replies
        of processes that died (in every workspace `served` names, and any this process
        answered; the heartbeat only for the latter).
        Real time: nothing waits on this housekeeping. Recovery runs beside the heartbeat:
        finishing a reply can wait long for Slack, and a heartbeat that waited with it would
        let other replicas take this living process for dead."""
        since_recovery = RECOVER_EVERY
        recovering: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    await self.flush()
                except StoreUnavailable as error:
                    log.warning("store unreachable (%s): answers in flight not journaled", error)
                if since_recovery >= RECOVER_EVERY and (recovering is None or recovering.done()):
                    since_recovery = 0.0
                    recovering = asyncio.create_task(
                        self._recover_all(served), name="recovery of replies left behind"
                    )
                await asyncio.sleep(FLUSH_EVERY)
                since_recovery += FLUSH_EVERY
        finally:
            if recovering is not None:
                recovering.cancel()
                await asyncio.gather(recovering, return_exceptions=True)

    async def _recover_all(self, served: Callable[[], Awaitable[Iterable[str]]]) -> None:
        try:
            teams = set(await served()) | self._teams
            for team in sorted(teams):
                await self.recover(team)
        except StoreUnavailable as error:
            log.warning("store unreachable (%s): replies left behind wait", error)
        except Exception:  # logged here, or lost with the task; the next round tries again
            log.exception("finishing replies left behind failed")

    async def recover(self, team: str) -> int:
        """Finish the replies whose process died; how many were finished."""
        finished = 0
        for member in await self._store.members(keys.inflight_index(team)):
            channel, _, question_ts = member.partition(":")
            raw = await self._store.get(keys.inflight(team, channel, question_ts))
            if raw is None:
                await self._store.remove_member(keys.inflight_index(team), member)
                continue
            entry = Entry.from_json(raw)
            if entry.owner == self.process_id:
                continue
            if await self._store.get(keys.process_alive(team, entry.owner)) is not None:
                continue
            takeover = keys.inflight_takeover(team, channel, question_ts)
            if not await self._store.claim(takeover, TAKEOVER_TTL):
                continue  # another replica is finishing it
            await self._finish(entry)
            await self.end(entry)
            finished += 1
        if finished:
            log.info("finished %d repl(ies) left behind by a stopped process", finished)
        return finished

    async def _finish(self, entry: Entry) -> None:
        """The reply shows the text it had and says the bot restarted; a question that had
        no reply yet gets the notice as its reply. A native stream left open is stopped
        first, so chat.update may finish it. The hourglass the process may have put on the
        question comes off (none there costs one refused call)."""
        calls = self._slack.for_team(entry.team)
        if entry.streaming and entry.ts is not None:
            await stop_left_stream(calls, entry.channel, entry.ts)
        stream = AnswerStream(
            calls,
            entry.channel,
            entry.thread_ts,
            interval=self._interval,
            clock=self._clock,
            existing_ts=entry.ts,
        )
        stream.append(entry.markdown)
        try:
            await stream.close(Ending(notice=messages.SHUTTING_DOWN))
        except SlackUnavailable as error:
            log.warning("could not finish a reply left behind: %s", error)
        await calls.remove_reaction(entry.channel, entry.question_ts)

    @staticmethod
    def _entry_write(entry: Entry) -> Write:
        key = keys.inflight(entry.team, entry.channel, entry.question_ts)
        # Its fields are plain strings and flags: no deep copy (asdict) every second.
        return key, json.dumps(vars(entry)), ENTRY_TTL

    def _alive_write(self, team: str) -> Write:
        return keys.process_alive(team, self.process_id), "1", ALIVE_TTL
