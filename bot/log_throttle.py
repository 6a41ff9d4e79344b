"""A log line for a condition that recurs with every request, written at most once per
interval so that it stays readable (and stays one line in an alert) however busy the bot is.
"""

from __future__ import annotations

import logging

from bot.clock import Clock


class ThrottledLog:
    """`warning()` writes at most once per `interval` seconds of `clock`; the lines held back
    meanwhile are counted in the next one written."""

    def __init__(self, logger: logging.Logger, interval: float, clock: Clock) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._held = 0

    def warning(self, message: str, *args: object) -> bool:
        """Log unless one was written less than `interval` ago; True when written."""
        now = self._clock.now()
        if self._last is not None and now - self._last < self._interval:
            self._held += 1
            return False
        if self._held:
            message += f" ({self._held} more like this not logged)"
        self._logger.warning(message, *args)
        self._last, self._held = now, 0
        return True
