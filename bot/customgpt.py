"""CustomGPT.ai RAG API client: projects, conversations, messages (streamed or not), citations,
feedback. Every failure is a `CustomGPTError` subclass carrying what a user message needs, its
text already cleared of the API key and anything token-shaped.

Streaming goes through aiohttp-sse-client, which on its own would re-send the POST when a
stream ends (asking CustomGPT the same question twice), would hide the status and body of an
HTTP error, would end the whole answer on one frame of invalid UTF-8 or one line over 64 KiB,
and would drop a last frame that lacks its blank line. `_OneShotSession` performs exactly one
request and turns a non-200 answer into a typed error before the SSE parser sees it;
`_EventReader` reads the frames itself (leniently, skipping oversized ones, delivering a final
frame left in the buffer) and never reconnects. Once text flows it reads at most every
`read_pace` seconds, not watching the connection in between, so the events that arrived
meanwhile cost one wake-up of the process instead of one each; the streams' reads keep to
one clock (`until_next_read`), so several streams share a wake-up too.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp_sse_client.client import EventSource

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.log_setup import Redactor
from bot.log_throttle import ThrottledLog
from bot.metrics import Metrics

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0  # seconds for any call but a message (projects, conversations, …)
PROMPT_LIMIT = 8000  # characters CustomGPT accepts in one prompt
CONVERSATION_NAME_LIMIT = 255  # characters in a conversation's `name`
FRAME_LIMIT = 1024 * 1024  # bytes; a stream frame larger than this is skipped, not read
# Seconds between two reads of an answer's stream once its text flows: one read per edit
# interval (SLACK_UPDATE_INTERVAL, whose default this is; `read_pace`). Models send a few
# characters at a time, tens of events a second, and waking the process for each one cost it
# more than everything else an answer does; read this often, each read takes every event
# that arrived meanwhile in one go. Slack shows the text once an interval at most and a due
# edit goes with a read (bot/edit_pace.py), so a read between two edits would only hold
# text the next one brings anyway. What the pace costs is the final text: it lands up to
# one pace after CustomGPT's last word (half of it on average). Measured on a lone 15-second
# answer (docs/benchmarks.md): read every second it cost 62 ms of CPU against 76 ms read
# every half second, and 72-76 against 63 ms read every quarter of a second against every
# half.
READ_PACE = 1.0
MIN_READ_PACE = 0.1  # seconds: a shorter edit interval still reads at most ten times a second
# Streams read on one clock: the pace is cut into phases READ_PHASE_EVERY apart (`read_slots`
# of them), and stream k reads at the times t with t mod pace on phase k mod slots. Streams
# of one phase share a wake-up of the process (waking an idle process costs more than the
# reading it does), and the phases spread a burst of answers over the pace, so whatever else
# the process has to do (an ack, a probe) waits behind one phase of them, never all of them.
READ_PHASE_EVERY = 0.05
_read_phases = itertools.count()


def read_pace(edit_interval: float) -> float:
    """Seconds between two reads of a streaming answer, for Slack's edit interval."""
    return max(MIN_READ_PACE, edit_interval)


def read_slots(pace: float) -> int:
    """How many phases the streams' reads are spread over, at `pace`."""
    return max(1, round(pace / READ_PHASE_EVERY))


def until_next_read(now: float, slot: int, pace: float = READ_PACE) -> float:
    """Seconds from `now` (the event loop's clock) to the next read of a stream in `slot`."""
    slots = read_slots(pace)
    phase = (slot % slots) * pace / slots
    return pace - (now - phase) % pace


CREDITS_LOG_INTERVAL = 60.0  # seconds between two warnings about exhausted query credits
# `no-cache` asks CustomGPT for a fresh answer. The SSE client sends it on every stream;
# sending it in both modes keeps stream=0 and stream=1 answering alike.
MESSAGE_HEADERS = {"Cache-Control": "no-cache"}


