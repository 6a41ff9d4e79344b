"""A fake Slack Web API: a real HTTP server on 127.0.0.1 that the unmodified bot talks to.

The bot reaches it through its Slack base-URL setting (`api_url`), so everything between the
bot's code and the socket — slack_sdk's request building, JSON/form encoding, error parsing,
`Retry-After` handling — runs exactly as in production. The fake enforces the limits the bot
must cope with (message length, block rules, Slack's rate limits as token buckets, failures
on demand) and keeps what a person in the workspace would see: every message with its full
edit history, and the reactions on every message.

Tests synchronise with `wait_for`, which wakes on every recorded call instead of polling.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import aiohttp
from aiohttp import web

from tests.fakes.server import DEFAULT_BACKLOG, Clock, LoopbackServer, MonotonicClock

#: Real Slack limits (see DESIGN.md): what the fake rejects, so the bot proves it splits.
MAX_BLOCKS = 50
#: What the app's manifest asks for: a token installed from it has these scopes.
BOT_SCOPES = (
    "app_mentions:read",
    "chat:write",
    "im:history",
    "channels:history",
    "groups:history",
    "mpim:history",
    "commands",
    "reactions:write",
    "assistant:write",
    "users:read",
)
MAX_SECTION_TEXT = 3000
MAX_MARKDOWN_BLOCK_TEXT = 12000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_VALUE = 2000
MAX_MARKDOWN_TEXT = 12000  # `markdown_text` of one stream call (or its chunks' together)
MAX_LOADING_MESSAGES = 10
#: Slack publishes no length for a loading message or the status itself; the fake holds
#: them to one short line, stricter than any Slack is known to enforce.
MAX_LOADING_MESSAGE = 100
MAX_STATUS = 100
#: chat.*Stream `chunks`: each chunk type with the fields it may carry and those it must.
CHUNK_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "markdown_text": (frozenset({"type", "text"}), frozenset({"type", "text"})),
    "task_update": (
        frozenset({"type", "id", "title", "status", "details", "output", "sources"}),
        frozenset({"type", "id", "title", "status"}),
    ),
    "plan_update": (frozenset({"type", "title"}), frozenset({"type", "title"})),
    "blocks": (frozenset({"type", "blocks"}), frozenset({"type", "blocks"})),
}
TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})
TASK_DISPLAY_MODES = frozenset({"timeline", "plan"})
#: A task's `details` and `output` (Slack's limit), held to its `title`, its id and a plan's
#: title too (no figure published for those: stricter).
MAX_TASK_TEXT = 256
MAX_CHUNKS = 50  # chunks in one call: no figure is published; as many as a message's blocks
#: Block Kit's limits on a view (a modal from views.open, the Home tab from views.publish).
MAX_VIEW_BLOCKS = 100
MAX_VIEW_TITLE = 24  # a modal's title, submit and close texts
MAX_HEADER_TEXT = 150
MAX_CALLBACK_ID = 255
MAX_PRIVATE_METADATA = 3000
MAX_INPUT_LENGTH = 3000  # plain_text_input's max_length
MAX_SUGGESTED_PROMPTS = 4

#: What a Slack message ts looks like (`1700000000.000100`); anything else names no message.
SLACK_TS = re.compile(r"^\d{10}\.\d{6}$")

#: Methods Slack answers without a token.
NO_TOKEN_METHODS = frozenset({"api.test", "oauth.v2.access"})

_FIRST_TS_SECONDS = 1_700_000_000
_TS_STEP_MICROSECONDS = 100

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `burst` calls at once, refilled continuously at `per_minute`."""

    burst: int
    per_minute: float

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(frozen=True)
class SlackLimits:
    """Which calls Slack throttles and how; None leaves a bucket out (unlimited).

    Slack limits each method per workspace (per app); `chat.postMessage` is limited per
    channel as well. A call needs a token from every bucket it draws on (see `buckets_for`),
    and a refused call takes none. `as_http_200` answers refusals with HTTP 200
    `ok: false` instead of HTTP 429, the other shape Slack has been seen to use.
    """

    chat_update: Bucket | None = None
    post_per_channel: Bucket | None = None
    post_per_workspace: Bucket | None = None
    #: reactions.add and reactions.remove, each its own bucket (Tier 3).
    reactions: Bucket | None = None
    post_ephemeral: Bucket | None = None
    #: chat.startStream and chat.stopStream, each its own bucket (Tier 2).
    stream_start_stop: Bucket | None = None
    #: chat.appendStream (Tier 4).
    stream_append: Bucket | None = None
    set_status: Bucket | None = None
    #: views.publish (Tier 4).
    views_publish: Bucket | None = None
    #: assistant.threads.setSuggestedPrompts and setTitle, each its own bucket (Tier 4).
    assistant_threads: Bucket | None = None
    #: Every other Web API method, one bucket per method.
    default: Bucket | None = None
    as_http_200: bool = False

    @classmethod
    def slack(cls, *, as_http_200: bool = False) -> SlackLimits:
        """Slack's published shape (tiers per method; bursts are Slack's "sporadic bursts
        welcome", made concrete): chat.update 20 at once then 50/min per workspace;
        chat.postMessage 5 at once then 1/s per channel, within 25 at once then 300/min per
        workspace; reactions 20 then 50/min; chat.startStream and chat.stopStream (Tier 2)
        5 then 20/min each; chat.appendStream (Tier 4) 20 then 100/min."""
        tier2, tier3, tier4 = Bucket(5, 20), Bucket(20, 50), Bucket(20, 100)
        return cls(
            chat_update=tier3,
            post_per_channel=Bucket(5, 60),
            post_per_workspace=Bucket(25, 300),
            reactions=tier3,
            post_ephemeral=tier4,
            stream_start_stop=tier2,
            stream_append=tier4,
            set_status=tier3,
            views_publish=tier4,
            assistant_threads=tier4,
            default=tier3,
            as_http_200=as_http_200,
        )

    def buckets_for(self, method: str, channel: str | None) -> Iterator[tuple[str, Bucket]]:
        """The buckets a call draws on, each with the key of its state (method, scope)."""
        if method == "chat.postMessage":
            if self.post_per_channel is not None and channel:
                yield f"{method}@{channel}", self.post_per_channel
            if self.post_per_workspace is not None:
                yield method, self.post_per_workspace
            return
        named = {
            "chat.update": self.chat_update,
            "reactions.add": self.reactions,
            "reactions.remove": self.reactions,
            "chat.postEphemeral": self.post_ephemeral,
            "chat.startStream": self.stream_start_stop,
            "chat.stopStream": self.stream_start_stop,
            "chat.appendStream": self.stream_append,
            "assistant.threads.setStatus": self.set_status,
            "views.publish": self.views_publish,
            "assistant.threads.setSuggestedPrompts": self.assistant_threads,
            "assistant.threads.setTitle": self.assistant_threads,
        }
        bucket = named[method] if method in named else self.default
        if bucket is not None:
            yield method, bucket


