"""The stream reading clock: every paced read of a stream falls on its phase of one grid, so
streams of a phase share a wake-up and a burst of answers is spread over the phases, which
are READ_PHASE_EVERY apart whatever the pace."""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from bot.customgpt import (
    MIN_READ_PACE,
    READ_PACE,
    READ_PHASE_EVERY,
    read_pace,
    read_slots,
    until_next_read,
)

NOW = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_infinity=False)
SLOT = st.integers(min_value=0, max_value=10_000)
#: Paces as SLACK_UPDATE_INTERVAL makes them (`read_pace`), from its floor to a slow five s.
PACE = st.floats(min_value=0.0, max_value=5.0).map(read_pace)


def phase_of(moment: float, pace: float = READ_PACE) -> float:
    """Where `moment` falls within the pace, in slots (a whole number on the grid)."""
    return (moment % pace) / (pace / read_slots(pace))


@given(NOW, SLOT, PACE)
def test_the_next_read_is_within_one_pace_and_on_the_streams_phase(
    now: float, slot: int, pace: float
) -> None:
    assert pace >= MIN_READ_PACE
    wait = until_next_read(now, slot, pace)
    assert 0.0 < wait <= pace + 1e-9
    landed = phase_of(now + wait, pace)
    slots = read_slots(pace)
    assert abs(pace / slots - READ_PHASE_EVERY) <= READ_PHASE_EVERY / 2  # phases this far apart
    nearest = round(landed) % slots
    assert math.isclose(landed, round(landed), abs_tol=1e-3) or math.isclose(
        landed, slots, abs_tol=1e-3
    )
    assert nearest == slot % slots


@given(NOW, SLOT, st.floats(min_value=0.01, max_value=0.99))
def test_streams_of_one_phase_waiting_within_a_pace_read_at_the_same_moment(
    now: float, slot: int, later: float
) -> None:
    first = now + until_next_read(now, slot)
    # Another stream of the same phase, asking at any moment between then and that read.
    asked = first - later * (first - now)
    assume(asked < first)  # rounding can land it on the read itself, which asks for the next
    assert math.isclose(asked + until_next_read(asked, slot), first, abs_tol=1e-6)


def test_a_burst_is_spread_over_every_phase() -> None:
    slots = read_slots(READ_PACE)
    moments = {round(phase_of(until_next_read(0.0, slot))) % slots for slot in range(50)}
    assert moments == set(range(slots))
