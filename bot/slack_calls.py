"""The one place that talks to Slack's write methods.

Every post, edit and reaction goes through the workspace's scheduler (bot/slack_scheduler.py),
which decides when it may be sent; this module sends it and reads Slack's answer: a rate limit,
a failure that may pass, or a refusal for good. Nothing here sleeps: callers ask, the
scheduler waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock
from bot.config import Settings
from bot.metrics import Metrics
from bot.rate_buckets import Buckets, Rate
from bot.slack_scheduler import (
    DeliveryFailed,
    EditTicket,
    Limits,
    PassingFailure,
    RateLimited,
    WorkspaceScheduler,
)
from bot.store import StoreUnavailable
from bot.token_cache import DEAD_TOKEN_ERRORS

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 1.0
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError)
#: `ok: false` errors that say Slack did not act on the call and may accept it later.
NOT_ACTED_ON = frozenset({"service_unavailable", "request_timeout"})
#: `ok: false` errors after which Slack may or may not have acted on the call.
MAYBE_ACTED_ON = frozenset({"internal_error", "fatal_error"})
HOURGLASS = "hourglass_flowing_sand"
NOT_INSTALLED = "not_installed"  # our code for a workspace without an installation


class MessageTooLong(Exception):
    """Slack refused the text as too long (`msg_too_long`); split and try again."""


class MessageGone(Exception):
    """The message to edit no longer exists (`message_not_found`: someone deleted it)."""


# A permanent refusal, or a must-land call that could not land before the deadline.
SlackUnavailable = DeliveryFailed


class PostedThenCancelled(asyncio.CancelledError):
    """Shutdown came while a post was on its way; it landed as `ts`, so the caller can still
    replace it with the restart notice instead of leaving it behind."""

    def __init__(self, ts: str) -> None:
        super().__init__(ts)
        self.ts = ts


@dataclass(frozen=True)
class Content:
    text: str
    blocks: list[dict[str, Any]] | None = None


def _status(error: SlackApiError) -> int:
    response = error.response
    return int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)


def error_code(error: SlackApiError) -> str | None:
    """Slack's `error` of a refused call (`not_in_channel`, …); None when it gave none."""
    data = getattr(error.response, "data", None)
    return str(data.get("error")) if isinstance(data, dict) and data.get("error") else None


def _retry_after(error: SlackApiError) -> float:
    headers = getattr(error.response, "headers", None) or {}
    header = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(header)) if header is not None else DEFAULT_RETRY_AFTER
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def read_refusal(method: str, error: SlackApiError) -> Exception:
    """What Slack's error answer means for the scheduler and the caller."""
    status, code = _status(error), error_code(error)
    if status == 429 or code in ("ratelimited", "rate_limited"):
        return RateLimited(_retry_after(error))
    if code == "msg_too_long":
        return MessageTooLong()
    if code == "message_not_found":
        return MessageGone()
    if code in NOT_ACTED_ON or status == 503:
        return PassingFailure(f"{code or status}", maybe_arrived=False)
    if code in MAYBE_ACTED_ON or status >= 500 or (status != 200 and code is None):
        return PassingFailure(f"{code or status}", maybe_arrived=True)
    return DeliveryFailed(f"{method}: {code}", code)


class BotTokens(Protocol):
    """Where each workspace's bot token comes from (OAuth: its installation,
    bot/oauth_stores.py)."""

    async def bot_token(self, team: str) -> str | None:
        """The token serving `team`; None when none does (not installed)."""
        ...

    def token_refused(self, team: str, token: str) -> None:
        """Slack refused `token` for good: it must not be handed out again."""
        ...


def sender(
    client: AsyncWebClient, metrics: Metrics, token: str | None = None
) -> Callable[[str, dict[str, Any]], Any]:
    """The scheduler's way to send: one Web API call, its answer read by `read_refusal` and
    counted by method and outcome. `token` replaces the client's own for these calls."""

    async def send(method: str, params: dict[str, Any]) -> dict[str, Any]:
        body = params if token is None else {**params, "token": token}  # sent as a header
        try:
            response = await client.api_call(method, json=body)
        except aiohttp.ClientConnectorError as error:
            metrics.slack_call(method, "error")
            raise PassingFailure(type(error).__name__, maybe_arrived=False) from error
        except NETWORK_ERRORS as error:
            metrics.slack_call(method, "error")
            raise PassingFailure(type(error).__name__, maybe_arrived=True) from error
        except SlackApiError as error:
            refusal = read_refusal(method, error)
            metrics.slack_call(method, "429" if isinstance(refusal, RateLimited) else "error")
            raise refusal from error
        metrics.slack_call(method, "ok")
        return dict(response.data) if isinstance(response.data, dict) else {}

    return send


