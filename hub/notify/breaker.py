"""A circuit breaker per outbound channel (*kretsbrytare*): stop hammering a server that is down.

Closed, failures are counted; after ``failure_threshold`` consecutive transient failures the
breaker opens and refuses every attempt for ``cool_down``. Then it is half-open: it lets exactly
one trial through. A success closes it, a failure opens it for another ``cool_down``. If the
trial never reports back (its task was cancelled), another trial is allowed once ``cool_down``
has passed again, so a lost trial cannot wedge the breaker half-open for ever.

The default cool-down (15 s) is shorter than the notifier's time budget for one digest (30 s),
so every handling of a digest gets at least one trial while the server is down.

Only transient failures count. A permanent refusal (SMTP 5xx, HTTP 4xx) proves the server is up
and answering, so it counts as a success here.

Pure logic: every method takes ``now``; nothing reads a clock. Not thread-safe, but safe within
one event loop (no awaits inside).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from hub.calendar import require_aware

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"  # attempts go through; failures are counted
    OPEN = "open"  # attempts are refused until the cool-down is over
    HALF_OPEN = "half_open"  # one trial is in flight; others are refused


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after
    ``cool_down`` (one trial) → closed on success, open again on failure."""

    __slots__ = ("_failures", "_state", "_until", "cool_down", "failure_threshold")

    def __init__(
        self, failure_threshold: int = 5, cool_down: timedelta = timedelta(seconds=15)
    ) -> None:
        if failure_threshold < 1:
            msg = "failure_threshold: must be at least 1"
            raise ValueError(msg)
        if cool_down <= timedelta(0):
            msg = "cool_down: must be a positive duration"
            raise ValueError(msg)
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self._state = BreakerState.CLOSED
        self._failures = 0
        # OPEN: when the cool-down ends. HALF_OPEN: when the trial in flight counts as lost.
        self._until: datetime | None = None

    def state(self, now: datetime) -> BreakerState:
        """The state at ``now``: an open breaker whose cool-down is over reads half-open."""
        now = require_aware(now, "now")
        if self._state is BreakerState.OPEN and self._ready(now):
            return BreakerState.HALF_OPEN
        return self._state

    def allow(self, now: datetime) -> bool:
        """Whether an attempt may go ahead at ``now``; past the cool-down, one trial is let in."""
        now = require_aware(now, "now")
        if self._state is BreakerState.CLOSED:
            return True
        if not self._ready(now):
            return False
        self._state = BreakerState.HALF_OPEN
        self._until = now + self.cool_down
        return True

    def retry_at(self, now: datetime) -> datetime | None:
        """When an attempt refused at ``now`` could be admitted; ``None`` if it would be now."""
        now = require_aware(now, "now")
        if self._state is BreakerState.CLOSED or self._ready(now):
            return None
        return self._until

    def record_success(self, now: datetime) -> None:
        """An attempt worked (or was refused for good, which proves the server answers): close."""
        require_aware(now, "now")
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._until = None

    def record_failure(self, now: datetime) -> None:
        """An attempt failed transiently: count it; open at the threshold, or after a trial."""
        now = require_aware(now, "now")
        self._failures += 1
        if self._state is BreakerState.CLOSED and self._failures < self.failure_threshold:
            return
        # The threshold was reached, the trial failed, or an attempt admitted before the breaker
        # opened failed late: (re)open for a full cool-down from now.
        self._state = BreakerState.OPEN
        self._until = now + self.cool_down

    def _ready(self, now: datetime) -> bool:
        return self._until is not None and now >= self._until

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state.value}, failures={self._failures})"
