"""The per-channel circuit breaker: closed → open → half-open (one trial) → closed or open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.notify.breaker import BreakerState, CircuitBreaker

T0 = datetime(2027, 3, 28, 0, 0, tzinfo=UTC)
COOL = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_opens_after_the_threshold_of_consecutive_failures() -> None:
    """Below the threshold attempts go through; the third consecutive failure opens it."""
    breaker = CircuitBreaker(failure_threshold=3, cool_down=COOL)
    seen = []
    for second in range(3):
        seen.append((breaker.allow(at(second)), breaker.state(at(second))))
        breaker.record_failure(at(second))
    seen.append((breaker.allow(at(3)), breaker.state(at(3))))
    assert seen == [
        (True, BreakerState.CLOSED),
        (True, BreakerState.CLOSED),
        (True, BreakerState.CLOSED),
        (False, BreakerState.OPEN),
    ]


def test_a_success_resets_the_count() -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    breaker = CircuitBreaker(failure_threshold=2, cool_down=COOL)
    breaker.record_failure(at(0))
    breaker.record_success(at(1))
    breaker.record_failure(at(2))
    assert (breaker.state(at(3)), breaker.allow(at(3))) == (BreakerState.CLOSED, True)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # Opened at 0 (threshold 1); refused until 30 s; at 30 s exactly one trial is admitted.
        (
            [("fail", 0), ("allow", 29.999), ("allow", 30), ("allow", 31)],
            [False, True, False],
        ),
        # The trial succeeds: closed, everything goes through again.
        (
            [("fail", 0), ("allow", 30), ("ok", 31), ("allow", 31), ("allow", 32)],
            [True, True, True],
        ),
        # The trial fails at 32: open again for a full cool-down from 32.
        (
            [("fail", 0), ("allow", 30), ("fail", 32), ("allow", 61.9), ("allow", 62)],
            [True, False, True],
        ),
        # The trial never reports (cancelled): another is admitted a cool-down after it began.
        (
            [("fail", 0), ("allow", 30), ("allow", 59), ("allow", 60), ("allow", 61)],
            [True, False, True, False],
        ),
        # A permanent refusal proves the server answers: it closes the breaker like a success.
        (
            [("fail", 0), ("allow", 30), ("ok", 30.5), ("allow", 30.6)],
            [True, True],
        ),
    ],
)
def test_half_open_admits_one_trial(events: list[tuple[str, float]], expected: list[bool]) -> None:
    """Worked examples of the open → half-open → closed/open transitions (threshold 1, 30 s)."""
    breaker = CircuitBreaker(failure_threshold=1, cool_down=COOL)
    answers = []
    for event, second in events:
        if event == "fail":
            breaker.record_failure(at(second))
        elif event == "ok":
            breaker.record_success(at(second))
        else:
            answers.append(breaker.allow(at(second)))
    assert answers == expected


def test_state_and_retry_at_through_a_cycle() -> None:
    """``state`` and ``retry_at`` report the cycle: open until 30 s, then half-open, then closed."""
    breaker = CircuitBreaker(failure_threshold=1, cool_down=COOL)
    breaker.record_failure(at(0))
    observed = [(breaker.state(at(10)), breaker.retry_at(at(10)))]
    observed.append((breaker.state(at(30)), breaker.retry_at(at(30))))
    assert breaker.allow(at(30))
    observed.append((breaker.state(at(31)), breaker.retry_at(at(31))))
    breaker.record_success(at(32))
    observed.append((breaker.state(at(32)), breaker.retry_at(at(32))))
    assert observed == [
        (BreakerState.OPEN, at(30)),
        (BreakerState.HALF_OPEN, None),
        (BreakerState.HALF_OPEN, at(60)),
        (BreakerState.CLOSED, None),
    ]


def test_a_late_failure_while_open_extends_the_cool_down() -> None:
    """An attempt admitted before the breaker opened that fails later reopens it from then."""
    breaker = CircuitBreaker(failure_threshold=1, cool_down=COOL)
    breaker.record_failure(at(0))
    breaker.record_failure(at(20))
    assert (breaker.allow(at(30)), breaker.allow(at(50))) == (False, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold: must be at least 1"),
        ({"cool_down": timedelta(0)}, "cool_down: must be a positive duration"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    """A breaker that could never close or never open is refused, naming the argument."""
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


def test_naive_times_are_refused() -> None:
    """Time is an aware UTC argument; a naive datetime is an error naming ``now``."""
    breaker = CircuitBreaker()
    with pytest.raises(ValueError, match="now"):
        breaker.allow(datetime(2027, 3, 28, 12, 0))  # noqa: DTZ001 - the point of the test


_events = st.lists(
    st.tuples(
        st.sampled_from(["allow", "fail", "ok"]),
        st.floats(min_value=0, max_value=20, allow_nan=False),
    ),
    max_size=60,
)


@given(threshold=st.integers(min_value=1, max_value=4), events=_events)
def test_nothing_is_admitted_during_a_cool_down(
    threshold: int, events: list[tuple[str, float]]
) -> None:
    """Property: once the breaker is open, no attempt is admitted until the cool-down passed,
    and after each cool-down at most one attempt (the trial) is admitted until it reports."""
    breaker = CircuitBreaker(failure_threshold=threshold, cool_down=COOL)
    now = 0.0
    opened_at: float | None = None
    admitted_since_open = 0
    for event, step in events:
        now += step
        if event == "fail":
            breaker.record_failure(at(now))
            if breaker.state(at(now)) is BreakerState.OPEN:
                opened_at, admitted_since_open = now, 0
        elif event == "ok":
            breaker.record_success(at(now))
            opened_at = None
        else:
            admitted = breaker.allow(at(now))
            if opened_at is None:
                assert admitted
                continue
            if now - opened_at < COOL.total_seconds():
                assert not admitted
            if admitted:
                admitted_since_open += 1
                # Each further trial needs another full cool-down (a lost trial).
                assert admitted_since_open <= 1 + (now - opened_at) // COOL.total_seconds()
