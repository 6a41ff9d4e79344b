"""What reaches `/slack/events` before any listener: strangers' requests are refused cheaply
(401, and at most one log line however many arrive), a signed body that does not parse gets a
400 and one line, and nothing of either reaches Slack, CustomGPT or the store."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.clocks import ManualClock
from tests.driver import RunningBot, sign
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack

StartBot = Callable[..., Awaitable[RunningBot]]
GARBAGE = '{"x":'
# What a client can put in a header value: no control characters (aiohttp refuses them).
HEADER_TEXT = st.text(st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=80)


async def post(bot: RunningBot, body: bytes | str, headers: dict[str, str]) -> int:
    async with bot.session.post(bot.url + "/slack/events", data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every line the requests wrote, tracebacks included (as an operator would see them)."""
    return caplog.text.splitlines()


async def store_keys(redis_client: redis.Redis, team: str) -> list[str]:
    return [k async for k in redis_client.scan_iter(match=f"cgpt:{team}:*")]


async def test_two_hundred_unsigned_garbage_posts_get_401_and_at_most_one_log_line(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await bot.idle()
    caplog.set_level(logging.INFO)
    caplog.clear()
    json_type = {"Content-Type": "application/json"}
    wrong = {**json_type, **sign("not-the-secret", GARBAGE)}
    statuses = [await post(bot, GARBAGE, json_type) for _ in range(100)]
    statuses += [await post(bot, GARBAGE, wrong) for _ in range(100)]
    await bot.idle()

    assert statuses == [401] * 200
    assert len(log_lines(caplog)) <= 1
    assert not any(r.exc_info for r in caplog.records)
    assert [c.method for c in slack.calls if c.method != "auth.test"] == []
    assert customgpt.requests == []
    assert await store_keys(redis_client, team) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": ""},
        {"X-Slack-Signature": "v0=abc"},
    ],
    ids=["timestamp-not-a-number", "empty-headers", "no-timestamp"],
)
async def test_malformed_signature_headers_are_unsigned_not_a_crash(
    bot: RunningBot, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    assert await post(bot, GARBAGE, {"Content-Type": "application/json", **headers}) == 401
    assert len(log_lines(caplog)) <= 1
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (GARBAGE, "application/json"),
        ("[1, 2, 3]", "application/json"),
        ('"just a string"', "application/json"),
        ("payload=%7B%22type%22%3A", "application/x-www-form-urlencoded"),  # payload={"type":
        ("payload=%5B%5D", "application/x-www-form-urlencoded"),  # payload=[]
        ('{"authorizations": "x"}', "application/json"),
    ],
    ids=["cut-json", "json-list", "json-string", "cut-payload", "list-payload", "odd-shape"],
)
async def test_a_signed_body_that_does_not_parse_gets_400_and_one_log_line(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    body: str,
    content_type: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await bot.idle()
    caplog.set_level(logging.INFO)
    caplog.clear()
    resp = await bot.post("/slack/events", body, content_type)
    await bot.idle()

    assert resp.status == 400
    assert len(log_lines(caplog)) == 1
    assert "does not parse" in log_lines(caplog)[0]
    assert [c.method for c in slack.calls if c.method != "auth.test"] == []
    assert customgpt.requests == []


async def test_a_non_utf8_body_is_refused_like_any_unsigned_request(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    body = b'{"x": "\xff\xfe"}'
    headers = {"Content-Type": "application/json", **sign(bot.secret, "ignored")}
    assert await post(bot, body, headers) == 401
    assert not any(r.exc_info for r in caplog.records)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain"]
    ),
    timestamp=st.none() | HEADER_TEXT | st.integers().map(str),
    signature=st.none() | HEADER_TEXT,
)
async def test_any_unsigned_request_gets_401_and_never_a_traceback(
    bot: RunningBot,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    timestamp: str | None,
    signature: str | None,
) -> None:
    headers = {"Content-Type": content_type}
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    with caplog.at_level(logging.INFO):
        status = await post(bot, body, headers)
    assert status == 401
    assert not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records)


async def test_the_unsigned_warning_comes_back_once_a_minute_with_a_count(
    start_bot: StartBot, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    bot = await start_bot(clock=clock)
    caplog.set_level(logging.INFO)
    caplog.clear()
    for _ in range(30):
        assert await post(bot, GARBAGE, {"Content-Type": "application/json"}) == 401
    clock.advance(61)
    assert await post(bot, GARBAGE, {"Content-Type": "application/json"}) == 401

    first, second = log_lines(caplog)
    assert "without a valid Slack signature" in first
    assert "from 127.0.0.1" in first  # where the flood comes from: no access line says it
    assert "29 more like this" in second
