"""A fake CustomGPT.ai RAG API (v1): a real HTTP server on 127.0.0.1 for tests and benchmarks.

The bot reaches it through its CustomGPT base-URL setting (`api_url`), so its real HTTP and
SSE client code runs unchanged. Answers are scripted per message request
(`queue_answer`) to reproduce what the bot must survive: HTTP errors before the stream,
streams cut mid-answer, `error` frames, odd frames, and answers paused half-way so a test can
look at the in-between state without sleeping.

Every request is recorded (`requests`, `prompts()`): the SSE-client pitfall in DESIGN.md is a
silent second POST of the same question, and a test proves its absence by counting prompts.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web

from tests.fakes.server import DEFAULT_BACKLOG, Clock, LoopbackServer, MonotonicClock

API_PREFIX = "/api/v1"
PER_PAGE = 20
FIRST_CREATED_PROJECT_ID = 1000
REACTIONS = ("liked", "disliked", "neutral")
AUTH_ERROR = "API Token is either missing or invalid"
#: CustomGPT's limit on a prompt, in characters.
PROMPT_LIMIT = 8000
#: CustomGPT's limit on a conversation's name, in characters.
CONVERSATION_NAME_LIMIT = 255

_MESSAGES_PATH = re.compile(r"^/projects/\d+/conversations/(?P<session_id>[^/]+)/messages$")
_TIMESTAMP = "2024-01-01T00:00:00.000000Z"

Stats = tuple[int, int, int]
#: How a message id is written in an answer: 7, 7.0 or "7.0" (all seen from the real API).
IdForm = Literal["int", "float", "string"]


@dataclass
class CGRequest:
    """One request as the fake received it.

    `path` is the part after `/api/v1` (e.g. `/projects/1/conversations`); `body` is the JSON
    object or the form fields (uploaded files appear as their file name), `{}` when there is
    none; header names are lower-cased. `status` is filled in once the answer is complete
    (for a stream: once it ended).
    """

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    headers: dict[str, str]
    status: int | None = None

    @property
    def key(self) -> str | None:
        """The bearer key the request carried (None without one)."""
        scheme, _, key = self.headers.get("authorization", "").partition(" ")
        return key or None if scheme == "Bearer" else None


@dataclass
class ScriptedAnswer:
    """What the next message request gets; see `FakeCustomGPT.queue_answer`.

    The events let a test follow an answer without sleeping: `reached_hold` is set when the
    fake pauses at `hold_after` and waits for `release`; `finished` is set once the fake is
    done with the request, whatever the `outcome`.
    """

    chunks: list[str]
    citations: list[str | int | float] = field(default_factory=list)
    message_id: int | None = None
    message_id_form: IdForm = "int"
    chunk_delay: float = 0.0
    cut_after: int | None = None
    error_status: int | None = None
    error_message: str | None = None
    retry_after: int | None = None
    stream_error_after: int | None = None
    stream_error_message: str = "Something went wrong"
    hold_after: int | None = None
    raw_frames: list[str | bytes] | None = None

    release: asyncio.Event = field(default_factory=asyncio.Event)
    reached_hold: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    #: The request that consumed this answer.
    request: CGRequest | None = None
    #: "finished", "json", "http_error", "cut", "stream_error", "raw" or "disconnected".
    outcome: str | None = None
    #: When each chunk was written to the stream (the fake's clock), for benchmarks.
    sent_at: list[float] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The whole answer, as `openai_response` carries it in non-stream mode."""
        return "".join(self.chunks)

    @property
    def message_id_json(self) -> int | float | str | None:
        """The message id as the answer writes it (`message_id_form`)."""
        if self.message_id is None or self.message_id_form == "int":
            return self.message_id
        if self.message_id_form == "float":
            return float(self.message_id)
        return f"{self.message_id}.0"


