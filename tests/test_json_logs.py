"""A real bot process with `LOG_FORMAT=json` and `METRICS_PORT`: every log line is one JSON
object that says what it is about and holds no secret; /metrics lives on its own port."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import aiohttp

from tests.driver import SlackSender
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.test_process import SECRET, bot_env, free_port, start_bot_process
from tests.views import final_text

FIELDS = {"time", "level", "logger", "message", "team", "channel", "thread", "event_id"}


async def test_json_log_lines_carry_the_request_context_and_no_secret(
    slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    port, metrics_port = free_port(), free_port()
    env = bot_env(slack, customgpt, port, None) | {
        "LOG_FORMAT": "json",
        "METRICS_PORT": str(metrics_port),
        "LOG_LEVEL": "DEBUG",  # slack_sdk logs request headers (the token) at DEBUG
    }
    log: list[str] = []
    process = await start_bot_process(env, log)
    assert process.stderr is not None
    try:
        async with aiohttp.ClientSession() as session:
            sender = SlackSender(f"http://127.0.0.1:{port}", SECRET, team, session)
            ts = await sender.mention("Log this", channel="C7")
            await slack.wait_for(
                lambda: (
                    bool(slack.thread("C7", ts))
                    and final_text(slack.thread("C7", ts)[0]) == "You asked: Log this"
                )
            )
            async with session.get(f"http://127.0.0.1:{port}/metrics") as public:
                assert public.status == 404  # not on the public port when METRICS_PORT is set
            async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as metrics:
                assert metrics.status == 200
                assert "questions_received_total 1.0" in await metrics.text()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest = (await process.stderr.read()).decode()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    output = "".join(log) + rest
    lines: list[dict[str, Any]] = [json.loads(line) for line in output.splitlines() if line]
    assert lines and all(FIELDS | {"request_id"} <= line.keys() for line in lines)
    for secret in ("xoxb-process", SECRET, "test-key"):
        assert secret not in output
    (answered,) = [line for line in lines if line["message"].startswith("answered in C7")]
    assert answered["level"] == "INFO" and answered["logger"] == "bot.answer"
    assert (answered["team"], answered["channel"], answered["thread"]) == (team, "C7", ts)
    assert answered["event_id"].startswith("Ev") and answered["request_id"]
    # Lines of that request before the answer began carry the same request id.
    same_request = [line for line in lines if line["request_id"] == answered["request_id"]]
    assert len(same_request) >= 2
