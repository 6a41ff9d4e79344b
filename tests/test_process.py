"""`python -m bot` as a real process: HTTP on PORT, a health check, an answered mention, and a
clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import aiohttp

from tests.conftest import PROJECT_ID
from tests.driver import SlackSender
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.views import final_text

SECRET = "process-signing-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_bot_process_serves_slack_over_http_and_stops_cleanly(
    slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CUSTOMGPT_"))}
    env.pop("REDIS_URL", None)  # the in-process store, announced once
    env |= {
        "PYTHONPATH": os.getcwd(),
        "PORT": str(port),
        "SLACK_BOT_TOKEN": "xoxb-process",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "CUSTOMGPT_API_KEY": "test-key",
        "CUSTOMGPT_API_URL": customgpt.api_url,
        "CUSTOMGPT_PROJECT_ID": str(PROJECT_ID),
        "SLACK_UPDATE_INTERVAL": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    log: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not any("listening on port" in line for line in log):
                line = (await process.stderr.readline()).decode()
                assert line, f"the bot exited early: {log}"
                log.append(line)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert (health.status, await health.json()) == (200, {"ok": True})
            sender = SlackSender(f"http://127.0.0.1:{port}", SECRET, team, session)
            ts = await sender.mention("Are you a real process?")
            await slack.wait_for(
                lambda: (
                    bool(slack.thread("C1", ts))
                    and final_text(slack.thread("C1", ts)[0])
                    == "You asked: Are you a real process?"
                )
            )
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest = (await process.stderr.read()).decode()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    output = "".join(log) + rest
    assert code == 0, output
    assert output.count("REDIS_URL is not set: using an in-process store") == 1
    assert "Traceback" not in output and "xoxb-process" not in output