@dataclass
class FakeProject:
    """A project and its scripted indexing progress."""

    id: int
    name: str
    sitemap_path: str
    #: 1, 0, or None (null: seen from the real API on fresh projects).
    is_chat_active: int | None
    stats: Stats = (0, 0, 0)
    index_steps: deque[Stats] = field(default_factory=deque)
    #: The settings' starter questions (`example_questions`).
    example_questions: list[str] = field(default_factory=list)
    #: The account's key that owns it; None: the main account (`FakeCustomGPT.api_key`).
    account: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_name": self.name,
            "sitemap_path": self.sitemap_path,
            "is_chat_active": self.is_chat_active,
            "user_id": 1,
            "team_id": 1,
            "type": "SITEMAP",
            "is_shared": False,
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
        }


@dataclass
class FakeCitation:
    id: int
    title: str | None
    url: str | None
    description: str | None


@dataclass
class _Failure:
    pattern: re.Pattern[str]
    status: int
    message: str | None
    retry_after: int | None
    remaining: int


@dataclass
class Hold:
    """A request held before it is answered: `reached` when it arrives, `release` to go on."""

    pattern: re.Pattern[str]
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


_RECORD = web.RequestKey("record", CGRequest)


class ApiError(Exception):
    """An error answer: raised by a handler, sent as CustomGPT's JSON error body."""

    def __init__(self, status: int, message: str | None = None, retry_after: int | None = None):
        super().__init__(status, message)
        self.status = status
        self.message = message or _default_message(status)
        self.retry_after = retry_after

    def response(self) -> web.Response:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        body = {"status": "error", "data": {"code": self.status, "message": self.message}}
        return web.json_response(body, status=self.status, headers=headers)