class SlackCalls:
    """A workspace's Slack writes, as the answer flow, the project watches and the feedback
    buttons need them. Every call waits its turn in the workspace's scheduler."""

    def __init__(self, scheduler: WorkspaceScheduler, clock: Clock) -> None:
        self.scheduler = scheduler
        self._clock = clock
        self._offers: dict[tuple[str, str], EditTicket] = {}

    async def post(self, channel: str, thread_ts: str | None, content: Content) -> str:
        """Post a message that must appear; returns its ts. Repeated after a failure only
        when Slack surely did not post it, so a lost answer never leaves a second reply."""
        response = await self.scheduler.must_land(
            "chat.postMessage",
            _without_none(
                {
                    "channel": channel,
                    "thread_ts": thread_ts,
                    "text": content.text,
                    "blocks": content.blocks,
                    "unfurl_links": False,
                    "unfurl_media": False,
                }
            ),
            lane=f"post:{channel}",
            repeatable=False,
        )
        return str(response["ts"])

    async def post_through_shutdown(
        self, channel: str, thread_ts: str | None, content: Content
    ) -> str:
        """`post`, except that a cancellation while the post is in flight waits for it to
        land (until cancelled again) and raises PostedThenCancelled with its ts."""
        posting = asyncio.ensure_future(self.post(channel, thread_ts, content))
        try:
            return await asyncio.shield(posting)
        except asyncio.CancelledError:
            ts = await posting
            raise PostedThenCancelled(ts) from None

    async def update(self, channel: str, ts: str, content: Content) -> None:
        """An edit that must land (a final text, a notice); a partial edit still pending for
        the message is dropped (or, in flight, waited for) so it cannot overtake this one."""
        await self._withdraw(channel, ts)
        await self.scheduler.must_land(
            "chat.update", _edit(channel, ts, content), lane="update", repeatable=True
        )

    def offer_edit(
        self, channel: str, ts: str, render: Callable[[], Content | None], stale_since: float
    ) -> EditTicket:
        """A partial edit, rendered when the budget lets it go (None: nothing new to show)."""

        def params() -> dict[str, Any] | None:
            content = render()
            return None if content is None else _edit(channel, ts, content)

        return self.scheduler.offer("chat.update", params, lane="update", stale_since=stale_since)

    async def update_if_allowed(self, channel: str, ts: str, content: Content) -> bool:
        """An edit worth showing when the budget allows (indexing progress): it waits at the
        lowest priority and is replaced by a newer one for the same message, or by the final
        text. True once it is queued to be shown."""
        await self._withdraw(channel, ts)
        ticket = self.offer_edit(channel, ts, lambda: content, self._clock.now())
        self._offers[(channel, ts)] = ticket
        ticket.settled.add_done_callback(lambda _: self._forget(channel, ts, ticket))
        return True

    async def _withdraw(self, channel: str, ts: str) -> None:
        ticket = self._offers.pop((channel, ts), None)
        if ticket is not None:
            await ticket.withdraw()

    def _forget(self, channel: str, ts: str, ticket: EditTicket) -> None:
        if self._offers.get((channel, ts)) is ticket:
            del self._offers[(channel, ts)]

    def offer_reaction(self, channel: str, ts: str, name: str = HOURGLASS) -> EditTicket:
        """A courtesy reaction on someone's message: sent when its own budget allows, dropped
        (withdrawn) when it would come too late to mean anything."""
        params = {"channel": channel, "timestamp": ts, "name": name}
        return self.scheduler.offer(
            "reactions.add", lambda: params, lane="reactions", stale_since=self._clock.now()
        )

    async def remove_reaction(self, channel: str, ts: str, name: str = HOURGLASS) -> None:
        """Take our reaction back; gone already is as good as removed."""
        params = {"channel": channel, "timestamp": ts, "name": name}
        try:
            await self.scheduler.must_land(
                "reactions.remove", params, lane="reactions", repeatable=True
            )
        except DeliveryFailed as error:
            if error.code != "no_reaction":
                log.warning("could not remove the %s reaction: %s", name, error)

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal for the person whose command gave `trigger_id` (it lives 3 seconds).
        Never repeated when it may have opened: a second modal would stack on the first.
        Its own lane (with the reactions' Tier 3 rate, far above what people ask for)."""
        await self.scheduler.must_land(
            "views.open", {"trigger_id": trigger_id, "view": view}, lane="views", repeatable=False
        )

    # -- native streams (chat.startStream / appendStream / stopStream) ----------------------

    # A stream's text goes as `chunks` (`markdown_text` chunks, with task steps between
    # them), never as the `markdown_text` argument: Slack holds a stream to the form it was
    # started with, and only chunks carry the steps.

    async def start_stream(
        self,
        channel: str,
        thread_ts: str,
        chunks: list[dict[str, Any]],
        *,
        recipient_team: str,
        recipient_user: str,
        task_display_mode: str | None = None,
    ) -> str:
        """Start a native stream replying in `thread_ts` with `chunks` (its first words, a
        task step); returns the message's ts. Never repeated after a failure that may have
        landed (that would start a second message)."""
        response = await self.scheduler.must_land(
            "chat.startStream",
            _without_none(
                {
                    "channel": channel,
                    "thread_ts": thread_ts,
                    "chunks": chunks,
                    "recipient_team_id": recipient_team,
                    "recipient_user_id": recipient_user,
                    "task_display_mode": task_display_mode,
                }
            ),
            lane="stream-start",
            repeatable=False,
        )
        return str(response["ts"])

    async def append_stream(self, channel: str, ts: str, chunks: list[dict[str, Any]]) -> None:
        """Add `chunks` (new text only) to a native stream; never repeated when it may have
        landed, or the text would show twice."""
        params = {"channel": channel, "ts": ts, "chunks": chunks}
        await self.scheduler.must_land(
            "chat.appendStream", params, lane="stream-append", repeatable=False
        )

    def offer_append(
        self, render: Callable[[], dict[str, Any] | None], *, stale_since: float
    ) -> EditTicket:
        """A partial `chat.appendStream`, rendered (the text new by then) when the append
        budget lets it go; the stream's end withdraws it if it is still waiting. Among the
        offers waiting, the stream showing nothing new since the longest goes first."""
        return self.scheduler.offer(
            "chat.appendStream", render, lane="stream-append", stale_since=stale_since
        )

    async def stop_stream(
        self,
        channel: str,
        ts: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        chunks: list[dict[str, Any]] | None = None,
    ) -> None:
        """End a native stream with its last `chunks` (new text only, a step's end);
        `blocks` are shown under its text (sources, feedback). Repeating it is safe: a stop
        that landed makes the repeat fail, and the caller then finishes by chat.update."""
        params = _without_none(
            {"channel": channel, "ts": ts, "chunks": chunks or None, "blocks": blocks or None}
        )
        await self.scheduler.must_land(
            "chat.stopStream", params, lane="stream-stop", repeatable=True
        )

    def offer_status(
        self,
        channel: str,
        thread_ts: str,
        status: str,
        loading: list[str],
        wanted: Callable[[], bool] = lambda: True,
    ) -> EditTicket:
        """Slack's status line under a thread ("is searching…"): a courtesy from its own
        budget, withdrawn when the answer's first message comes first (which clears it), and
        not sent when `wanted()` says no by its turn."""
        params = {
            "channel_id": channel,
            "thread_ts": thread_ts,
            "status": status,
            "loading_messages": loading,
        }
        return self.scheduler.offer(
            "assistant.threads.setStatus",
            lambda: params if wanted() else None,
            lane="status",
            stale_since=self._clock.now(),
        )

    async def user_info(self, user: str) -> dict[str, Any]:
        """Slack's profile of `user` as this workspace sees it (bot/admins.py reads whether
        they are an admin). A read, on its own lane (Tier 4) so it never waits behind posts."""
        response = await self.scheduler.must_land(
            "users.info", {"user": user}, lane="users", repeatable=True
        )
        found = response.get("user")
        return dict(found) if isinstance(found, dict) else {}

    # -- App Home and the assistant pane ---------------------------------------------------

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """Show `view` as `user`'s App Home tab (it replaces the one shown before, so
        sending it again is harmless)."""
        await self.scheduler.must_land(
            "views.publish", {"user_id": user, "view": view}, lane="views", repeatable=True
        )

    async def set_suggested_prompts(
        self, channel: str, thread_ts: str, prompts: list[dict[str, str]], title: str
    ) -> None:
        """The starter questions offered in an assistant thread ({title, message} each)."""
        params = {"channel_id": channel, "thread_ts": thread_ts, "prompts": prompts, "title": title}
        await self.scheduler.must_land(
            "assistant.threads.setSuggestedPrompts", params, lane="assistant", repeatable=True
        )

    async def set_title(self, channel: str, thread_ts: str, title: str) -> None:
        """Name an assistant thread in the user's history."""
        params = {"channel_id": channel, "thread_ts": thread_ts, "title": title}
        await self.scheduler.must_land(
            "assistant.threads.setTitle", params, lane="assistant", repeatable=True
        )


# Slack's limits that are not settings: reactions (Tier 3, spent on courtesy only).
REACTIONS = Rate(per_minute=50, burst=10)
STATUS = Rate(per_minute=50, burst=10)


def limits_for(settings: Settings) -> Limits:
    """The workspace budgets the settings describe (see the README's table)."""
    return Limits(
        update=Rate(settings.slack_update_budget, settings.slack_update_burst),
        post_per_channel=Rate(settings.slack_post_budget, settings.slack_post_burst),
        post_per_workspace=Rate(
            settings.slack_workspace_post_budget, settings.slack_workspace_post_burst
        ),
        reactions=REACTIONS,
        delivery_deadline=settings.slack_delivery_deadline,
        stream_start_stop=Rate(settings.slack_stream_budget, settings.slack_stream_burst),
        stream_append=Rate(settings.slack_append_budget, settings.slack_append_burst),
        status=STATUS,
    )


class SlackSchedulers:
    """One scheduler per workspace, for the life of the process. With `tokens` (OAuth), each
    workspace's calls carry that workspace's own bot token, looked up at every call (a
    reinstall changes it, an uninstall removes it); else the client's one token."""

    def __init__(
        self,
        client: AsyncWebClient,
        buckets: Buckets,
        limits: Limits,
        clock: Clock,
        metrics: Metrics | None = None,
        tokens: BotTokens | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._client = client
        self._tokens = tokens
        self._send = sender(client, self._metrics)
        self._buckets = buckets
        self._limits = limits
        self._clock = clock
        self._by_team: dict[str, SlackCalls] = {}

    def for_team(self, team: str) -> SlackCalls:
        calls = self._by_team.get(team)
        if calls is None:
            scheduler = WorkspaceScheduler(
                team,
                self._sender_for(team),
                self._buckets,
                self._limits,
                self._clock,
                self._metrics,
            )
            calls = self._by_team[team] = SlackCalls(scheduler, self._clock)
        return calls

    def _sender_for(self, team: str) -> Callable[[str, dict[str, Any]], Any]:
        tokens = self._tokens
        if tokens is None:
            return self._send

        async def token_for(method: str) -> str:
            try:
                token = await tokens.bot_token(team)
            except StoreUnavailable as error:  # not seen by this process, store away: later
                raise PassingFailure(f"token unknown ({error})", maybe_arrived=False) from error
            if token is None:
                # Uninstalled (or never installed): Slack would refuse any token we have.
                raise DeliveryFailed(f"{method}: the app is not installed in {team}", NOT_INSTALLED)
            return token

        async def send(method: str, params: dict[str, Any]) -> dict[str, Any]:
            token = await token_for(method)
            try:
                return dict(await sender(self._client, self._metrics, token)(method, params))
            except DeliveryFailed as error:
                if error.code not in DEAD_TOKEN_ERRORS:
                    raise
                # Revoked, or replaced by a reinstall another replica stored: read the
                # installation again. Slack acted on nothing, so a new token may resend it.
                tokens.token_refused(team, token)
                fresh = await token_for(method)
                if fresh == token:
                    raise
                log.info("team %s: its bot token was refused (%s); using its new one", team, error)
                return dict(await sender(self._client, self._metrics, fresh)(method, params))

        return send

    async def close(self) -> None:
        for calls in self._by_team.values():
            await calls.scheduler.close()


def _edit(channel: str, ts: str, content: Content) -> dict[str, Any]:
    return {"channel": channel, "ts": ts, "text": content.text, "blocks": content.blocks or []}


def _without_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
