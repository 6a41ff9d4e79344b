"""No secret reaches a log line, whatever the level or the library that logs it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.log_setup import REDACTED, SLACK_SDK_CLIENT_LOGGERS, Redactor, configure
from tests.fakes.slack import FakeSlack


def emit(redactor: Redactor, message: str, *args: object, exc: BaseException | None = None) -> str:
    record = logging.LogRecord("slack_sdk", logging.DEBUG, __file__, 1, message, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert redactor.filter(record)
    return logging.Formatter("%(message)s").format(record)


def test_configured_secrets_and_token_shapes_are_redacted() -> None:
    redactor = Redactor(["cgpt-secret-key-123", "signing-secret-xyz"])
    line = emit(
        redactor,
        "headers: %s body: %s",
        {"Authorization": "Bearer xoxb-1234-5678-abcdef"},
        "key=cgpt-secret-key-123 app=xapp-1-A1-99-ff sig=signing-secret-xyz",
    )
    for secret in ("xoxb-1234", "cgpt-secret-key-123", "xapp-1", "signing-secret-xyz"):
        assert secret not in line
    assert line.count(REDACTED) >= 4


def test_tracebacks_are_redacted_too() -> None:
    redactor = Redactor(["cgpt-secret-key-123"])
    try:
        raise RuntimeError("failed with cgpt-secret-key-123")
    except RuntimeError as error:
        line = emit(redactor, "boom", exc=error)
    assert "cgpt-secret-key-123" not in line and REDACTED in line


def test_ordinary_lines_are_untouched() -> None:
    assert emit(Redactor(["cgpt-secret-key-123"]), "answered in %s", "C1") == "answered in C1"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`configure` replaces the root logger's handlers and sets levels: put them back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sdk_levels = {name: logging.getLogger(name).level for name in SLACK_SDK_CLIENT_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, sdk_level in sdk_levels.items():
        logging.getLogger(name).setLevel(sdk_level)


async def logged_slack_call(level: str) -> list[str]:
    """The lines slack_sdk's client logs, redacted, around one Slack call under `level`."""
    configure(level, [])
    lines: list[str] = []
    collector = logging.Handler()
    collector.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    for log_filter in logging.getLogger().handlers[0].filters:
        collector.addFilter(log_filter)
    logging.getLogger().addHandler(collector)
    async with FakeSlack() as slack:
        client = AsyncWebClient(token="xoxb-1234-5678-abcdef", base_url=slack.api_url)
        await client.api_call("chat.postMessage", json={"channel": "C1", "text": "hello"})
    return [line for line in lines if "chat.postMessage" in line or "hello" in line]


@pytest.mark.usefixtures("restored_logging")
async def test_slack_sdk_request_lines_still_show_at_debug_and_stay_redacted() -> None:
    lines = await logged_slack_call("DEBUG")
    assert any(line.startswith("Sending a request") and "hello" in line for line in lines)
    assert not any("xoxb-1234" in line for line in lines)


@pytest.mark.usefixtures("restored_logging")
async def test_slack_sdk_clients_follow_the_configured_level() -> None:
    """Above DEBUG, slack_sdk's clients are told so: no request line is built or shown."""
    assert await logged_slack_call("INFO") == []
    for name in SLACK_SDK_CLIENT_LOGGERS:
        assert logging.getLogger(name).level == logging.INFO
