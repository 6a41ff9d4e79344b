"""Socket Mode: with an app token the same bot answers over Slack's WebSocket instead of HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp
import pytest

from bot.config import Settings
from bot.runtime import Runtime
from bot.server import run
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.polling import until
from tests.test_process import free_port
from tests.views import final_text


@pytest.mark.parametrize("signing_secret", ["test-signing-secret", ""], ids=["secret", "none"])
async def test_a_mention_over_socket_mode_is_acknowledged_and_answered(
    settings: Settings, slack: FakeSlack, customgpt: FakeCustomGPT, team: str, signing_secret: str
) -> None:
    # Slack signs nothing in Socket Mode, so the bot runs without a signing secret too.
    port = free_port()
    runtime = await Runtime.open(
        replace(
            settings,
            slack_app_token="xapp-1-test",
            slack_signing_secret=signing_secret,
            port=port,
        )
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(run(runtime, stop))
    try:
        await slack.wait_for(lambda: bool(slack.calls_to("apps.connections.open")))
        await slack.wait_for(lambda: slack.sockets_open == 1)
        customgpt.queue_answer(["Over ", "the socket."])
        ts = "1800000099.000100"
        envelope = await slack.push_event(
            {
                "team_id": team,
                "api_app_id": "A1",
                "type": "event_callback",
                "event_id": "EvSocket1",
                "event": {
                    "type": "app_mention",
                    "user": "U1",
                    "text": "<@UBOT> hello socket",
                    "ts": ts,
                    "channel": "C1",
                },
            }
        )
        await slack.wait_for(
            lambda: any(a.get("envelope_id") == envelope for a in slack.socket_acks)
        )
        await slack.wait_for(
            lambda: (
                bool(slack.thread("C1", ts))
                and final_text(slack.thread("C1", ts)[0]) == "Over the socket."
            )
        )
        await runtime.tasks.idle()
        # The probes and metrics are served on PORT in Socket Mode too; Slack's events are not.
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            await until(lambda: _answers(session, base + "/healthz"))
            async with session.get(base + "/healthz") as health:
                assert (health.status, await health.json()) == (200, {"ok": True})
            async with session.get(base + "/readyz") as ready:
                assert (ready.status, (await ready.json())["status"]) == (200, "ready")
            async with session.get(base + "/metrics") as metrics:
                assert metrics.status == 200
                assert "questions_answered_total 1.0" in await metrics.text()
            async with session.post(base + "/slack/events", data="{}") as events:
                assert events.status in (404, 405)
    finally:
        stop.set()
        await serving
        await runtime.close()

    assert customgpt.prompts() == ["hello socket"]
    assert slack.calls_to("apps.connections.open")[0].token == "xapp-1-test"


async def _answers(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False
