"""Clocks for adapters: the system clock is aware UTC; fixed and stepping clocks for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub.clock import Clock, FixedClock, StepClock, SystemClock

STOCKHOLM_SUMMER = timezone(timedelta(hours=2))


def test_system_clock_is_aware_utc() -> None:
    """SystemClock reads the real time as an aware UTC instant."""
    before = datetime.now(UTC)
    now = SystemClock().now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert before <= now <= after


@pytest.mark.parametrize("clock", [SystemClock(), FixedClock(datetime(2027, 1, 1, tzinfo=UTC))])
def test_clocks_satisfy_the_protocol(clock: Clock) -> None:
    """Every clock is a Clock."""
    assert isinstance(clock, Clock)


def test_fixed_clock_stands_still_and_normalises_to_utc() -> None:
    """A FixedClock answers the instant it was given, in UTC, until moved."""
    clock = FixedClock(datetime(2027, 6, 18, 14, 0, tzinfo=STOCKHOLM_SUMMER))
    assert clock.now().isoformat() == "2027-06-18T12:00:00+00:00"
    assert clock.now().isoformat() == "2027-06-18T12:00:00+00:00"
    assert clock.advance(timedelta(minutes=90)).isoformat() == "2027-06-18T13:30:00+00:00"
    clock.set(datetime(2027, 12, 24, 9, 0, tzinfo=UTC))
    assert clock.now().isoformat() == "2027-12-24T09:00:00+00:00"


def test_step_clock_moves_by_its_step_on_each_reading() -> None:
    """A StepClock gives start, start + step, start + 2 steps, ..."""
    clock = StepClock(datetime(2027, 3, 28, 0, 59, tzinfo=UTC), timedelta(minutes=1))
    readings = [clock.now().isoformat() for _ in range(3)]
    assert readings == [
        "2027-03-28T00:59:00+00:00",
        "2027-03-28T01:00:00+00:00",
        "2027-03-28T01:01:00+00:00",
    ]


def test_naive_times_are_refused() -> None:
    """A clock cannot be set to a naive datetime."""
    naive = datetime(2027, 1, 1)  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError, match="at must be a timezone-aware datetime"):
        FixedClock(naive)
    with pytest.raises(ValueError, match="start must be a timezone-aware datetime"):
        StepClock(naive)
    with pytest.raises(ValueError, match="step must be a positive duration"):
        StepClock(datetime(2027, 1, 1, tzinfo=UTC), timedelta(0))
