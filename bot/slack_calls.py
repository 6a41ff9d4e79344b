"""Posting and editing Slack messages within Slack's rate limits.

`chat.update` is Tier 3 (about 50 a minute per workspace), shared by every answer streaming at
once. So edits draw from a workspace-wide budget kept in the store, a 429 puts the whole
workspace (every replica) on a cool-down, and only edits that matter (the final text, a
finished part) wait for Slack; intermediate edits are skipped and their text folded into the
next one. Nothing here sleeps inside slack_sdk: the caller decides who waits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import keys
from bot.clock import Clock
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

BUDGET_WINDOW = 60
MAX_ATTEMPTS = 8
DEFAULT_RETRY_AFTER = 1.0
MAX_NETWORK_BACKOFF = 15.0
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError)


class MessageTooLong(Exception):
    """Slack refused the text as too long (`msg_too_long`); split and try again."""


class SlackUnavailable(Exception):
    """Slack kept refusing a call that had to land; logged, nothing more to do.

    `code` is Slack's error (`not_in_channel`, …), None when it kept rate limiting."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Content:
    text: str
    blocks: list[dict[str, Any]] | None = None


def _retry_after(error: SlackApiError) -> float | None:
    """Seconds Slack asked us to wait, or None when the error is not a rate limit.

    Rate limits come as HTTP 429 and have also been seen as HTTP 200 `ratelimited`."""
    response = error.response
    code = response.get("error") if isinstance(response.data, dict) else None
    if response.status_code != 429 and code not in ("ratelimited", "rate_limited"):
        return None
    header = (response.headers or {}).get("Retry-After") or (response.headers or {}).get(
        "retry-after"
    )
    try:
        return max(0.0, float(header)) if header is not None else DEFAULT_RETRY_AFTER
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def _rate_limit_or_raise(error: SlackApiError) -> float | None:
    """How long Slack asked us to wait; MessageTooLong when it refused the size (the caller
    splits); None for any other refusal."""
    if _error_code(error) == "msg_too_long":
        raise MessageTooLong() from error
    return _retry_after(error)


def _error_code(error: SlackApiError) -> str:
    data = error.response.data
    return str(data.get("error")) if isinstance(data, dict) else "unknown_error"


class UpdateBudget:
    """The workspace's share of chat.update calls, counted across every replica."""

    def __init__(self, store: Store, team: str, per_minute: int, clock: Clock) -> None:
        self._store = store
        self._team = team
        self._per_minute = per_minute
        self._clock = clock

    async def cooldown_left(self) -> float:
        try:
            until = await self._store.get(keys.update_cooldown(self._team))
        except StoreUnavailable:
            return 0.0  # fail open: the per-message throttle still holds
        return 0.0 if until is None else max(0.0, float(until) - self._clock.wall())

    async def try_spend(self) -> bool:
        """Take one edit if the workspace has one to give right now."""
        if await self.cooldown_left() > 0:
            return False
        try:
            return await self._count() <= self._per_minute
        except StoreUnavailable:
            return True

    async def spend(self) -> None:
        """Count an edit that goes out regardless (a final text)."""
        try:
            await self._count()
        except StoreUnavailable:
            pass  # the edit matters more than its bookkeeping

    async def cool_down(self, seconds: float) -> None:
        until = self._clock.wall() + seconds
        try:
            await self._store.set(
                keys.update_cooldown(self._team), f"{until:.3f}", ttl=int(seconds) + 1
            )
        except StoreUnavailable:
            log.warning("store unreachable; Slack's Retry-After applies to this answer only")

    async def _count(self) -> int:
        window = int(self._clock.wall() // BUDGET_WINDOW)
        return await self._store.incr(keys.update_budget(self._team, window), BUDGET_WINDOW * 2)


class SlackCalls:
    """The three calls an answer makes, with the waiting rules above."""

    def __init__(self, client: AsyncWebClient, budget: UpdateBudget, clock: Clock) -> None:
        self._client = client
        self._budget = budget
        self._clock = clock

    @classmethod
    def for_team(
        cls, client: AsyncWebClient, store: Store, team: str, per_minute: int, clock: Clock
    ) -> SlackCalls:
        """Calls drawing on `team`'s shared edit budget (`SLACK_UPDATE_BUDGET` a minute)."""
        return cls(client, UpdateBudget(store, team, per_minute, clock), clock)

    async def post(self, channel: str, thread_ts: str | None, content: Content) -> str:
        """Post a reply that must appear; waits out rate limits. Returns its ts."""
        response = await self._must_land(
            "chat.postMessage",
            channel=channel,
            thread_ts=thread_ts,
            text=content.text,
            blocks=content.blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    async def update_if_allowed(self, channel: str, ts: str, content: Content) -> bool:
        """An intermediate edit: sent only if the budget allows and Slack is not pushing back.
        False means "not shown yet"; the caller folds the text into a later edit."""
        if not await self._budget.try_spend():
            return False
        try:
            await self._client.chat_update(
                channel=channel, ts=ts, text=content.text, blocks=content.blocks or []
            )
        except NETWORK_ERRORS as error:
            log.warning("chat.update did not reach Slack (%s)", type(error).__name__)
            return False
        except SlackApiError as error:
            retry_after = _rate_limit_or_raise(error)
            if retry_after is not None:
                await self._budget.cool_down(retry_after)
                return False
            log.warning("chat.update failed: %s", _error_code(error))
            return False
        return True

    async def update(self, channel: str, ts: str, content: Content) -> None:
        """An edit that must land (a final text); waits for cool-downs and Retry-After."""
        wait = await self._budget.cooldown_left()
        if wait > 0:
            await self._clock.sleep(wait)
        await self._budget.spend()
        await self._must_land(
            "chat.update", channel=channel, ts=ts, text=content.text, blocks=content.blocks or []
        )

    async def _must_land(self, method: str, **params: Any) -> Any:
        for attempt in range(MAX_ATTEMPTS):
            try:
                return await self._client.api_call(method, json=_without_none(params))
            except NETWORK_ERRORS as error:
                # An edit can be repeated safely; a post only if it surely never arrived,
                # else a lost response would leave a second, orphaned reply.
                if method != "chat.update" and not isinstance(error, aiohttp.ClientConnectorError):
                    raise SlackUnavailable(f"{method}: {type(error).__name__}") from error
                delay = min(MAX_NETWORK_BACKOFF, 2.0**attempt)
                log.warning(
                    "%s did not reach Slack (%s); retrying in %.0fs",
                    method,
                    type(error).__name__,
                    delay,
                )
                await self._clock.sleep(delay)
            except SlackApiError as error:
                retry_after = _rate_limit_or_raise(error)
                if retry_after is None:
                    code = _error_code(error)
                    log.error("%s failed: %s", method, code)
                    raise SlackUnavailable(f"{method}: {code}", code) from error
                if method == "chat.update":
                    await self._budget.cool_down(retry_after)
                log.info("%s rate limited; retrying in %.1fs", method, retry_after)
                await self._clock.sleep(retry_after)
        raise SlackUnavailable(f"{method}: Slack still refused after {MAX_ATTEMPTS} attempts")


def _without_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
