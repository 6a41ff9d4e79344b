"""No secret reaches a log line, whatever the level or the library that logs it."""

from __future__ import annotations

import logging

from bot.log_setup import REDACTED, Redactor


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
