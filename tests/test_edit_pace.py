"""When the next partial edit is due, as the streams read once an edit interval: counted from
the read that carried the last edit, so the time Slack's token and the queue took does not
push it past the next read; but never right after an edit that waited in the queue."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.edit_pace import EditPace
from tests.clocks import ManualClock

INTERVAL = 1.0


@given(
    read=st.floats(min_value=0.0, max_value=1e6),
    took=st.floats(min_value=0.0, max_value=INTERVAL / 2),
)
def test_the_edit_after_one_that_took_a_while_to_leave_goes_with_the_next_read(
    read: float, took: float
) -> None:
    """An edit offered with a read and sent `took` later (the token take, the queue): the
    next is due at the stream's next read, an interval later, however long that took."""
    clock = ManualClock()
    clock.advance(read)
    offered = clock.now()
    pace = EditPace(clock, INTERVAL, arrivals_every=INTERVAL)
    pace.shown(offered_at=offered, sent_at=offered + took)
    assert not pace.due()
    clock.advance(INTERVAL)  # the stream's next read
    assert pace.due()


def test_an_edit_that_waited_in_the_queue_is_not_followed_by_another_at_once() -> None:
    clock = ManualClock()
    offered = clock.now()
    pace = EditPace(clock, INTERVAL, arrivals_every=INTERVAL)
    pace.shown(offered_at=offered, sent_at=offered + 0.9)  # the budget held it for 0.9 s
    clock.advance(INTERVAL)  # the next read
    assert not pace.due()
    clock.advance(INTERVAL / 2 - 0.1)  # half an interval after it left, and then some
    assert pace.due()
