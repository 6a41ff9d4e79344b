"""CustomGPT.ai RAG API client: projects, conversations, messages (streamed or not), citations,
feedback. Every failure is a `CustomGPTError` subclass carrying what a user message needs.

Streaming goes through aiohttp-sse-client, which on its own would re-send the POST when a
stream ends (asking CustomGPT the same question twice) and would hide the status and body of
an HTTP error. `_OneShotSession` closes both holes: it performs exactly one request, turns a
non-200 answer into a typed error before the SSE parser sees it, and refuses the reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp_sse_client.client import EventSource, MessageEvent

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0  # seconds for any call but a message (projects, conversations, …)


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
    """CustomGPT is busy or the account is out of its allowance (429); see `retry_after`."""


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


def _citation_ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(c) for c in value if c is not None and str(c) != ""]


def _optional_id(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_event_data(data: str) -> StreamEvent | StreamError | None:
    """Interpret one SSE `data:` payload by its JSON `status` (never by the `event:` line,
    which data-only streams omit). Unknown statuses and empty chunks yield None."""
    try:
        payload = json.loads(data)
    except ValueError:
        log.debug("ignoring a non-JSON stream frame")
        return None
    if not isinstance(payload, dict):
        return None
    status = payload.get("status")
    if status == "progress":
        text = payload.get("message")
        return Chunk(text) if isinstance(text, str) and text else None
    if status == "finish":
        return Finish(
            message_id=_optional_id(payload.get("id")),
            session_id=_optional_id(payload.get("session_id")),
            citations=_citation_ids(payload.get("citations")),
        )
    if status == "error" or (status is None and "error" in payload):
        message = payload.get("message") or payload.get("error") or "the answer failed"
        return StreamError(0, str(message))
    return None


class _OneShotSession:
    """The session aiohttp-sse-client sees: one request only, HTTP errors made typed."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
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
            body = await response.text()
            response.release()
            raise error_for(response.status, body, response.headers)
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
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self.first_chunk_timeout = first_chunk_timeout
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        form: aiohttp.FormData | None = None,
        params: Mapping[str, str] | None = None,
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
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                body = await response.text()
                if response.status >= 400:
                    raise error_for(response.status, body, response.headers)
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
        form = aiohttp.FormData()
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

    def _message_path(self, project_id: str, session_id: str) -> str:
        return f"/projects/{project_id}/conversations/{session_id}/messages"

    async def send_message(
        self, project_id: str, session_id: str, prompt: str, *, lang: str = "en"
    ) -> Answer:
        """The `stream=0` path: one JSON answer once CustomGPT has finished."""
        data = await self._call(
            "POST",
            self._message_path(project_id, session_id),
            json_body={"prompt": prompt, "response_source": "default"},
            params={"stream": "0", "lang": lang},
            # The whole answer is generated before anything comes back.
            seconds=max(self.request_timeout, self.first_chunk_timeout + self.idle_timeout),
        )
        data = data or {}
        return Answer(
            text=str(data.get("openai_response") or ""),
            message_id=_optional_id(data.get("id")),
            session_id=_optional_id(data.get("session_id")) or session_id,
            citations=_citation_ids(data.get("citations")),
        )

    async def stream_message(
        self, project_id: str, session_id: str, prompt: str, *, lang: str = "en"
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield text chunks, then one Finish. Raises StreamInterrupted on an early end,
        StreamTimeout when CustomGPT goes quiet, StreamError when it reports an error."""
        url = f"{self._base}{self._message_path(project_id, session_id)}?stream=1&lang={lang}"
        opened = False

        def on_open() -> None:
            nonlocal opened
            opened = True

        def on_error() -> None:
            # Called when an open stream runs dry, just before the library would reconnect.
            if opened:
                raise StreamInterrupted(0, "the answer stream ended early")

        source = EventSource(
            url,
            option={"method": "POST"},
            session=_OneShotSession(self._session),
            reconnection_time=timedelta(0),
            max_connect_retry=0,
            on_open=on_open,
            on_error=on_error,
            json={"prompt": prompt, "response_source": "default"},
            headers={**self._headers, "Accept": "text/event-stream"},
        )
        loop = asyncio.get_running_loop()
        first_chunk_deadline = loop.time() + self.first_chunk_timeout
        got_chunk = False
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
                deadline = loop.time() + self.idle_timeout if got_chunk else first_chunk_deadline
                async with asyncio.timeout_at(deadline):
                    event = await self._next_event(source)
                if event is None:
                    raise StreamInterrupted(0, "the answer stream ended early")
                parsed = parse_event_data(event.data)
                if isinstance(parsed, StreamError):
                    raise parsed
                if parsed is None:
                    continue
                yield parsed
                if isinstance(parsed, Finish):
                    return
                got_chunk = True
        except TimeoutError:
            if got_chunk:
                raise StreamTimeout("CustomGPT stopped sending", first_chunk=False) from None
            raise StreamTimeout("CustomGPT sent nothing", first_chunk=True) from None
        finally:
            await source.close()

    @staticmethod
    async def _next_event(source: EventSource) -> MessageEvent | None:
        try:
            return await source.__anext__()
        except StopAsyncIteration:
            return None
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