class CustomGPTError(Exception):
    """CustomGPT answered with an error, or could not be reached (`status` 0)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"CustomGPT {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class AuthError(CustomGPTError):
    """The API key is missing, invalid or lacks access (401/403)."""


class NotFound(CustomGPTError):
    """The project, conversation or citation does not exist (404)."""


class RateLimited(CustomGPTError):
    """429: the account's query credits are exhausted. Not a passing overload: asking again
    soon does not help; whoever manages the CustomGPT plan has to add credits."""


class PromptTooLong(CustomGPTError):
    """The prompt is over CustomGPT's limit; refused here, before anything is sent."""

    def __init__(self, length: int, limit: int = PROMPT_LIMIT) -> None:
        super().__init__(0, f"the prompt has {length} characters; at most {limit} are accepted")
        self.length = length
        self.limit = limit


class ServerError(CustomGPTError):
    """CustomGPT failed (5xx) or could not be reached (status 0)."""


class RequestTimeout(ServerError):
    """CustomGPT accepted the connection but did not answer in time."""


class StreamError(CustomGPTError):
    """The stream itself reported an error status mid-answer."""


class StreamInterrupted(CustomGPTError):
    """The stream ended before `finish`; whatever arrived is still valid text."""


class StreamTimeout(CustomGPTError):
    """Nothing arrived for too long; `first_chunk` tells whether anything had arrived at all."""

    def __init__(self, message: str, *, first_chunk: bool) -> None:
        super().__init__(0, message)
        self.first_chunk = first_chunk


@dataclass(frozen=True)
class Chunk:
    text: str


@dataclass(frozen=True)
class Finish:
    message_id: str | None
    session_id: str | None
    citations: list[str] = field(default_factory=list)
    #: Stream frames over FRAME_LIMIT left out of the answer (the text shown may lack parts).
    skipped_frames: int = 0


StreamEvent = Chunk | Finish


@dataclass(frozen=True)
class Answer:
    text: str
    message_id: str | None
    session_id: str | None
    citations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    is_chat_active: bool


@dataclass(frozen=True)
class ProjectStats:
    pages_found: int
    pages_crawled: int
    pages_indexed: int


@dataclass(frozen=True)
class ProjectPage:
    projects: list[Project]
    page: int
    last_page: int


@dataclass(frozen=True)
class Citation:
    title: str | None
    url: str | None


def error_for(status: int, body: str, headers: Mapping[str, str]) -> CustomGPTError:
    """Map an HTTP error answer to its exception, keeping CustomGPT's own message."""
    message = _error_message(body) or f"HTTP {status}"
    retry_after = _retry_after(headers.get("Retry-After"))
    if status in (401, 403):
        return AuthError(status, message, retry_after)
    if status == 404:
        return NotFound(status, message, retry_after)
    if status == 429:
        return RateLimited(status, message, retry_after)
    if status >= 500:
        return ServerError(status, message, retry_after)
    return CustomGPTError(status, message, retry_after)