class _Tokens:
    """The state of one bucket: tokens left at `at`, refilled continuously."""

    def __init__(self, bucket: Bucket, now: float) -> None:
        self.bucket = bucket
        self.tokens = float(bucket.burst)
        self.at = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.at)
        self.tokens = min(float(self.bucket.burst), self.tokens + elapsed * self.bucket.per_second)
        self.at = now

    def wait(self) -> float:
        """Seconds until one token is available (0 when one is there now)."""
        if self.tokens >= 1.0:
            return 0.0
        if self.bucket.per_second <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.bucket.per_second


@dataclass
class SlackCall:
    """One Web API call as the fake received it, and the HTTP status it answered with."""

    index: int
    method: str
    params: dict[str, Any]
    status: int
    #: The bearer token (or `token` field) the call carried.
    token: str | None = None
    #: The `error` of an `ok: false` answer, None when the answer was ok (or not JSON).
    error: str | None = None
    #: When the fake received it, on the fake's clock.
    at: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the call did what it asked (HTTP 200 and not an `ok: false` answer)."""
        return self.status == 200 and self.error is None

    @property
    def ratelimited(self) -> bool:
        """Refused for its rate (HTTP 429, or HTTP 200 `ratelimited`)."""
        return self.status == 429 or self.error == "ratelimited"


@dataclass
class FakeMessage:
    """A message as it stands in the channel now, plus every version it went through.

    `edits` starts with the posted version and gains one `(text, blocks)` snapshot per
    accepted change, so a test can check that the final answer landed and that no edit
    ever erased what was already shown. `edited_at[i]` is when `edits[i]` was made (the
    fake's clock), so a benchmark can tell when a reader first saw a piece of text.
    """

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]] | None
    edits: list[tuple[str, list[dict[str, Any]] | None]] = field(default_factory=list)
    edited_at: list[float] = field(default_factory=list)
    deleted: bool = False
    #: True between chat.startStream and chat.stopStream (Slack's native streaming).
    streaming: bool = False
    #: The user pressed Stop on the native stream.
    stopped_by_user: bool = False
    #: chat.startStream's recipient (team, user): in a channel, the one person who sees the
    #: stream grow (others see the first words, then the end).
    recipient: tuple[str, str] | None = None
    #: How the stream carries its text ("markdown_text" or "chunks"), fixed by the first call
    #: that carries any: Slack refuses the other form after it (`streaming_mode_mismatch`).
    stream_mode: str | None = None
    task_display_mode: str | None = None
    #: Each task step of the stream as it stands now (its last `task_update` chunk), by id.
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every task update received, in order: (id, status).
    task_log: list[tuple[str, str]] = field(default_factory=list)
    plan_title: str | None = None


@dataclass
class FakeEphemeral:
    """An ephemeral message: shown to one user, never stored in the channel."""

    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    message_ts: str


@dataclass
class FakeView:
    """A modal the bot opened (views.open), as Slack accepted it."""

    id: str
    trigger_id: str
    view: dict[str, Any]


@dataclass
class FakeUser:
    """A member of one workspace, as `users.info` describes them there."""

    id: str
    team_id: str
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    is_bot: bool = False
    #: Other workspaces sharing a channel with them (Slack Connect): those workspaces' tokens
    #: find them too, as Slack does, described as members of their own `team_id`.
    seen_from: set[str] = field(default_factory=set)


@dataclass
class _RateLimit:
    retry_after: int
    as_http_200: bool


@dataclass
class _Failure:
    """An injected failure: HTTP `status` (non-JSON body unless `json_body`), or HTTP 200
    `ok: false` with `error`."""

    status: int
    error: str | None
    json_body: bool


@dataclass(frozen=True)
class OAuthApp:
    """The app's credentials `oauth.v2.access` checks (Basic Information → App Credentials)."""

    client_id: str
    client_secret: str


@dataclass
class Installed:
    """A bot token issued by an install: the workspace it serves (an org-wide install's
    token serves every workspace of its enterprise) and the bot user there."""

    token: str
    team_id: str | None
    enterprise_id: str | None
    bot_user_id: str
    bot_id: str
    scopes: list[str]
    revoked: bool = False

    @property
    def org_wide(self) -> bool:
        return self.team_id is None


@dataclass
class _Approval:
    """A person approved the install in Slack's OAuth screen: the code the browser brings
    back to the app's redirect URL, good for one exchange."""

    installed: Installed
    installer: str
    redirect_uri: str | None
    enterprise_name: str | None
    used: bool = False


class SlackError(Exception):
    """An `ok: false` answer; raised inside a method handler, turned into the JSON reply."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class FakeSlack(LoopbackServer):
    """Slack Web API on a free local port; use `async with FakeSlack() as slack:`.

    Point slack_sdk at `api_url` (`AsyncWebClient(base_url=slack.api_url)`). Requests are
    accepted as JSON, form-encoded or query parameters, like the real API. When `token` is
    given, any other bearer token is refused with `invalid_auth`; a call with no token at all
    is always refused with `not_authed`.

    `limits` (e.g. `SlackLimits.slack()`) makes it throttle calls the way Slack does, timed
    by `clock`; None throttles nothing (only `rate_limit` refuses calls then).
    """

    def __init__(
        self,
        *,
        team_id: str = "T1",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        max_text_length: int = 4000,
        token: str | None = None,
        app_token: str | None = None,
        scopes: Sequence[str] = BOT_SCOPES,
        limits: SlackLimits | None = None,
        clock: Clock | None = None,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.team_id = team_id
        #: The app-level token `apps.connections.open` accepts (None: any `xapp-` token).
        self.app_token = app_token
        #: The bot token's scopes, as Slack names them in `x-oauth-scopes`.
        self.scopes = list(scopes)
        self.backlog = backlog
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.max_text_length = max_text_length
        self.token = token
        #: OAuth: the app's credentials (None: `oauth.v2.access` refuses every call).
        self.oauth_app: OAuthApp | None = None
        #: Tokens issued by installs, by token.
        self.installed: dict[str, Installed] = {}
        #: Which workspace each channel belongs to; channels not named are `team_id`'s.
        self.channel_teams: dict[str, str] = {}
        #: Which enterprise (Enterprise Grid org) each workspace belongs to.
        self.team_enterprise: dict[str, str] = {}
        #: The people `users.info` knows, by id (see `add_user`); the bot user is `team_id`'s.
        self.users: dict[str, FakeUser] = {bot_user_id: FakeUser(bot_user_id, team_id, is_bot=True)}
        self._approvals: dict[str, _Approval] = {}
        self.clock: Clock = clock or MonotonicClock()
        self._limits = limits
        self._buckets: dict[str, _Tokens] = {}
        #: Reactions the bot has on each (channel, ts) now, in the order added.
        self.reactions: dict[tuple[str, str], list[str]] = {}
        #: Every accepted reactions.add / reactions.remove: (channel, ts, "added"|"removed", name).
        self.reaction_log: list[tuple[str, str, Literal["added", "removed"], str]] = []

        self.calls: list[SlackCall] = []
        self.messages: list[FakeMessage] = []
        self.ephemerals: list[FakeEphemeral] = []
        #: Modals opened with views.open, in order.
        self.views: list[FakeView] = []
        self._used_triggers: set[str] = set()
        self.responses: list[tuple[str, dict[str, Any]]] = []

        self._by_key: dict[tuple[str, str], FakeMessage] = {}
        self._ts_counter = 0
        self._rate_limits: dict[str, deque[_RateLimit]] = {}
        self._failures: dict[str, deque[_Failure]] = {}
        self._refused_channels: dict[str, str] = {}
        self._refused_methods: dict[str, str] = {}
        #: The status line under each (channel, thread_ts) now ("" or absent: none).
        self.statuses: dict[tuple[str, str], str] = {}
        #: Every status change: (channel, thread_ts, status, loading_messages); a bot reply in
        #: the thread clears the status as Slack does, recorded with status "".
        self.status_log: list[tuple[str, str, str, list[str]]] = []
        #: The Home tab each user sees now (the last view published for them).
        self.home_views: dict[str, dict[str, Any]] = {}
        #: Suggested prompts per assistant thread (channel, thread_ts): (title, prompts).
        self.suggested_prompts: dict[tuple[str, str], tuple[str | None, list[dict[str, str]]]] = {}
        #: The title of each assistant thread (channel, thread_ts).
        self.thread_titles: dict[tuple[str, str], str] = {}
        self._disconnects: dict[str, int] = {}
        self._sockets: list[web.WebSocketResponse] = []
        #: Socket Mode acknowledgements received ({"envelope_id": …}), in order.
        self.socket_acks: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "oauth.v2.access": self._oauth_v2_access,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
            "assistant.threads.setStatus": self._set_status,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
            "assistant.threads.setTitle": self._set_title,
            "views.publish": self._views_publish,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "views.open": self._views_open,
        }

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind a free port on 127.0.0.1 and start answering."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/respond/{name}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=self.backlog)
        await site.start()
        self._port = _bound_port(self._runner)

    async def stop(self) -> None:
        """Close the server; safe to call twice."""
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` with no path; only valid after `start()`."""
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL, with the trailing slash slack_sdk's `base_url` needs."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str) -> str:
        """A `response_url` to put in a slash-command or interaction payload."""
        return f"{self.base_url}/respond/{name}"

    # -- test controls -------------------------------------------------------------------

    def rate_limit(
        self, method: str, times: int = 1, retry_after: int = 1, as_http_200: bool = False
    ) -> None:
        """Make the next `times` calls to `method` answer `ratelimited`.

        Both shapes Slack has been seen to use: HTTP 429, or HTTP 200 with `ok: false`
        (`as_http_200=True`); each carries `Retry-After: <retry_after>`. Such calls are
        recorded but change nothing. Repeated calls queue up.
        """
        queue = self._rate_limits.setdefault(method, deque())
        queue.extend(_RateLimit(retry_after, as_http_200) for _ in range(times))

    @property
    def limits(self) -> SlackLimits | None:
        """The rate limits in force; None for none."""
        return self._limits

    @limits.setter
    def limits(self, limits: SlackLimits | None) -> None:
        """Change the limits of a running fake; every bucket starts full again."""
        self._limits = limits
        self._buckets.clear()

    def fail(
        self,
        method: str,
        times: int = 1,
        *,
        status: int | None = None,
        error: str | None = None,
        json_body: bool = False,
    ) -> None:
        """Make the next `times` calls to `method` fail without changing anything.

        `status=503` (any HTTP error status): that status, with an HTML body or, with
        `json_body=True`, `{"ok": false, "error": "service_unavailable"}`-style JSON.
        `error="internal_error"` (or `service_unavailable`, `request_timeout`, …): HTTP 200
        with `ok: false` and that error. Repeated calls queue up.
        """
        if (status is None) == (error is None):
            raise ValueError("give exactly one of status= or error=")
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"not an HTTP error status: {status}")
        failure = _Failure(status or 200, error, json_body)
        self._failures.setdefault(method, deque()).extend(failure for _ in range(times))

    def approve_install(
        self,
        team: str | None,
        *,
        enterprise: str | None = None,
        installer: str = "UINSTALLER",
        redirect_uri: str | None = None,
        scopes: Sequence[str] = BOT_SCOPES,
    ) -> str:
        """Someone approves the app in Slack's OAuth screen: for workspace `team`, or, with
        `team=None`, org-wide for `enterprise`. Returns the code Slack hands the browser for
        the app's redirect URL; the bot token exists once the app exchanges it. `redirect_uri`
        is the one the authorize URL carried (the exchange must repeat it)."""
        if team is None and enterprise is None:
            raise ValueError("an install is for a workspace or, org-wide, for an enterprise")
        if team is not None and enterprise is not None:
            self.team_enterprise[team] = enterprise
        owner = team or enterprise
        number = len(self._approvals) + 1
        installed = Installed(
            token=f"xoxb-{owner}-{number}-{uuid.uuid4().hex[:16]}",
            team_id=team,
            enterprise_id=enterprise,
            bot_user_id=f"UB{owner}",
            bot_id=f"BB{owner}",
            scopes=list(scopes),
        )
        code = f"code-{number}-{uuid.uuid4().hex[:12]}"
        name = f"Org {enterprise}" if enterprise else None
        self._approvals[code] = _Approval(installed, installer, redirect_uri, name)
        return code

    @property
    def codes(self) -> list[str]:
        """Every OAuth code handed out (`approve_install`), exchanged or not."""
        return list(self._approvals)

    def add_channel(self, channel: str, team: str) -> None:
        """`channel` belongs to workspace `team`: other workspaces' tokens cannot see it."""
        self.channel_teams[channel] = team

    def add_user(
        self,
        user: str,
        team: str | None = None,
        *,
        admin: bool = False,
        owner: bool = False,
        primary_owner: bool = False,
    ) -> FakeUser:
        """`user` is a member of workspace `team` (default `team_id`), an admin or owner
        there as said. Only the tokens serving that workspace find them with `users.info`."""
        member = FakeUser(
            user,
            team or self.team_id,
            is_admin=admin or owner or primary_owner,  # Slack: owners are admins too
            is_owner=owner or primary_owner,
            is_primary_owner=primary_owner,
        )
        self.users[user] = member
        return member

    def revoke(self, token: str) -> None:
        """The token stops working (an uninstall, a revocation): `invalid_auth` from now on."""
        self.installed[token].revoked = True

    @property
    def sockets_open(self) -> int:
        """How many Socket Mode clients are connected."""
        return len(self._sockets)

    async def push_event(self, payload: dict[str, Any]) -> str:
        """Deliver an Events API payload over Socket Mode to every connected client, as Slack
        does; returns the envelope id the client must acknowledge (see `socket_acks`)."""
        envelope_id = f"env-{len(self.socket_acks)}-{len(self.calls)}-{id(payload)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "payload": payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        for socket in self._sockets:
            await socket.send_json(envelope)
        return envelope_id

    def disconnect(self, method: str, times: int = 1) -> None:
        """Drop the connection on the next `times` calls to `method` without answering (a
        network failure, seen by the client as a server disconnect). Recorded with status 0
        and error "disconnected"; nothing changes."""
        self._disconnects[method] = self._disconnects.get(method, 0) + times

    def refuse_channel(self, channel: str, error: str = "not_in_channel") -> None:
        """Posting to `channel` fails with `error`, as when the bot is not a member."""
        self._refused_channels[channel] = error

    def expire_stream(self, channel: str, ts: str) -> None:
        """End a native stream as Slack does after ~5 minutes; appends then fail."""
        self.message(channel, ts).streaming = False

    def stop_by_user(self, channel: str, ts: str) -> None:
        """The user presses Stop on a native stream: appends and stops then answer
        `stopped_by_user`; the text shown so far stays."""
        message = self.message(channel, ts)
        message.streaming = False
        message.stopped_by_user = True

    def heal(self, method: str) -> None:
        """Calls to `method` answer normally again: queued failures and refusals are dropped."""
        self._failures.pop(method, None)
        self._refused_methods.pop(method, None)

    def refuse_method(self, method: str, error: str) -> None:
        """Every call to `method` from now on answers `ok: false` with `error` (an app or
        token the method is not for: `unknown_method`, `missing_scope`, …)."""
        self._refused_methods[method] = error

    def streams(self) -> list[FakeMessage]:
        """Messages that were started with chat.startStream, in order."""
        return [m for m in self.messages if m.recipient is not None]

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10,  # noqa: ASYNC109 - a deadline per wait reads best in tests
    ) -> None:
        """Return as soon as `predicate()` holds; it is re-checked after every recorded call.

        Raises AssertionError on timeout, listing the calls received, so a failing test
        says what the bot did instead.
        """
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            received = ", ".join(
                f"{c.method}({c.status}{'' if c.error is None else ' ' + c.error})"
                for c in self.calls
            )
            raise AssertionError(
                f"FakeSlack: condition not met within {timeout}s; "
                f"calls received: [{received}]; responses: {len(self.responses)}"
            ) from None

    # -- views ---------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        """The calls made to one Web API method, in order."""
        return [c for c in self.calls if c.method == method]

    def count_429(self, method: str | None = None) -> int:
        """How many calls (to `method`, or to any) were refused as rate limited."""
        return sum(1 for c in self.calls if c.ratelimited and method in (None, c.method))

    def max_calls_in_window(
        self, method: str, seconds: float, *, including_refused: bool = False
    ) -> int:
        """The most calls to `method` Slack let through in any `seconds`-long window (the
        window is half-open, [t, t + seconds)); `including_refused` counts every call made."""
        times = sorted(
            c.at
            for c in self.calls
            if c.method == method and (including_refused or not c.ratelimited)
        )
        best, start = 0, 0
        for end, at in enumerate(times):
            while times[start] <= at - seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    def reactions_on(self, channel: str, ts: str) -> list[str]:
        """The reactions the bot has on a message now, in the order they were added."""
        return list(self.reactions.get((channel, ts), []))

    def reaction_history(self, channel: str, ts: str) -> list[tuple[str, str]]:
        """("added" | "removed", name) for one message, in order."""
        return [(what, name) for c, t, what, name in self.reaction_log if (c, t) == (channel, ts)]

    def message(self, channel: str, ts: str) -> FakeMessage:
        """The stored message; KeyError if the bot never posted it."""
        return self._by_key[(channel, ts)]

    def thread(self, channel: str, thread_ts: str) -> list[FakeMessage]:
        """The bot's messages in that thread, in posting order (deleted ones left out)."""
        return [
            m
            for m in self.messages
            if m.channel == channel and m.thread_ts == thread_ts and not m.deleted
        ]

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        at = self.clock.now()
        params = await _read_params(request)
        form_token = _pop_str(params, "token")
        token = _bearer_token(request) or form_token

        def record(status: int, error: str | None) -> None:
            self.calls.append(SlackCall(len(self.calls), method, params, status, token, error, at))

        if self._disconnects.get(method, 0) > 0:
            self._disconnects[method] -= 1
            record(0, "disconnected")
            await self._notify()
            if request.transport is not None:
                request.transport.close()
            return web.Response()

        failures = self._failures.get(method)
        if failures:
            response, error = _failure_response(failures.popleft())
            record(response.status, error)
            await self._notify()
            return response

        status = 200
        body: dict[str, Any] = {"ok": True}
        headers: dict[str, str] = {}
        pending = self._rate_limits.get(method)
        if pending:
            limit = pending.popleft()
            status = 200 if limit.as_http_200 else 429
            body = {"ok": False, "error": "ratelimited"}
            headers = {"Retry-After": str(limit.retry_after)}
        elif (refusal := self._token_refusal(method, token, params)) is not None:
            body = {"ok": False, "error": refusal}
        elif (retry_after := self._take_tokens(method, params, at, token)) is not None:
            assert self._limits is not None
            status = 200 if self._limits.as_http_200 else 429
            body = {"ok": False, "error": "ratelimited"}
            headers = {"Retry-After": str(retry_after)}
        elif method in self._refused_methods:
            body = {"ok": False, "error": self._refused_methods[method]}
        else:
            handler = self._methods.get(method, _plain_ok)
            if method in ("auth.test", "oauth.v2.access", "users.info"):
                params["_token"], params["_authorization"] = token, _authorization(request)
            try:
                body = await handler(params)
            except SlackError as e:
                body = {"ok": False, "error": e.error}
            finally:
                params.pop("_token", None)
                params.pop("_authorization", None)
            if method == "auth.test":
                installed = self.installed.get(token or "")
                scopes = installed.scopes if installed is not None else self.scopes
                headers["x-oauth-scopes"] = ",".join(scopes)

        record(status, None if body.get("ok") else str(body.get("error")))
        await self._notify()
        return web.json_response(body, status=status, headers=headers)

    def _token_refusal(self, method: str, token: str | None, params: dict[str, Any]) -> str | None:
        """Slack's error for a call's token, or None when the token may make the call.

        A token issued by an install acts in its own workspace only (an org-wide one, in
        its enterprise's workspaces): a channel of another workspace is `channel_not_found`,
        as Slack answers. Once the fake has issued tokens, a token it never issued is
        `invalid_auth` (before that, with no `token` given, any bot token is the workspace's).
        """
        if method in NO_TOKEN_METHODS:
            return None  # api.test needs none; oauth.v2.access checks the app's credentials
        if token is None:
            return "not_authed"
        is_app_token = token.startswith("xapp-")
        if is_app_token != (method == "apps.connections.open"):
            # App-level tokens open Socket Mode connections and do nothing else; bot tokens
            # cannot open them.
            return "not_allowed_token_type"
        installed = None if is_app_token else self.installed.get(token)
        if installed is not None:
            if installed.revoked:
                return "invalid_auth"
            channel = _opt_str(params, "channel") or _opt_str(params, "channel_id")
            if channel and not self._serves(installed, self._team_of_channel(channel)):
                return "channel_not_found"
            return None
        expected = self.app_token if is_app_token else self.token
        if not is_app_token and expected is None and self.installed:
            return "invalid_auth"
        if expected not in (None, token):
            return "invalid_auth"
        channel = _opt_str(params, "channel") or _opt_str(params, "channel_id")
        if not is_app_token and channel and self._team_of_channel(channel) != self.team_id:
            return "channel_not_found"  # the environment's token is `team_id`'s only
        return None

    def _team_of_channel(self, channel: str) -> str:
        return self.channel_teams.get(channel, self.team_id)

    def _serves(self, installed: Installed, team: str) -> bool:
        if installed.team_id is not None:
            return installed.team_id == team
        return self.team_enterprise.get(team) == installed.enterprise_id

    def _workspace_of_token(self, token: str | None) -> str:
        installed = self.installed.get(token or "")
        if installed is None:
            return self.team_id
        return installed.team_id or str(installed.enterprise_id)

    def _take_tokens(
        self, method: str, params: dict[str, Any], now: float, token: str | None = None
    ) -> int | None:
        """Spend one token from each bucket the call draws on; if any is empty, spend none
        and return the whole seconds until all have one (at least 1, as Slack says).
        Buckets are per workspace (per token), as Slack's limits are."""
        if self._limits is None:
            return None
        workspace = self._workspace_of_token(token)
        states = []
        for name, bucket in self._limits.buckets_for(method, _opt_str(params, "channel")):
            key = name if workspace == self.team_id else f"{workspace}/{name}"
            state = self._buckets.get(key)
            if state is None or state.bucket != bucket:
                state = self._buckets[key] = _Tokens(bucket, now)
            state.refill(now)
            states.append(state)
        wait = max((state.wait() for state in states), default=0.0)
        if wait > 0:
            return max(1, math.ceil(wait - 1e-9)) if math.isfinite(wait) else 3600
        for state in states:
            state.tokens -= 1.0
        return None

    async def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self._port}/socket"}

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, then record every envelope acknowledgement received."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": len(self._sockets)})
        await self._notify()
        try:
            async for message in socket:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(message.data))
                    await self._notify()
        finally:
            self._sockets.remove(socket)
        return socket

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.responses.append((request.match_info["name"], payload))
        await self._notify()
        return web.json_response({"ok": True})

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- methods -------------------------------------------------------------------------

    async def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        installed = self.installed.get(params.get("_token") or "")
        if installed is not None:
            answer: dict[str, Any] = {
                "ok": True,
                "url": "https://fake.slack.com/",
                "user": "bot",
                "user_id": installed.bot_user_id,
                "bot_id": installed.bot_id,
                "is_enterprise_install": installed.org_wide,
            }
            if installed.team_id is not None:
                answer.update(team="Fake", team_id=installed.team_id)
            if installed.enterprise_id is not None:
                answer["enterprise_id"] = installed.enterprise_id
            return answer
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
        }

    async def _oauth_v2_access(self, params: dict[str, Any]) -> dict[str, Any]:
        """Exchange an install's code for its bot token. The app's credentials come as HTTP
        Basic auth (what slack_sdk sends) or as `client_id`/`client_secret` fields; all of
        them, the code (once) and the redirect URI the authorize step used are checked."""
        app = self.oauth_app
        client_id, client_secret = _client_credentials(params)
        if app is None or client_id != app.client_id:
            raise SlackError("invalid_client_id")
        if client_secret != app.client_secret:
            raise SlackError("bad_client_secret")
        approval = self._approvals.get(_opt_str(params, "code") or "")
        if approval is None or approval.used:
            raise SlackError("invalid_code")
        if (
            approval.redirect_uri is not None
            and params.get("redirect_uri") != approval.redirect_uri
        ):
            raise SlackError("bad_redirect_uri")
        approval.used = True
        installed = approval.installed
        self.installed[installed.token] = installed
        enterprise = (
            {"id": installed.enterprise_id, "name": approval.enterprise_name}
            if installed.enterprise_id is not None
            else None
        )
        return {
            "ok": True,
            "app_id": "A1",
            "authed_user": {"id": approval.installer},
            "scope": ",".join(installed.scopes),
            "token_type": "bot",
            "access_token": installed.token,
            "bot_user_id": installed.bot_user_id,
            "team": (
                None if installed.team_id is None else {"id": installed.team_id, "name": "Fake"}
            ),
            "enterprise": enterprise,
            "is_enterprise_install": installed.org_wide,
        }

    async def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = _require_channel(params)
        if channel in self._refused_channels:
            raise SlackError(self._refused_channels[channel])
        text, blocks = self._checked_content(params)
        if not text and not blocks:
            raise SlackError("no_text")
        message = self._store(channel, _opt_str(params, "thread_ts"), text, blocks)
        self._reply_clears_status(message)
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": self._message_json(message),
        }

    async def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        if message.streaming:
            raise SlackError("streaming_state_conflict")
        text, blocks = self._checked_content(params)
        if not text and not blocks:
            raise SlackError("no_text")
        if "text" in params:
            message.text = text
        if "blocks" in params:
            message.blocks = blocks
        self._record_version(message)
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._message_json(message),
        }

    async def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = _require_channel(params)
        text, blocks = self._checked_content(params)
        ephemeral = FakeEphemeral(
            channel=channel,
            user=_opt_str(params, "user") or "",
            text=text,
            blocks=blocks,
            thread_ts=_opt_str(params, "thread_ts"),
            message_ts=self._next_ts(),
        )
        self.ephemerals.append(ephemeral)
        return {"ok": True, "message_ts": ephemeral.message_ts}

    async def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    async def _chat_start_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        """Stricter than Slack's documentation: the recipient is required everywhere (Slack
        requires it in channels, and reportedly in DMs too)."""
        channel = _require_channel(params)
        thread_ts = _opt_str(params, "thread_ts")
        team, user = _opt_str(params, "recipient_team_id"), _opt_str(params, "recipient_user_id")
        if thread_ts is None or not team or not user:
            raise SlackError("invalid_arguments")
        mode = params.get("task_display_mode")
        if mode is not None and mode not in TASK_DISPLAY_MODES:
            raise SlackError("invalid_arguments")
        content = self._checked_stream_content(params, None, required=False)
        message = self._store(channel, thread_ts, content.text, None)
        message.streaming = True
        message.recipient = (team, user)
        message.task_display_mode = None if mode is None else str(mode)
        self._add_stream_content(message, replace(content, text=""), record=False)
        self._reply_clears_status(message)
        return {"ok": True, "channel": channel, "ts": message.ts}

    async def _chat_append_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming_message(params)
        content = self._checked_stream_content(params, message, required=True)
        self._add_stream_content(message, content)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    async def _chat_stop_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._streaming_message(params)
        # The last words count like an append's.
        content = self._checked_stream_content(params, message, required=False)
        blocks = self._checked_blocks(params["blocks"]) if "blocks" in params else None
        self._add_stream_content(message, content, record=False)
        if "blocks" in params:
            message.blocks = blocks
        message.streaming = False
        self._record_version(message)
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "message": self._message_json(message),
        }

    async def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        key, name = self._reaction_target(params)
        current = self.reactions.setdefault(key, [])
        if name in current:
            raise SlackError("already_reacted")
        current.append(name)
        self.reaction_log.append((*key, "added", name))
        return {"ok": True}

    async def _reactions_remove(self, params: dict[str, Any]) -> dict[str, Any]:
        key, name = self._reaction_target(params)
        current = self.reactions.get(key, [])
        if name not in current:
            raise SlackError("no_reaction")
        current.remove(name)
        self.reaction_log.append((*key, "removed", name))
        return {"ok": True}

    def _reaction_target(self, params: dict[str, Any]) -> tuple[tuple[str, str], str]:
        """The (channel, ts) and emoji name of a reactions call, refused as Slack refuses.

        The message may be one the bot posted (it must still exist) or a user's message the
        fake never saw, such as the question itself: any Slack-shaped ts is taken for one."""
        channel = _opt_str(params, "channel")
        ts = _opt_str(params, "timestamp")
        if not channel or not ts:
            raise SlackError("no_item_specified")
        if not SLACK_TS.match(ts):
            raise SlackError("bad_timestamp")
        name = _opt_str(params, "name") or ""
        if not re.fullmatch(r"[a-z0-9_+\-']+(::skin-tone-[2-6])?", name):
            raise SlackError("invalid_name")
        posted = self._by_key.get((channel, ts))
        if posted is not None and posted.deleted:
            raise SlackError("message_not_found")
        return (channel, ts), name

    async def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = _require_channel(params)
        is_im = channel.startswith("D")
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": None if is_im else f"channel-{channel.lower()}",
                "is_channel": channel.startswith("C"),
                "is_group": channel.startswith("G"),
                "is_im": is_im,
                "is_private": not channel.startswith("C"),
                "is_member": True,
                "context_team_id": self.team_id,
            },
        }

    async def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """Stricter than Slack in one way: any trigger id is taken for one a user's action
        issued (the fake never sees those), but each opens one modal only."""
        trigger_id = _opt_str(params, "trigger_id")
        if not trigger_id:
            raise SlackError("invalid_arguments")
        if trigger_id in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        view = params.get("view")
        if not isinstance(view, dict) or view_problem(view) is not None:
            raise SlackError("invalid_arguments")
        self._used_triggers.add(trigger_id)
        opened = FakeView(f"V{len(self.views) + 1:08d}", trigger_id, view)
        self.views.append(opened)
        return {"ok": True, "view": {**view, "id": opened.id, "team_id": self.team_id}}

    async def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """As strict as Slack: the token needs `users:read`, and finds only the members of
        the workspace it serves (anyone else, an owner elsewhere included, is
        `user_not_found`)."""
        token = params.get("_token")
        installed = self.installed.get(token or "")
        scopes = installed.scopes if installed is not None else self.scopes
        if "users:read" not in scopes:
            raise SlackError("missing_scope")
        user = _opt_str(params, "user")
        member = self.users.get(user or "")
        if member is None:
            raise SlackError("user_not_found")
        visible = {member.team_id, *member.seen_from}
        here = (
            any(self._serves(installed, t) for t in visible)
            if installed is not None
            else self.team_id in visible
        )
        if not here:
            raise SlackError("user_not_found")
        name = "bot" if member.is_bot else f"user-{member.id.lower()}"
        return {
            "ok": True,
            "user": {
                "id": member.id,
                "team_id": member.team_id,
                "name": name,
                "deleted": False,
                "real_name": name.title(),
                "tz": "UTC",
                "is_admin": member.is_admin,
                "is_owner": member.is_owner,
                "is_primary_owner": member.is_primary_owner,
                "is_restricted": False,
                "is_ultra_restricted": False,
                "is_bot": member.is_bot,
                "is_app_user": False,
                "profile": {"display_name": name, "real_name": name.title()},
            },
        }

    # -- helpers -------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """Fresh, strictly increasing, Slack-shaped timestamps: 1700000000.000100, …0200."""
        self._ts_counter += 1
        seconds, micros = divmod(self._ts_counter * _TS_STEP_MICROSECONDS, 1_000_000)
        return f"{_FIRST_TS_SECONDS + seconds}.{micros:06d}"

    def _store(
        self, channel: str, thread_ts: str | None, text: str, blocks: list[dict[str, Any]] | None
    ) -> FakeMessage:
        message = FakeMessage(channel, self._next_ts(), thread_ts, text, blocks)
        self._record_version(message)
        self.messages.append(message)
        self._by_key[(channel, message.ts)] = message
        return message

    def _record_version(self, message: FakeMessage) -> None:
        message.edits.append((message.text, message.blocks))
        message.edited_at.append(self.clock.now())

    def _find(self, params: dict[str, Any]) -> FakeMessage:
        key = (_opt_str(params, "channel") or "", _opt_str(params, "ts") or "")
        if not SLACK_TS.match(key[1]):
            raise SlackError("message_not_found")
        message = self._by_key.get(key)
        if message is None or message.deleted:
            raise SlackError("message_not_found")
        return message

    def _streaming_message(self, params: dict[str, Any]) -> FakeMessage:
        message = self._find(params)
        if message.stopped_by_user:
            raise SlackError("stopped_by_user")
        if not message.streaming:
            raise SlackError("message_not_in_streaming_state")
        return message

    def _checked_stream_content(
        self, params: dict[str, Any], message: FakeMessage | None, *, required: bool
    ) -> _StreamContent:
        """What a stream call adds, refused as Slack refuses it: its text as `markdown_text`
        or as `chunks`, never both in one call and never the form the stream did not start
        with; at most 12,000 characters a call and 12,000 in the message; `required` (an
        append) when the call must add something. `task_display_mode` only starts a
        stream."""
        if message is not None and "task_display_mode" in params:
            raise SlackError("invalid_arguments")
        has_text, has_chunks = (params.get(k) is not None for k in ("markdown_text", "chunks"))
        if has_text and has_chunks:
            raise SlackError("invalid_arguments")
        mode = "chunks" if has_chunks else "markdown_text" if has_text else None
        if message is not None and None not in (mode, message.stream_mode):
            if mode != message.stream_mode:
                raise SlackError("streaming_mode_mismatch")
        if has_chunks:
            content = self._checked_chunks(params["chunks"])
        else:
            content = _StreamContent(_opt_str(params, "markdown_text") or "")
        if required and not content.text and not content.tasks and not content.plan_title:
            raise SlackError("invalid_arguments")
        if len(content.text) > MAX_MARKDOWN_TEXT:
            raise SlackError("msg_too_long")
        shown = "" if message is None else message.text
        if len(shown) + len(content.text) > MAX_MARKDOWN_BLOCK_TEXT:
            raise SlackError("msg_too_long")
        content.mode = mode
        return content

    def _checked_chunks(self, raw: Any) -> _StreamContent:
        """`chunks` as Slack's documentation describes them, refused (`invalid_chunks`) for
        an unknown type, a field the type does not have, a missing or empty one, a task
        status other than the four, or text over a task's limit."""
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CHUNKS:
            raise SlackError("invalid_chunks")
        content = _StreamContent("")
        for chunk in raw:
            if not isinstance(chunk, dict) or chunk.get("type") not in CHUNK_FIELDS:
                raise SlackError("invalid_chunks")
            allowed, required = CHUNK_FIELDS[chunk["type"]]
            if not required <= set(chunk) <= allowed:
                raise SlackError("invalid_chunks")
            if chunk["type"] == "markdown_text":
                if not isinstance(chunk["text"], str) or not chunk["text"]:
                    raise SlackError("invalid_chunks")
                content.text += chunk["text"]
            elif chunk["type"] == "task_update":
                content.tasks.append(_checked_task(chunk))
            elif chunk["type"] == "plan_update":
                if not _short_text(chunk["title"]):
                    raise SlackError("invalid_chunks")
                content.plan_title = chunk["title"]
            elif not isinstance(chunk["blocks"], list) or not chunk["blocks"]:
                raise SlackError("invalid_chunks")
            else:
                self._checked_blocks(chunk["blocks"])
        return content

    def _add_stream_content(
        self, message: FakeMessage, content: _StreamContent, *, record: bool = True
    ) -> None:
        message.text += content.text
        message.stream_mode = message.stream_mode or content.mode
        for task in content.tasks:
            message.tasks[task["id"]] = task
            message.task_log.append((task["id"], task["status"]))
        if content.plan_title is not None:
            message.plan_title = content.plan_title
        if record:
            self._record_version(message)

    async def _set_status(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts = _opt_str(params, "channel_id"), _opt_str(params, "thread_ts")
        status = params.get("status")
        loading = params.get("loading_messages") or []
        if not channel or not thread_ts or not isinstance(status, str):
            raise SlackError("invalid_arguments")
        if not SLACK_TS.match(thread_ts):
            raise SlackError("invalid_arguments")
        if not isinstance(loading, list) or len(loading) > MAX_LOADING_MESSAGES:
            raise SlackError("invalid_arguments")
        if len(status) > MAX_STATUS or not all(
            isinstance(line, str) and line.strip() and len(line) <= MAX_LOADING_MESSAGE
            for line in loading
        ):
            raise SlackError("invalid_arguments")
        self.statuses[(channel, thread_ts)] = status
        self.status_log.append((channel, thread_ts, status, [str(x) for x in loading]))
        return {"ok": True}

    def _assistant_thread(self, params: dict[str, Any]) -> tuple[str, str]:
        """The (channel, thread_ts) of an assistant.threads call, refused as Slack refuses;
        the methods need `assistant:write`."""
        if "assistant:write" not in self.scopes:
            raise SlackError("missing_scope")
        channel, thread_ts = _opt_str(params, "channel_id"), _opt_str(params, "thread_ts")
        if not channel:
            raise SlackError("channel_not_found")
        if not thread_ts or not SLACK_TS.match(thread_ts):
            raise SlackError("invalid_thread_ts")
        return channel, thread_ts

    async def _set_suggested_prompts(self, params: dict[str, Any]) -> dict[str, Any]:
        key = self._assistant_thread(params)
        prompts = params.get("prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_SUGGESTED_PROMPTS:
            raise SlackError("invalid_arguments")
        for prompt in prompts:
            if not isinstance(prompt, dict) or set(prompt) != {"title", "message"}:
                raise SlackError("invalid_arguments")
            if not all(isinstance(v, str) and v.strip() for v in prompt.values()):
                raise SlackError("invalid_arguments")
        title = params.get("title")
        if title is not None and not isinstance(title, str):
            raise SlackError("invalid_arguments")
        self.suggested_prompts[key] = (title, [dict(p) for p in prompts])
        return {"ok": True}

    async def _set_title(self, params: dict[str, Any]) -> dict[str, Any]:
        key = self._assistant_thread(params)
        title = params.get("title")
        if not isinstance(title, str) or not title.strip():
            raise SlackError("invalid_arguments")
        self.thread_titles[key] = title
        return {"ok": True}

    async def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        """Stricter than Slack in one way: only Home tab views (what `views.publish` is for)."""
        user = _opt_str(params, "user_id")
        if not user:
            raise SlackError("invalid_arguments")
        view = params.get("view")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackError("invalid_arguments")
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS:
            raise SlackError("invalid_arguments")
        if not all(isinstance(b, dict) for b in blocks) or any(
            _view_block_invalid(b) for b in blocks
        ):
            raise SlackError("invalid_blocks")
        if len(str(view.get("private_metadata", ""))) > MAX_PRIVATE_METADATA:
            raise SlackError("invalid_arguments")
        if len(str(view.get("callback_id", ""))) > MAX_CALLBACK_ID:
            raise SlackError("invalid_arguments")
        self.home_views[user] = view
        return {"ok": True, "view": {"id": f"V{len(self.calls):08d}", **view}}

    def _reply_clears_status(self, message: FakeMessage) -> None:
        key = (message.channel, message.thread_ts or "")
        if self.statuses.get(key):
            self.statuses[key] = ""
            self.status_log.append((*key, "", []))

    def _checked_content(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
        """The text and blocks of a post or update, refused the way Slack refuses them."""
        text = _opt_str(params, "text") or ""
        if len(text) > self.max_text_length:
            raise SlackError("msg_too_long")
        blocks = self._checked_blocks(params["blocks"]) if "blocks" in params else None
        return text, blocks

    def _checked_blocks(self, raw: Any) -> list[dict[str, Any]] | None:
        if raw is None:
            return None
        if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
            raise SlackError("invalid_blocks")
        if len(raw) > MAX_BLOCKS or any(_block_invalid(b) for b in raw):
            raise SlackError("invalid_blocks")
        return raw

    def _message_json(self, message: FakeMessage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
            "text": message.text,
            "ts": message.ts,
        }
        if message.thread_ts is not None:
            out["thread_ts"] = message.thread_ts
        if message.blocks is not None:
            out["blocks"] = message.blocks
        return out


def _block_invalid(block: dict[str, Any]) -> bool:
    """The block rules Slack enforces that an answer could break (not all of Block Kit)."""
    kind = block.get("type")
    if kind == "section":
        text = block.get("text")
        if text is None:
            return not block.get("fields")
        body = str(text.get("text", "")) if isinstance(text, dict) else ""
        return not body or len(body) > MAX_SECTION_TEXT
    if kind == "context":
        elements = block.get("elements") or []
        return not elements or len(elements) > MAX_CONTEXT_ELEMENTS
    if kind == "actions":
        elements = block.get("elements") or []
        return (
            not elements
            or len(elements) > MAX_ACTIONS_ELEMENTS
            or any(_button_invalid(e) for e in elements)
        )
    if kind == "markdown":
        return len(str(block.get("text", ""))) > MAX_MARKDOWN_BLOCK_TEXT
    return False


def _view_block_invalid(block: dict[str, Any]) -> bool:
    """A view's blocks: a message's rules, plus the header and divider a Home tab uses."""
    kind = block.get("type")
    if kind == "header":
        text = block.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text":
            return True
        return not text.get("text") or len(str(text["text"])) > MAX_HEADER_TEXT
    if kind == "divider":
        return set(block) - {"type", "block_id"} != set()
    if kind in ("section", "context", "actions", "markdown"):
        return _block_invalid(block)
    return True  # a kind the bot has no business sending


def view_problem(view: dict[str, Any]) -> str | None:
    """What Slack would refuse in a modal view (views.open, or a `response_action: update`),
    or None when it is valid."""
    if view.get("type") != "modal":
        return "type must be modal"
    for name in ("title", "submit", "close"):
        text = view.get(name)
        if text is None and name != "title":
            continue
        if not _plain_text(text, MAX_VIEW_TITLE):
            return f"{name} must be plain_text of 1-{MAX_VIEW_TITLE} characters"
    if len(str(view.get("callback_id", ""))) > MAX_CALLBACK_ID:
        return "callback_id too long"
    if len(str(view.get("private_metadata", ""))) > MAX_PRIVATE_METADATA:
        return "private_metadata too long"
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not blocks or len(blocks) > MAX_VIEW_BLOCKS:
        return f"blocks must be a list of 1-{MAX_VIEW_BLOCKS}"
    block_ids = [b.get("block_id") for b in blocks if isinstance(b, dict) and b.get("block_id")]
    if len(block_ids) != len(set(block_ids)):
        return "block_ids must be unique"
    inputs = [b for b in blocks if isinstance(b, dict) and b.get("type") == "input"]
    if inputs and view.get("submit") is None:
        return "a modal with inputs needs submit"
    for block in blocks:
        if not isinstance(block, dict):
            return "a block must be an object"
        if block.get("type") == "input":
            problem = _input_problem(block)
        else:
            problem = "invalid block" if _block_invalid(block) else None
        if problem is not None:
            return problem
    return None


def _plain_text(text: Any, limit: int) -> bool:
    return (
        isinstance(text, dict)
        and text.get("type") == "plain_text"
        and 1 <= len(str(text.get("text") or "")) <= limit
    )


def _input_problem(block: dict[str, Any]) -> str | None:
    if not _plain_text(block.get("label"), 2000):
        return "an input needs a plain_text label"
    if "hint" in block and not _plain_text(block.get("hint"), 2000):
        return "an input's hint must be plain_text"
    element = block.get("element")
    if not isinstance(element, dict) or not element.get("type") or not element.get("action_id"):
        return "an input needs an element with a type and an action_id"
    if element["type"] == "plain_text_input":
        limit = element.get("max_length", MAX_INPUT_LENGTH)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_INPUT_LENGTH:
            return f"max_length must be 1-{MAX_INPUT_LENGTH}"
    return None


def _button_invalid(element: Any) -> bool:
    if not isinstance(element, dict):
        return True
    return element.get("type") == "button" and len(str(element.get("value", ""))) > (
        MAX_BUTTON_VALUE
    )


def _failure_response(failure: _Failure) -> tuple[web.Response, str | None]:
    """The reply to an injected failure, and the `error` it carries (None when not JSON)."""
    if failure.error is not None:
        return web.json_response({"ok": False, "error": failure.error}), failure.error
    if failure.json_body:
        error = "service_unavailable" if failure.status >= 500 else "request_failed"
        return web.json_response({"ok": False, "error": error}, status=failure.status), error
    html = f"<html><body><h1>{failure.status}</h1>Slack is having trouble.</body></html>"
    return web.Response(status=failure.status, text=html, content_type="text/html"), None


async def _plain_ok(params: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string, then the JSON or form body, merged the way Slack reads them.

    Form values that carry JSON (`blocks`, `attachments`, `metadata`) are decoded, so a test
    sees the same params whichever encoding the client chose.
    """
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif request.method == "POST":
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in ("blocks", "attachments", "metadata", "view", "prompts"):
        value = params.get(key)
        if isinstance(value, str):
            try:
                params[key] = json.loads(value)
            except json.JSONDecodeError:
                params[key] = value
    return params


def _authorization(request: web.Request) -> str:
    return request.headers.get("Authorization", "")


def _client_credentials(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """(client_id, client_secret) from HTTP Basic auth, else from the fields."""
    scheme, _, encoded = str(params.get("_authorization") or "").partition(" ")
    if scheme == "Basic" and encoded:
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        return client_id, secret
    return _opt_str(params, "client_id"), _opt_str(params, "client_secret")


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token or None if scheme == "Bearer" else None


def _pop_str(params: dict[str, Any], key: str) -> str | None:
    value = params.pop(key, None)
    return str(value) if value else None


@dataclass
class _StreamContent:
    """What one stream call adds to its message."""

    text: str
    tasks: list[dict[str, Any]] = field(default_factory=list)
    plan_title: str | None = None
    mode: str | None = None  # "markdown_text", "chunks", or None: it carried neither


def _checked_task(chunk: dict[str, Any]) -> dict[str, Any]:
    if chunk["status"] not in TASK_STATUSES:
        raise SlackError("invalid_chunks")
    if not _short_text(chunk["id"]) or not _short_text(chunk["title"]):
        raise SlackError("invalid_chunks")
    for optional in ("details", "output"):
        if optional in chunk and not _short_text(chunk[optional]):
            raise SlackError("invalid_chunks")
    sources = chunk.get("sources", [])
    if not isinstance(sources, list) or not all(_url_source(s) for s in sources):
        raise SlackError("invalid_chunks")
    return dict(chunk)


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_TASK_TEXT


def _url_source(source: Any) -> bool:
    """A URL source element: `type` "url", `url` and `text`, optionally `icon_url`."""
    if not isinstance(source, dict) or source.get("type") != "url":
        return False
    if not {"type", "url", "text"} <= set(source) <= {"type", "url", "text", "icon_url"}:
        return False
    return all(isinstance(source[k], str) and source[k] for k in source)


def _opt_str(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    return None if value is None else str(value)


def _require_channel(params: dict[str, Any]) -> str:
    channel = _opt_str(params, "channel")
    if not channel:
        raise SlackError("channel_not_found")
    return channel


def _bound_port(runner: web.AppRunner) -> int:
    """The port the OS picked for `TCPSite(runner, "127.0.0.1", 0)`."""
    port = runner.addresses[0][1]
    return int(port)