class FakeCustomGPT(LoopbackServer):
    """CustomGPT.ai API v1 on a free local port; use `async with FakeCustomGPT() as cgpt:`.

    Every request needs `Authorization: Bearer <key>` of a known account, else 401 with
    CustomGPT's error body. `api_key` is the main account's; `add_account` adds others. As on
    CustomGPT, a key sees its own account's projects only: another account's project (and its
    conversations, messages, citations) is "not found", and listing shows only the key's own.
    Nothing exists until the test adds it (`add_project`) or the bot creates it.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        clock: Clock | None = None,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.api_key = api_key
        #: Keys of the other accounts (`add_account`).
        self.accounts: set[str] = set()
        self.backlog = backlog
        self.clock: Clock = clock or MonotonicClock()
        self.requests: list[CGRequest] = []
        self.projects: dict[int, FakeProject] = {}
        #: session_id → project id.
        self.conversations: dict[str, int] = {}
        #: session_id → the conversation's name now (as created, or renamed).
        self.conversation_names: dict[str, str | None] = {}
        #: (project_id, session_id, message_id, reaction), in order received.
        self.feedback: list[tuple[int, str, int, str]] = []
        #: Steps given to every project created by `POST /projects` (see `script_indexing`).
        self.default_index_steps: list[Stats] = []
        #: Every answer handed out (scripted or default), in order.
        self.served: list[ScriptedAnswer] = []

        self._answers: deque[ScriptedAnswer] = deque()
        self._failures: list[_Failure] = []
        self._holds: list[Hold] = []
        self._all_holds: list[Hold] = []
        self._citations: dict[tuple[int, int], FakeCitation] = {}
        #: message id → session id, for feedback.
        self._messages: dict[int, str] = {}
        self._next_project_id = FIRST_CREATED_PROJECT_ID
        self._next_conversation_id = 1
        self._next_message_id = 1
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind a free port on 127.0.0.1 and start answering."""
        app = web.Application(middlewares=[self._middleware])
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", "/projects", self._list_projects),
            ("POST", "/projects", self._create_project),
            ("GET", "/projects/{project_id}", self._get_project),
            ("GET", "/projects/{project_id}/stats", self._get_stats),
            ("GET", "/projects/{project_id}/settings", self._get_settings),
            ("POST", "/projects/{project_id}/conversations", self._create_conversation),
            (
                "PUT",
                "/projects/{project_id}/conversations/{session_id}",
                self._update_conversation,
            ),
            (
                "POST",
                "/projects/{project_id}/conversations/{session_id}/messages",
                self._send_message,
            ),
            (
                "PUT",
                "/projects/{project_id}/conversations/{session_id}/messages/{message_id}/feedback",
                self._put_feedback,
            ),
            ("GET", "/projects/{project_id}/citations/{citation_id}", self._get_citation),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API_PREFIX + path, handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=self.backlog)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Release paused answers, then close the server; safe to call twice."""
        for answer in (*self.served, *self._answers):
            answer.release.set()
        for hold in self._all_holds:
            hold.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        """`http://127.0.0.1:PORT/api/v1`, no trailing slash, like CustomGPT's base URL."""
        if self._port is None:
            raise RuntimeError("FakeCustomGPT is not started")
        return f"http://127.0.0.1:{self._port}{API_PREFIX}"

    # -- test controls -------------------------------------------------------------------

    def add_account(self, key: str) -> None:
        """Another CustomGPT account, reached with `key`: it sees only its own projects."""
        self.accounts.add(key)

    def add_project(
        self,
        project_id: int,
        name: str,
        active: bool = True,
        *,
        sitemap_path: str = "https://example.com/sitemap.xml",
        account: str | None = None,
    ) -> None:
        """Make a project exist, ready to answer unless `active=False`, in the account of
        the key `account` (None: the main account)."""
        if account is not None and account not in self.accounts:
            raise ValueError("add_account first")
        self.projects[project_id] = FakeProject(
            project_id, name, sitemap_path, int(active), account=account
        )

    def set_active(self, project_id: int, active: bool | None) -> None:
        """Set `is_chat_active` (1, 0, or null for None)."""
        self.projects[project_id].is_chat_active = None if active is None else int(active)

    def set_example_questions(self, project_id: int, questions: Sequence[str]) -> None:
        """The starter questions the project's settings carry."""
        self.projects[project_id].example_questions = list(questions)

    def set_stats(self, project_id: int, found: int, crawled: int, indexed: int) -> None:
        """What `GET /projects/{id}/stats` answers once no scripted step is left."""
        self.projects[project_id].stats = (found, crawled, indexed)

    def script_indexing(self, project_id: int, steps: Sequence[Stats]) -> None:
        """Indexing progress: each stats request consumes the next (found, crawled, indexed).

        The project is inactive while steps remain and becomes active as the last one is
        served, so a poller sees progress, then `is_chat_active: 1`.
        """
        project = self.projects[project_id]
        project.index_steps = deque(steps)
        if project.index_steps:
            project.is_chat_active = 0

    def add_citation(
        self,
        project_id: int,
        citation_id: str | int,
        title: str | None,
        url: str | None,
        description: str | None = None,
    ) -> None:
        """Make a citation resolvable by its integer id (`"12061.0"` registers 12061): the
        look-up path takes an integer only, as the OpenAPI spec says."""
        number = int(float(citation_id))
        self._citations[(project_id, number)] = FakeCitation(number, title, url, description)

    def queue_answer(
        self,
        chunks: list[str],
        citations: Sequence[str | int | float] = (),
        message_id: int | None = None,
        *,
        message_id_form: IdForm = "int",
        chunk_delay: float = 0.0,
        cut_after: int | None = None,
        error_status: int | None = None,
        error_message: str | None = None,
        retry_after: int | None = None,
        stream_error_after: int | None = None,
        stream_error_message: str = "Something went wrong",
        hold_after: int | None = None,
        raw_frames: list[str | bytes] | None = None,
    ) -> ScriptedAnswer:
        """Script the next message request (answers are consumed in queue order).

        - `error_status`: answer that HTTP status with the JSON error body (plus
          `Retry-After` when `retry_after` is given) instead of an answer.
        - `cut_after=N`: start + N chunks, then the connection is closed with the chunked
          body unfinished (no finish event). In stream=0 mode: closed with no answer.
        - `stream_error_after=N`: after N chunks, a data-only `{"status":"error"}` frame,
          then the stream ends normally.
        - `hold_after=N`: after N chunks, set `reached_hold` and wait for `release` (in
          stream=0 mode: before answering). `stop()` releases every hold.
        - `chunk_delay`: seconds between chunks (benchmarks only; tests use `hold_after`).
        - `raw_frames`: written verbatim instead of start/progress/finish (stream=1 only);
          bytes go out as they are (invalid UTF-8, a frame of megabytes, no final blank line).
        - `message_id_form`: write the message id as 7 (default), 7.0 or "7.0".
        With none of these, the answer streams `chunks` then finishes with `message_id`
        (auto-numbered when None) and `citations`.
        """
        answer = ScriptedAnswer(
            chunks=list(chunks),
            citations=list(citations),
            message_id=message_id,
            message_id_form=message_id_form,
            chunk_delay=chunk_delay,
            cut_after=cut_after,
            error_status=error_status,
            error_message=error_message,
            retry_after=retry_after,
            stream_error_after=stream_error_after,
            stream_error_message=stream_error_message,
            hold_after=hold_after,
            raw_frames=raw_frames,
        )
        self._answers.append(answer)
        return answer

    def fail_next(
        self,
        path_regex: str,
        status: int,
        message: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` requests whose path (after /api/v1) matches `path_regex`
        (`re.search`; anchor with ^…$ to be exact) answer this error instead."""
        self._failures.append(_Failure(re.compile(path_regex), status, message, retry_after, times))

    def hold_next(self, path_regex: str) -> Hold:
        """Hold the next request whose path matches until the test releases it (a slow
        CustomGPT, seen deterministically). `stop()` releases every hold."""
        hold = Hold(re.compile(path_regex))
        self._holds.append(hold)
        self._all_holds.append(hold)
        return hold

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10,  # noqa: ASYNC109 - a deadline per wait reads best in tests
    ) -> None:
        """Return as soon as `predicate()` holds; re-checked on every request received and
        every request answered (streams included). AssertionError on timeout."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            received = ", ".join(f"{r.method} {r.path} ({r.status})" for r in self.requests)
            raise AssertionError(
                f"FakeCustomGPT: condition not met within {timeout}s; "
                f"requests received: [{received}]"
            ) from None

    # -- views ---------------------------------------------------------------------------

    def prompts(self, session_id: str | None = None) -> list[str]:
        """Prompts received by the messages endpoint (one conversation, or all), in order."""
        found = []
        for r in self.requests:
            match = _MESSAGES_PATH.match(r.path)
            if r.method != "POST" or match is None:
                continue
            if session_id is None or match["session_id"] == session_id:
                found.append(str(r.body.get("prompt")))
        return found

    # -- HTTP plumbing -------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Record, authenticate and inject one-off failures in front of every endpoint."""
        path = request.path.removeprefix(API_PREFIX)
        record = CGRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            body={},
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(record)
        request[_RECORD] = record
        try:
            record.body = await _read_body(request)
            await self._notify()
            if record.key is None or (
                record.key != self.api_key and record.key not in self.accounts
            ):
                raise ApiError(401, AUTH_ERROR)
            self._raise_scripted_failure(path)
            await self._wait_if_held(path)
            response = await handler(request)
        except ApiError as e:
            response = e.response()
        except web.HTTPException as e:
            response = ApiError(e.status, e.reason).response()
        record.status = response.status
        await self._notify()
        return response

    async def _wait_if_held(self, path: str) -> None:
        hold = next((h for h in self._holds if h.pattern.search(path)), None)
        if hold is not None:
            self._holds.remove(hold)
            hold.reached.set()
            await hold.release.wait()

    def _raise_scripted_failure(self, path: str) -> None:
        for failure in self._failures:
            if failure.remaining > 0 and failure.pattern.search(path):
                failure.remaining -= 1
                raise ApiError(failure.status, failure.message, failure.retry_after)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _account(self, request: web.Request) -> str | None:
        """The account of the request's (already checked) key; None: the main account."""
        key = request[_RECORD].key
        return None if key == self.api_key else key

    def _project(self, request: web.Request) -> FakeProject:
        project_id = _int_or_none(request.match_info["project_id"])
        project = None if project_id is None else self.projects.get(project_id)
        if project is None or project.account != self._account(request):
            raise ApiError(404, "Project not found")
        return project

    def _session(self, request: web.Request, project: FakeProject) -> str:
        session_id = request.match_info["session_id"]
        if self.conversations.get(session_id) != project.id:
            raise ApiError(404, "Conversation not found")
        return session_id

    # -- projects ------------------------------------------------------------------------

    async def _list_projects(self, request: web.Request) -> web.Response:
        page = max(1, _int_or_none(request.query.get("page", "1")) or 1)
        account = self._account(request)
        projects = sorted(
            (p for p in self.projects.values() if p.account == account), key=lambda p: p.id
        )
        last_page = max(1, -(-len(projects) // PER_PAGE))
        start = (page - 1) * PER_PAGE
        return _success(
            {
                "current_page": page,
                "data": [p.as_json() for p in projects[start : start + PER_PAGE]],
                "last_page": last_page,
                "per_page": PER_PAGE,
                "total": len(projects),
            }
        )

    async def _create_project(self, request: web.Request) -> web.Response:
        if request.content_type != "multipart/form-data":
            # The OpenAPI spec documents this endpoint as multipart/form-data only.
            raise ApiError(415, "The request must be multipart/form-data.")
        body = request[_RECORD].body
        name = body.get("project_name")
        if not name:
            raise ApiError(400, "The project name field is required.")
        while self._next_project_id in self.projects:
            self._next_project_id += 1
        project = FakeProject(
            id=self._next_project_id,
            name=str(name),
            sitemap_path=str(body.get("sitemap_path", "")),
            is_chat_active=0,
            index_steps=deque(self.default_index_steps),
            account=self._account(request),
        )
        self.projects[project.id] = project
        return _success(project.as_json(), status=201)

    async def _get_project(self, request: web.Request) -> web.Response:
        return _success(self._project(request).as_json())

    async def _get_settings(self, request: web.Request) -> web.Response:
        project = self._project(request)
        return _success(
            {
                "chatbot_avatar": None,
                "chatbot_background": None,
                "default_prompt": "Ask me anything",
                "example_questions": list(project.example_questions),
                "response_source": "default",
                "chatbot_msg_lang": "en",
                "persona_instructions": None,
                "enable_citations": 3,
                "is_loading_indicator_enabled": True,
            }
        )

    async def _get_stats(self, request: web.Request) -> web.Response:
        project = self._project(request)
        if project.index_steps:
            project.stats = project.index_steps.popleft()
            if not project.index_steps:
                project.is_chat_active = 1
        found, crawled, indexed = project.stats
        return _success(
            {
                "pages_found": found,
                "pages_crawled": crawled,
                "pages_indexed": indexed,
                "crawl_credits_used": crawled,
                "query_credits_used": 0,
                "total_queries": 0,
                "total_words_indexed": indexed * 500,
                "total_storage_crawl": 0,
                "total_storage_upload": 0,
            }
        )

    # -- conversations and messages ------------------------------------------------------

    async def _create_conversation(self, request: web.Request) -> web.Response:
        project = self._project(request)
        name = request[_RECORD].body.get("name")
        session_id = str(uuid.uuid4())
        conversation_id = self._next_conversation_id
        self._next_conversation_id += 1
        self.conversations[session_id] = project.id
        self.conversation_names[session_id] = None if name is None else str(name)
        return _success(
            {
                "id": conversation_id,
                "session_id": session_id,
                "name": name,
                "project_id": project.id,
                "created_at": _TIMESTAMP,
            },
            status=201,
        )

    async def _update_conversation(self, request: web.Request) -> web.Response:
        """`PUT …/conversations/{sessionId}`: a JSON body with a `name` of 1 to 255
        characters, nothing else (stricter than CustomGPT, which may ignore other fields)."""
        project = self._project(request)
        session_id = self._session(request, project)
        if request.content_type != "application/json":
            raise ApiError(415, "The request must be application/json.")
        body = request[_RECORD].body
        name = body.get("name")
        if set(body) != {"name"} or not isinstance(name, str) or not name.strip():
            raise ApiError(400, "The name field is required.")
        if len(name) > CONVERSATION_NAME_LIMIT:
            raise ApiError(400, f"The name may not be greater than {CONVERSATION_NAME_LIMIT}.")
        self.conversation_names[session_id] = name
        return _success(
            {
                "id": 1,
                "session_id": session_id,
                "name": name,
                "project_id": project.id,
                "created_at": _TIMESTAMP,
                "updated_at": _TIMESTAMP,
            }
        )

    async def _send_message(self, request: web.Request) -> web.StreamResponse:
        project = self._project(request)
        session_id = self._session(request, project)
        record = request[_RECORD]
        prompt = record.body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise ApiError(400, "The prompt field is required.")
        if len(prompt) > PROMPT_LIMIT:
            raise ApiError(400, f"The prompt may not be greater than {PROMPT_LIMIT} characters.")

        if self._answers:
            answer = self._answers.popleft()
        else:
            answer = ScriptedAnswer(["You asked: ", prompt])
        answer.request = record
        self.served.append(answer)
        try:
            if answer.error_status is not None:
                answer.outcome = "http_error"
                raise ApiError(answer.error_status, answer.error_message, answer.retry_after)
            if answer.message_id is None:
                answer.message_id = self._next_message_id
                self._next_message_id += 1
            self._messages[answer.message_id] = session_id
            if request.query.get("stream", "0") in ("1", "true"):
                return await self._stream(request, answer, prompt, session_id)
            return await self._answer_json(request, answer, prompt, session_id)
        finally:
            answer.finished.set()

    async def _answer_json(
        self, request: web.Request, answer: ScriptedAnswer, prompt: str, session_id: str
    ) -> web.StreamResponse:
        """stream=0: the whole answer at once (after a hold, if one is scripted)."""
        if answer.hold_after is not None:
            answer.reached_hold.set()
            await answer.release.wait()
        if answer.cut_after is not None:
            answer.outcome = "cut"
            return await _abort(request)
        answer.outcome = "json"
        return _success(
            {
                "id": answer.message_id_json,
                "session_id": session_id,
                "prompt": prompt,
                "openai_response": answer.text,
                "citations": answer.citations,
                "response_feedback": None,
                "created_at": _TIMESTAMP,
                "updated_at": _TIMESTAMP,
            }
        )

    async def _stream(
        self, request: web.Request, answer: ScriptedAnswer, prompt: str, session_id: str
    ) -> web.StreamResponse:
        """stream=1: Server-Sent Events, shaped as DESIGN.md describes."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            if answer.raw_frames is not None:
                for frame in answer.raw_frames:
                    await response.write(frame if isinstance(frame, bytes) else frame.encode())
                answer.outcome = "raw"
            else:
                await response.write(_frame("start", {"status": "start", "prompt": prompt}))
                for sent in range(len(answer.chunks) + 1):
                    if sent == answer.hold_after:
                        answer.reached_hold.set()
                        await answer.release.wait()
                    if sent == answer.cut_after:
                        answer.outcome = "cut"
                        return await _abort(request, response)
                    if sent == answer.stream_error_after:
                        error = {"status": "error", "message": answer.stream_error_message}
                        await response.write(_frame(None, error))
                        answer.outcome = "stream_error"
                        break
                    if sent == len(answer.chunks):
                        finish = {
                            "status": "finish",
                            "id": answer.message_id_json,
                            "session_id": session_id,
                            "citations": answer.citations,
                        }
                        await response.write(_frame("finish", finish))
                        answer.outcome = "finished"
                        break
                    if sent and answer.chunk_delay:
                        await asyncio.sleep(answer.chunk_delay)
                    chunk = {"status": "progress", "message": answer.chunks[sent]}
                    await response.write(_frame("progress", chunk))
                    answer.sent_at.append(self.clock.now())
            await response.write_eof()
        except ConnectionResetError:
            # The bot hung up (cancelled answer, or shutdown): nothing left to send.
            answer.outcome = "disconnected"
        return response

    # -- citations and feedback ----------------------------------------------------------

    async def _get_citation(self, request: web.Request) -> web.Response:
        project = self._project(request)
        citation_id = request.match_info["citation_id"]
        if not citation_id.isdecimal():
            # An integer in the OpenAPI spec: "12061.0" is refused rather than guessed at.
            raise ApiError(400, "The citation id must be an integer.")
        citation = self._citations.get((project.id, int(citation_id)))
        if citation is None:
            raise ApiError(404, "Citation not found")
        return _success(
            {
                "id": citation.id,
                "title": citation.title,
                "url": citation.url,
                "description": citation.description,
                "image": None,
            }
        )

    async def _put_feedback(self, request: web.Request) -> web.Response:
        project = self._project(request)
        session_id = self._session(request, project)
        message_id = _int_or_none(request.match_info["message_id"])
        if message_id is None or self._messages.get(message_id) != session_id:
            raise ApiError(404, "Message not found")
        reaction = request[_RECORD].body.get("reaction")
        if reaction not in REACTIONS:
            raise ApiError(400, f"The reaction must be one of: {', '.join(REACTIONS)}.")
        self.feedback.append((project.id, session_id, message_id, str(reaction)))
        return _success(
            {
                "id": message_id,
                "session_id": session_id,
                "response_feedback": {"reaction": reaction},
                "updated_at": _TIMESTAMP,
            }
        )


def _success(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response({"status": "success", "data": data}, status=status)


def _frame(event: str | None, data: dict[str, Any]) -> bytes:
    """One SSE frame; `event=None` gives a data-only frame, as the OpenAPI spec describes."""
    head = "" if event is None else f"event: {event}\n"
    return f"{head}data: {json.dumps(data)}\n\n".encode()


async def _abort(
    request: web.Request, response: web.StreamResponse | None = None
) -> web.StreamResponse:
    """Drop the connection mid-answer: what the bot sees when CustomGPT's stream dies.

    `close()` (not `abort()`) so that chunks already written still reach the client before
    the socket closes; the chunked body is never terminated, so the client reads an early end
    of payload rather than a clean finish.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return response if response is not None else web.StreamResponse()


async def _read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object or form fields of a request; `{}` when there is no body."""
    if not request.body_exists:
        return {}
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise ApiError(400, "Invalid JSON body") from None
        return body if isinstance(body, dict) else {"_json": body}
    form = await request.post()
    return {k: _form_value(v) for k, v in form.items()}


def _form_value(value: str | bytes | bytearray | web.FileField) -> str:
    """A form field as text; an uploaded file (e.g. a sitemap) as its file name."""
    if isinstance(value, web.FileField):
        return value.filename
    if isinstance(value, bytes | bytearray):
        return value.decode(errors="replace")
    return value


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _default_message(status: int) -> str:
    if status == 401:
        return AUTH_ERROR
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
