"""Logging that cannot leak a secret.

slack_sdk logs request headers (the bot token) at DEBUG, and any library may one day put a
key in an error message. Every record passes through `Redactor` before it is written, so
`LOG_LEVEL=DEBUG` on a production box is safe to turn on. Text bound for Slack passes
through the same redaction (`redact_text`), so a credential CustomGPT echoes in an error
message is not shown to a channel either.

Each line can say what it is about (team, channel, thread, Slack's event id and a request id
of our own): the values live in context variables set where a request or an answer begins,
so asyncio tasks started from there inherit them. `LOG_FORMAT=json` writes one JSON object a
line with those fields, for log pipelines that index them.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger import json as jsonlogger

# Slack tokens, bearer credentials, and CustomGPT API keys (Laravel Sanctum tokens:
# `<key id>|<40 characters>`), whether or not they are ours.
# No word boundary in front: text glued to a token must not shield it.
_TOKEN_SHAPES = re.compile(
    r"(?:xox[a-z]|xapp)-[A-Za-z0-9-]+"  # xoxe-: refresh tokens (token rotation)
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=|-]+"
    r"|[0-9]+\|[A-Za-z0-9]{40,}"
    # An OAuth code and its state: the redirect's access line carries both in its query,
    # Bolt's warning for a refused exchange names the code, and the debug lines of Bolt
    # and slack_sdk show the redirect's query and the exchange's parameters (a Python
    # dict's repr). A code is exchanged for a token by whoever holds the app's secret; the
    # state lets a browser finish an install. Narrow shapes: "code" is a common word.
    r"|(?<=[?&]code=)[^&\s\"']+|(?<=[?&]state=)[^&\s\"']+"
    r"|(?<=oauth\.v2\.access result with code: )\S+"
    r"|(?<='code': ')[^']+|(?<='code': \[')[^']+|(?<='state': ')[^']+|(?<='state': \[')[^']+"
)
REDACTED = "[redacted]"


class Redactor(logging.Filter):
    """Replace the configured secrets, and anything shaped like a Slack token or a bearer
    credential, in the formatted message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        """Redact one more secret from now on (a CustomGPT key a workspace connected)."""
        if len(secret) >= 6 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _TOKEN_SHAPES.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_redactor = Redactor(())  # shapes only, until `configure` names the process's secrets


def redact_text(text: str) -> str:
    """`text` without the configured secrets or anything shaped like a token: for every text
    that came from outside and is about to be shown in Slack."""
    return _redactor.redact(text)


def use_secrets(secrets: Iterable[str]) -> Redactor:
    """Make `redact_text` (and the returned log filter) replace these secrets too."""
    global _redactor
    _redactor = Redactor(secrets)
    return _redactor


def add_secret(secret: str) -> None:
    """Redact `secret` in every log line and Slack text from now on: for secrets learned while
    running (the CustomGPT keys workspaces connect), which `configure` could not name."""
    _redactor.add(secret)


# Bolt reads SLACK_BOT_TOKEN from the environment even when given a client (ours, sharing the
# process's connection pool), then warns on every start that the token is unused.
_KNOWN_NOISE = frozenset({"As you gave `client` as well, `token` will be unused."})


def _not_noise(record: logging.LogRecord) -> bool:
    return record.getMessage() not in _KNOWN_NOISE


# -- what a line is about: set where a request or an answer begins, read by every line ------

CONTEXT_FIELDS = ("team", "channel", "thread", "event_id", "request_id")
_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"log_{name}", default=None) for name in CONTEXT_FIELDS
}


def new_request(*, team: str | None, channel: str | None, event_id: str | None) -> str:
    """Start the log context of an incoming request (every field, so nothing of a previous
    request in the same task lingers); returns the request id generated for it. Tasks started
    from here on (Bolt's listeners) inherit the context."""
    request_id = uuid.uuid4().hex[:16]
    values = {"team": team, "channel": channel, "thread": None, "event_id": event_id}
    for name, value in {**values, "request_id": request_id}.items():
        _context[name].set(value)
    return request_id


def bind(**fields: str | None) -> None:
    """Name what the current task works on (an answer: its channel and thread)."""
    for name, value in fields.items():
        _context[name].set(value)


def _with_context(record: logging.LogRecord) -> bool:
    for name, var in _context.items():
        setattr(record, name, var.get())
    return True


class JsonFormatter(jsonlogger.JsonFormatter):
    """One JSON object a line: time, level, logger, message and the request's context.

    The library formats a traceback from the exception itself, past the redaction of
    `exc_text`: redact it here too."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s "
            + " ".join(f"%({name})s" for name in CONTEXT_FIELDS),
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            rename_fields_keep_missing=True,
        )

    def formatException(self, ei: Any) -> str | list[str]:  # type: ignore[override]
        formatted = super().formatException(ei)
        if isinstance(formatted, str):
            return _redactor.redact(formatted)
        return [_redactor.redact(line) for line in formatted]


LOG_FORMATS = ("text", "json")
#: slack_sdk's Web API clients build a debug line of every request and response, whole bodies
#: included, whenever their logger's own level is unset (they test `logger.level`, not the
#: effective level), so with DEBUG off every Slack call paid about 45 µs for a line dropped
#: at once. Given the configured level, they build it only when it would be shown.
SLACK_SDK_CLIENT_LOGGERS = ("slack_sdk.web.async_base_client", "slack_sdk.web.base_client")


def configure(level: str, secrets: Iterable[str], log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_not_noise)
    handler.addFilter(use_secrets(secrets))
    handler.addFilter(_with_context)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in SLACK_SDK_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(level)