def _error_message(body: str) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        text = body.strip()
        return text[:200] or None
    if not isinstance(payload, dict):
        return None
    data = payload.get("data")
    for source in (data if isinstance(data, dict) else {}, payload):
        for key in ("message", "error"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value[:500]
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date; rare enough that the default back-off serves


def _truthy(value: Any) -> bool:
    # `is_chat_active` has been seen as null, 0, 1, true, "1" and "0".
    if isinstance(value, str):
        return value.strip().lower() not in {"", "0", "false", "null"}
    return bool(value)


def _project(data: Mapping[str, Any]) -> Project:
    return Project(
        id=str(data.get("id")),
        name=str(data.get("project_name") or data.get("name") or data.get("id")),
        is_chat_active=_truthy(data.get("is_chat_active")),
    )


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


_WHOLE_NUMBER = re.compile(r"\s*(\d+)(?:\.0*)?\s*", re.ASCII)


def normalise_id(value: Any) -> str | None:
    """A numeric id the way CustomGPT's paths take it (an integer): 12061, 12061.0 and
    "12061.0" all become "12061", so URLs and cache keys see one form. Anything else is kept
    as text; None and "" are no id."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    match = _WHOLE_NUMBER.fullmatch(text)
    if match:
        # The digits without leading zeros, not `int()`: Python refuses to turn more than
        # 4,300 digits into an int, and a hostile id must not end the answer.
        return match[1].lstrip("0") or "0"
    return text or None


def _citation_ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [cid for c in value if (cid := normalise_id(c)) is not None]


def _optional_id(value: Any) -> str | None:
    return None if value is None else str(value)


def check_prompt(prompt: str) -> None:
    """Raise PromptTooLong for a prompt CustomGPT would refuse for its length."""
    if len(prompt) > PROMPT_LIMIT:
        raise PromptTooLong(len(prompt))


def failure_log_level(error: CustomGPTError) -> int:
    """The level a caller logs a failed call at: WARNING, except for exhausted credits, which
    the client itself reports at WARNING once a minute (one line per question would flood),
    and a prompt over the limit, which is the asker's to fix."""
    return logging.INFO if isinstance(error, RateLimited | PromptTooLong) else logging.WARNING


_json = json.JSONDecoder()
# The C scanner `decode` runs, called directly: a frame's data is one JSON value with nothing
# around it, so `decode`'s two whitespace matches and its Python frames are skipped.
_scan_json: Callable[[str, int], tuple[Any, int]] = _json.scan_once  # type: ignore[attr-defined]


def _decode_json(data: str) -> Any:
    """`json.loads(data)`, one C call for the usual frame."""
    try:
        value, end = _scan_json(data, 0)
    except StopIteration:  # not JSON where it starts (or whitespace first): `decode` says
        end = -1
    if end == len(data):
        return value
    return _json.decode(data)  # whitespace around the value, or not JSON: ValueError


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def model_text(text: str) -> str:
    """The answer's text fit to be encoded: JSON may carry a lone UTF-16 surrogate
    (`"\\ud800"`), which Python decodes into a string that no UTF-8 encoder takes, and the
    whole answer would fail at its next render. Each becomes U+FFFD, as undecodable bytes do."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def parse_event_data(data: str) -> StreamEvent | StreamError | None:
    """Interpret one SSE `data:` payload by its JSON `status` (never by the `event:` line,
    which data-only streams omit). Unknown statuses and empty chunks yield None."""
    try:
        payload = _decode_json(data)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        log.debug("ignoring a stream frame that does not read as JSON")
        return None
    if not isinstance(payload, dict):
        return None
    status = payload.get("status")
    if status == "progress":
        text = payload.get("message")
        return Chunk(model_text(text)) if isinstance(text, str) and text else None
    if status == "finish":
        return Finish(
            message_id=normalise_id(payload.get("id")),
            session_id=_optional_id(payload.get("session_id")),
            citations=_citation_ids(payload.get("citations")),
        )
    if status == "error" or (status is None and "error" in payload):
        message = payload.get("message") or payload.get("error") or "the answer failed"
        return StreamError(0, model_text(str(message)))
    return None


class SseLines:
    """Splits a byte stream into SSE lines (at LF; the CR of a CRLF dropped), the same lines
    however the bytes arrive in chunks. A line of more than `limit` bytes comes out as None
    instead, and is never held whole."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._dropping = False  # inside a line already reported as too long

    def feed(self, data: bytes) -> list[bytearray | None]:
        self._buffer += data
        *complete, rest = self._buffer.split(b"\n")
        if (
            not self._dropping
            and b"\r" not in self._buffer
            and max(map(len, complete), default=0) <= self._limit
        ):
            lines: list[bytearray | None] = list(complete)  # short LF lines: taken as they are
        else:
            lines = []
            for line in complete:
                if self._dropping:
                    self._dropping = False  # the tail of the line reported as None
                elif len(line) > self._limit:
                    lines.append(None)
                else:
                    lines.append(line.removesuffix(b"\r"))
        self._buffer = rest
        if len(self._buffer) > self._limit:
            self._buffer = bytearray()
            if not self._dropping:
                self._dropping = True
                lines.append(None)
        return lines

    def end(self) -> list[bytearray | None]:
        """The last line when the stream ends without a line break after it."""
        rest, self._buffer = self._buffer, bytearray()
        if self._dropping or not rest:
            return []
        return [rest.removesuffix(b"\r")]


class SseFrames:
    """The `data` of each SSE frame in a byte stream, as the SSE spec (and aiohttp-sse-client)
    reads it: the frame's data lines joined by LF, trailing LFs dropped, a frame without data
    left out. Only `data` matters to CustomGPT's events (their `status` says what they are),
    so the other fields are not interpreted. A frame over `limit` bytes in all is skipped and
    counted in `skipped`, never held whole; bytes that are not UTF-8 read as U+FFFD.

    A read brings a dozen frames of a few characters each; they are taken in one pass here,
    not a line at a time through the library's field handling."""

    def __init__(self, limit: int) -> None:
        self.skipped = 0
        self._limit = limit
        self._lines = SseLines(limit)
        self._data: list[str] = []
        self._size = 0  # bytes of the current frame so far; over `limit`: it is skipped

    def feed(self, chunk: bytes) -> list[str]:
        return self._frames(self._lines.feed(chunk))

    def end(self) -> list[str]:
        """The frames left when the stream ends: the last one counts without its blank line."""
        return self._frames([*self._lines.end(), bytearray()])

    def _frames(self, lines: list[bytearray | None]) -> list[str]:
        frames: list[str] = []
        limit = self._limit
        for line in lines:
            if line is not None and not line:  # a blank line ends the frame
                if self._size > limit:
                    self.skipped += 1
                elif self._data:
                    frames.append("\n".join(self._data).rstrip("\n"))
                self._data, self._size = [], 0
                continue
            if self._size > limit:
                continue  # the rest of a frame already skipped
            self._size += limit + 1 if line is None else len(line) + 1
            if line is None or self._size > limit:
                self._data = []  # the frame is skipped: free what it held
            elif line.startswith(b"data: "):  # the usual form, read without splitting
                self._data.append(line[6:].decode("utf-8", errors="replace"))
            elif line.startswith(b"data"):
                name, _, value = line.decode("utf-8", errors="replace").partition(":")
                if name == "data":
                    self._data.append(value.removeprefix(" "))
        return frames


class _EventReader(EventSource):  # type: ignore[misc]  # the library is untyped
    """aiohttp-sse-client's EventSource with its own frame reading: the library's line loop
    raises on invalid UTF-8 and on lines over aiohttp's 64 KiB (ending the answer), drops a
    last frame without its blank line, and reconnects (sending the question again) at the end
    of a stream. Here lines are decoded leniently (U+FFFD), a frame over `frame_limit` bytes is
    skipped and counted in `skipped_frames`, a frame left in the buffer at the end of the
    stream is still delivered, and the end of the stream ends the iteration (`SseFrames`).
    The library still makes the request (`connect`), through `_OneShotSession`."""

    def __init__(
        self, url: str, *, pace: float, frame_limit: int = FRAME_LIMIT, **kwargs: Any
    ) -> None:
        super().__init__(url, **kwargs)
        self._pace = pace
        self._frames = SseFrames(frame_limit)
        self._pending: deque[str] = deque()  # the data of frames read, not taken yet
        self._ended = False
        self._slot = next(_read_phases)

    async def __anext__(self) -> str:
        # Never the library's iteration, which reconnects (asking the question again).
        while (data := self.pending()) is None:
            if self.ended:
                raise StopAsyncIteration
            await self.read(paced=False)
        return data

    def pending(self) -> str | None:
        """The data of the next frame already read, if any (no waiting)."""
        return self._pending.popleft() if self._pending else None

    @property
    def skipped_frames(self) -> int:
        return self._frames.skipped

    @property
    def ended(self) -> bool:
        """No event is left: the stream has ended (or never started) and all was taken."""
        return not self._pending and (self._ended or self._response is None)

    async def read(self, *, paced: bool) -> None:
        """Wait for more of the stream (its end counts). `paced`: the connection is not
        watched until this stream's next read on the clock, so what arrives meanwhile is
        read at once; the loop's timer lets it be watched again (no task wakes for that)."""
        response = self._response
        connection = response.connection
        transport = connection.transport if paced and connection is not None else None
        watch_again: asyncio.TimerHandle | None = None
        if transport is not None:
            transport.pause_reading()
            loop = asyncio.get_running_loop()
            watch_again = loop.call_later(
                until_next_read(loop.time(), self._slot, self._pace), transport.resume_reading
            )
        try:
            chunk = await response.content.readany()
        finally:
            if watch_again is not None:
                watch_again.cancel()
            if transport is not None:
                transport.resume_reading()
        if chunk:
            self._pending.extend(self._frames.feed(chunk))
        else:
            self._ended = True
            self._pending.extend(self._frames.end())


class _OneShotSession:
    """The session aiohttp-sse-client sees: one request only, HTTP errors made typed."""

    def __init__(
        self, session: aiohttp.ClientSession, http_error: Callable[..., CustomGPTError]
    ) -> None:
        self._session = session
        self._http_error = http_error
        self._used = False

    async def request(self, method: str, url: Any, **kwargs: Any) -> aiohttp.ClientResponse:
        if self._used:
            # The library's reconnect: sending the prompt again would ask it twice.
            raise StreamInterrupted(0, "the answer stream ended early")
        self._used = True
        try:
            response = await self._session.request(method, url, **kwargs)
        except aiohttp.ClientError as exc:
            raise ServerError(0, f"could not reach CustomGPT ({type(exc).__name__})") from exc
        if response.status != 200:
            body = await response.text(errors="replace")
            response.release()
            raise self._http_error(response.status, body, response.headers)
        return response

    async def close(self) -> None:
        return None


class CustomGPTClient:
    """One client per process; it borrows the caller's aiohttp session (one pool for all)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        first_chunk_timeout: float = 30.0,
        idle_timeout: float = 60.0,
        request_timeout: float = REQUEST_TIMEOUT,
        read_pace: float = READ_PACE,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._session = session
        self._metrics = metrics or Metrics()
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._redact = Redactor([api_key]).redact
        self._credits_log = ThrottledLog(log, CREDITS_LOG_INTERVAL, clock or SystemClock())
        self.first_chunk_timeout = first_chunk_timeout
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.read_pace = read_pace

    @classmethod
    def configured(
        cls,
        session: aiohttp.ClientSession,
        settings: Settings,
        api_key: str,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> CustomGPTClient:
        """The client as the settings make it, for the operator's key or a workspace's: its
        timeouts, and a stream read once an edit interval (`read_pace`)."""
        return cls(
            session,
            settings.customgpt_api_url,
            api_key,
            first_chunk_timeout=settings.customgpt_first_chunk_timeout,
            idle_timeout=settings.customgpt_idle_timeout,
            read_pace=read_pace(settings.slack_update_interval),
            clock=clock,
            metrics=metrics,
        )

    def _http_error(self, status: int, body: str, headers: Mapping[str, str]) -> CustomGPTError:
        """The typed error for an HTTP error answer, its text redacted; exhausted credits are
        logged here, once a minute, for every caller (answers, commands, index watches)."""
        error = error_for(status, self._redact(body), headers)
        if isinstance(error, RateLimited):
            self._credits_log.warning(
                "CustomGPT refused a request (429): query credits exhausted? It said: %s",
                error.message,
            )
        return error

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        form: aiohttp.FormData | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        seconds: float | None = None,
    ) -> Any:
        seconds = self.request_timeout if seconds is None else seconds
        try:
            async with self._session.request(
                method,
                self._base + path,
                json=json_body,
                data=form,
                params=params,
                headers={**self._headers, **(headers or {})},
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                body = await response.text(errors="replace")
                if response.status >= 400:
                    raise self._http_error(response.status, body, response.headers)
        except TimeoutError:
            raise RequestTimeout(0, f"no answer within {seconds:g} s") from None
        except aiohttp.ClientError as exc:
            raise ServerError(0, f"could not reach CustomGPT ({type(exc).__name__})") from exc
        try:
            payload = json.loads(body)
        except ValueError:
            raise ServerError(response.status, "CustomGPT sent an unreadable answer") from None
        return payload.get("data") if isinstance(payload, dict) else None

    async def create_project(self, name: str, sitemap_url: str) -> Project:
        # multipart/form-data is what the API documents; text-only fields would otherwise
        # go out urlencoded.
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("project_name", name)
        form.add_field("sitemap_path", sitemap_url)
        data = await self._call("POST", "/projects", form=form)
        if not isinstance(data, dict) or data.get("id") in (None, ""):
            raise ServerError(200, "CustomGPT did not return a project id")
        return _project(data)

    async def get_project(self, project_id: str) -> Project:
        data = await self._call("GET", f"/projects/{project_id}")
        return _project(data or {})

    async def project_stats(self, project_id: str) -> ProjectStats:
        data = await self._call("GET", f"/projects/{project_id}/stats") or {}
        return ProjectStats(
            pages_found=_int(data.get("pages_found")),
            pages_crawled=_int(data.get("pages_crawled")),
            pages_indexed=_int(data.get("pages_indexed")),
        )

    async def list_projects(self, page: int = 1) -> ProjectPage:
        data = await self._call("GET", "/projects", params={"page": str(page)}) or {}
        items = data.get("data") if isinstance(data, dict) else None
        return ProjectPage(
            projects=[_project(p) for p in items or [] if isinstance(p, dict)],
            page=_int(data.get("current_page")) or page,
            last_page=_int(data.get("last_page")) or page,
        )

    async def create_conversation(self, project_id: str, name: str) -> str:
        data = await self._call(
            "POST", f"/projects/{project_id}/conversations", json_body={"name": name}
        )
        session_id = (data or {}).get("session_id")
        if not session_id:
            raise ServerError(200, "CustomGPT did not return a conversation id")
        return str(session_id)

    async def example_questions(self, project_id: str) -> list[str]:
        """The project's starter questions (its settings' `example_questions`), blanks left
        out; [] when it has none."""
        data = await self._call("GET", f"/projects/{project_id}/settings") or {}
        questions = data.get("example_questions") if isinstance(data, dict) else None
        if not isinstance(questions, list):
            return []
        return [q.strip() for q in questions if isinstance(q, str) and q.strip()]

    async def rename_conversation(self, project_id: str, session_id: str, name: str) -> None:
        """Give a conversation a new `name` (at most CONVERSATION_NAME_LIMIT characters)."""
        await self._call(
            "PUT",
            f"/projects/{project_id}/conversations/{session_id}",
            json_body={"name": name[:CONVERSATION_NAME_LIMIT]},
        )

    def _message_path(self, project_id: str, session_id: str) -> str:
        return f"/projects/{project_id}/conversations/{session_id}/messages"

    async def send_message(
        self, project_id: str, session_id: str, prompt: str, *, lang: str = "en"
    ) -> Answer:
        """The `stream=0` path: one JSON answer once CustomGPT has finished."""
        check_prompt(prompt)
        started = asyncio.get_running_loop().time()
        data = await self._call(
            "POST",
            self._message_path(project_id, session_id),
            json_body={"prompt": prompt, "response_source": "default"},
            params={"stream": "0", "lang": lang},
            headers=MESSAGE_HEADERS,
            # The whole answer is generated before anything comes back.
            seconds=max(self.request_timeout, self.first_chunk_timeout + self.idle_timeout),
        )
        data = data or {}
        self._answer_took(started, first_chunk=True, total=True)
        return Answer(
            text=model_text(str(data.get("openai_response") or "")),
            message_id=normalise_id(data.get("id")),
            session_id=_optional_id(data.get("session_id")) or session_id,
            citations=_citation_ids(data.get("citations")),
        )

    async def stream_message(
        self, project_id: str, session_id: str, prompt: str, *, lang: str = "en"
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield text chunks, then one Finish. Raises StreamInterrupted on an early end,
        StreamTimeout when CustomGPT goes quiet, StreamError when it reports an error,
        PromptTooLong (before sending anything) for a prompt over PROMPT_LIMIT."""
        check_prompt(prompt)
        url = f"{self._base}{self._message_path(project_id, session_id)}?stream=1&lang={lang}"
        source = _EventReader(
            url,
            pace=self.read_pace,
            option={"method": "POST"},
            session=_OneShotSession(self._session, self._http_error),
            reconnection_time=timedelta(0),
            max_connect_retry=0,
            json={"prompt": prompt, "response_source": "default"},
            headers={**self._headers, **MESSAGE_HEADERS, "Accept": "text/event-stream"},
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_chunk_deadline = started + self.first_chunk_timeout
        got_chunk = False
        # The text of the events already read, yielded as one chunk once they are all taken:
        # a read brings a dozen events of a few characters, and one chunk for the lot saves
        # the consumer a dozen round trips through this generator.
        pieces: list[str] = []
        try:
            # Timeouts wrap each wait, never a `yield`: the consumer's own awaits must not be
            # cancelled by CustomGPT's silence.
            async with asyncio.timeout_at(first_chunk_deadline):
                try:
                    await source.connect(0)
                except ConnectionError as exc:
                    # Not 200 + text/event-stream; the one-shot session raised real errors.
                    raise ServerError(0, "CustomGPT did not start a stream") from exc
            while True:
                data = source.pending()
                if data is None:
                    if pieces:
                        yield Chunk("".join(pieces))
                        pieces.clear()
                        continue
                    if source.ended:
                        raise StreamInterrupted(0, "the answer stream ended early")
                    # A paced read does not look for up to a pace: that is the bot's wait,
                    # not CustomGPT's silence.
                    idle_deadline = loop.time() + self.idle_timeout + self.read_pace
                    async with asyncio.timeout_at(
                        idle_deadline if got_chunk else first_chunk_deadline
                    ):
                        await self._read_more(source, paced=got_chunk)
                    continue
                parsed = parse_event_data(data)
                if isinstance(parsed, Chunk):
                    if not got_chunk:
                        self._answer_took(started, first_chunk=True, total=False)
                    pieces.append(parsed.text)
                    got_chunk = True
                    continue
                if parsed is None:
                    continue
                if pieces:  # the text read before an error or the end belongs to the answer
                    yield Chunk("".join(pieces))
                    pieces.clear()
                if isinstance(parsed, StreamError):
                    raise StreamError(0, self._redact(parsed.message))
                if source.skipped_frames:
                    log.warning("skipped %d oversized stream frame(s)", source.skipped_frames)
                self._answer_took(started, first_chunk=not got_chunk, total=True)
                yield replace(parsed, skipped_frames=source.skipped_frames)
                return
        except TimeoutError:
            if got_chunk:
                raise StreamTimeout("CustomGPT stopped sending", first_chunk=False) from None
            raise StreamTimeout("CustomGPT sent nothing", first_chunk=True) from None
        finally:
            await source.close()

    def _answer_took(self, started: float, *, first_chunk: bool, total: bool) -> None:
        """Time CustomGPT took, from the request to its first chunk and to its end (an answer
        without chunks, or not streamed, counts its end as its first chunk)."""
        seconds = asyncio.get_running_loop().time() - started
        if first_chunk:
            self._metrics.customgpt_first_chunk_seconds.observe(seconds)
        if total:
            self._metrics.customgpt_total_seconds.observe(seconds)

    @staticmethod
    async def _read_more(source: _EventReader, *, paced: bool) -> None:
        try:
            await source.read(paced=paced)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise StreamInterrupted(0, "the answer stream was cut off") from exc

    async def citation(self, project_id: str, citation_id: str) -> Citation:
        data = await self._call("GET", f"/projects/{project_id}/citations/{citation_id}") or {}
        title, url = data.get("title"), data.get("url")
        return Citation(
            title=str(title) if title else None,
            url=str(url) if url else None,
        )

    async def feedback(
        self, project_id: str, session_id: str, message_id: str, reaction: str
    ) -> None:
        await self._call(
            "PUT",
            f"{self._message_path(project_id, session_id)}/{message_id}/feedback",
            json_body={"reaction": reaction},
        )
