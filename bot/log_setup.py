"""Logging that cannot leak a secret.

slack_sdk logs request headers (the bot token) at DEBUG, and any library may one day put a
key in an error message. Every record passes through `Redactor` before it is written, so
`LOG_LEVEL=DEBUG` on a production box is safe to turn on. Text bound for Slack passes
through the same redaction (`redact_text`), so a credential CustomGPT echoes in an error
message is not shown to a channel either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Slack tokens, bearer credentials, and CustomGPT API keys (Laravel Sanctum tokens:
# `<key id>|<40 characters>`), whether or not they are ours.
# No word boundary in front: text glued to a token must not shield it.
_TOKEN_SHAPES = re.compile(
    r"(?:xox[a-z]|xapp)-[A-Za-z0-9-]+"  # xoxe-: refresh tokens (token rotation)
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=|-]+"
    r"|[0-9]+\|[A-Za-z0-9]{40,}"
)
REDACTED = "[redacted]"


class Redactor(logging.Filter):
    """Replace the configured secrets, and anything shaped like a Slack token or a bearer
    credential, in the formatted message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

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


# Bolt reads SLACK_BOT_TOKEN from the environment even when given a client (ours, sharing the
# process's connection pool), then warns on every start that the token is unused.
_KNOWN_NOISE = frozenset({"As you gave `client` as well, `token` will be unused."})


def _not_noise(record: logging.LogRecord) -> bool:
    return record.getMessage() not in _KNOWN_NOISE


def configure(level: str, secrets: Iterable[str]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_not_noise)
    handler.addFilter(use_secrets(secrets))
    logging.basicConfig(level=level, handlers=[handler], force=True)
