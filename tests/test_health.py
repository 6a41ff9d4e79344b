"""The event loop lag probe: a loop blocked past the limit shows, even before the probe runs."""

from __future__ import annotations

import pytest

from bot.health import LoopLag


def test_a_probe_that_runs_late_reports_its_lag() -> None:
    lag = LoopLag(start=10.0)
    assert lag.arrived(10.0, next_due=10.5) == 0.0
    assert lag.arrived(13.5, next_due=14.0) == pytest.approx(3.0)
    assert lag.lag(13.6) == pytest.approx(3.0)  # the last probe's lag stands until the next


def test_a_loop_blocked_now_shows_before_the_probe_runs() -> None:
    lag = LoopLag(start=10.0)
    lag.arrived(10.0, next_due=10.5)
    assert lag.lag(10.4) == 0.0
    # Due at 10.5, not run by 13.5: three seconds behind, whatever the last probe said.
    assert lag.lag(13.5) == pytest.approx(3.0)
