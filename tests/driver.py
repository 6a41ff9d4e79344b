"""Drives the real bot over HTTP the way Slack does: signed Events API, slash-command and
interactivity requests to the running app."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from bot.runtime import Runtime

_ids = itertools.count(1)


def sign(secret: str, body: str, timestamp: str | None = None) -> dict[str, str]:
    """Headers Slack adds to every request (v0 HMAC-SHA256 signature)."""
    timestamp = timestamp or str(int(time.time()))
    base = f"v0:{timestamp}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def next_ts() -> str:
    return f"1800000000.{next(_ids):06d}"


class SlackSender:
    """Sends what Slack sends (signed events, commands, clicks) to a bot at `url`."""

    def __init__(self, url: str, secret: str, team: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.secret = secret
        self.team = team
        self.session = session

    async def post(
        self, path: str, body: str, content_type: str, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        all_headers = {"Content-Type": content_type, **sign(self.secret, body), **(headers or {})}
        async with self.session.post(self.url + path, data=body, headers=all_headers) as resp:
            await resp.read()
            return resp

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        authorized_team: str | None = None,
    ) -> tuple[int, str]:
        """Deliver one Events API callback; returns (HTTP status, event id). The installation
        it is authorized for is the sender's team unless `authorized_team` says otherwise
        (a Slack Connect channel: the event's team is the other side's)."""
        event_id = event_id or f"Ev{next(_ids):08d}"
        payload = {
            "token": "verification-token",
            "team_id": self.team,
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [
                {"team_id": authorized_team or self.team, "user_id": "UBOT", "is_bot": True}
            ],
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        resp = await self.post("/slack/events", json.dumps(payload), "application/json", headers)
        return resp.status, event_id

    async def mention(
        self,
        text: str,
        *,
        channel: str = "C1",
        user: str = "U1",
        ts: str | None = None,
        thread_ts: str | None = None,
        event_id: str | None = None,
    ) -> str:
        """`@bot text` in a channel; returns the message ts (the reply's thread)."""
        ts = ts or next_ts()
        event = {
            "type": "app_mention",
            "user": user,
            "text": f"<@UBOT> {text}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        status, _ = await self.event(event, event_id=event_id)
        assert status == 200
        return ts

    async def message(
        self,
        text: str,
        *,
        channel: str,
        channel_type: str,
        user: str = "U1",
        ts: str | None = None,
        thread_ts: str | None = None,
        **extra: Any,
    ) -> str:
        """A `message` event (a DM, a thread reply, a bot post, an edit…)."""
        ts = ts or next_ts()
        event: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "channel_type": channel_type,
            "event_ts": ts,
            **extra,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        status, _ = await self.event(event)
        assert status == 200
        return ts

    async def command(
        self,
        text: str,
        *,
        response_url: str,
        channel: str = "C1",
        user: str = "U1",
        command: str = "/customgpt",
    ) -> tuple[int, dict[str, Any] | str]:
        """A signed slash-command request; returns (status, the immediate response body)."""
        form = {
            "token": "verification-token",
            "team_id": self.team,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": "someone",
            "command": command,
            "text": text,
            "api_app_id": "A1",
            "response_url": response_url,
            "trigger_id": f"trigger-{next(_ids)}",
        }
        body = urlencode(form)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(self.secret, body)}
        async with self.session.post(self.url + "/slack/events", data=body, headers=headers) as r:
            text_body = await r.text()
            try:
                return r.status, json.loads(text_body)
            except ValueError:
                return r.status, text_body

    async def action(self, payload: dict[str, Any]) -> int:
        """A signed interactivity request (`payload=` form field), e.g. a button click."""
        payload = {"team": {"id": self.team}, "api_app_id": "A1", **payload}
        body = urlencode({"payload": json.dumps(payload)})
        resp = await self.post("/slack/events", body, "application/x-www-form-urlencoded")
        return resp.status

    async def submit_view(
        self, view: dict[str, Any], values: dict[str, dict[str, Any]], *, user: str = "U1"
    ) -> tuple[int, dict[str, Any] | str]:
        """A modal's submission (`view_submission`), the view as Slack echoes it with what
        the user typed (`values`: block id → action id → {"type", "value"}); returns (status,
        the immediate response body: `response_action` and its errors or view)."""
        submitted = {
            **view,
            "id": f"V{next(_ids):08d}",
            "team_id": self.team,
            "state": {"values": values},
        }
        payload = {
            "type": "view_submission",
            "team": {"id": self.team, "domain": "fake"},
            "user": {"id": user, "team_id": self.team},
            "api_app_id": "A1",
            "trigger_id": f"trigger-{next(_ids)}",
            "view": submitted,
        }
        body = urlencode({"payload": json.dumps(payload)})
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(self.secret, body)}
        async with self.session.post(self.url + "/slack/events", data=body, headers=headers) as r:
            text_body = await r.text()
            try:
                return r.status, json.loads(text_body)
            except ValueError:
                return r.status, text_body


class RunningBot(SlackSender):
    """The app under test, in this process: its runtime and the URL it listens on."""

    def __init__(
        self,
        runtime: Runtime,
        runner: web.AppRunner,
        session: aiohttp.ClientSession,
        team: str,
    ) -> None:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        super().__init__(url, runtime.settings.slack_signing_secret, team, session)
        self.runtime = runtime
        self.runner = runner
        self._closed = False

    async def close(self) -> None:
        """Shut down like the process does on SIGTERM (a restart, seen from Slack)."""
        if self._closed:
            return
        self._closed = True
        await self.session.close()
        await self.runner.cleanup()
        await self.runtime.close()

    async def idle(self) -> None:
        """Wait until every listener and background job the requests started has ended."""
        await self.runtime.tasks.idle()
