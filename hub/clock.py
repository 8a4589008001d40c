"""Where adapters get the time: a ``Clock`` passed in, so tests can fix or step it.

Domain functions take ``now`` as an argument; only adapters (the SDK stamping ``sent_at``, the
scheduler, the gateway) hold a clock, and they are given one. ``SystemClock`` is the only place
that reads the system time; tests pass a ``FixedClock``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["AcceleratedClock", "Clock", "FixedClock", "StepClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Something that says what time it is: always timezone-aware UTC."""

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...


class SystemClock:
    """The real time."""

    __slots__ = ()

    def now(self) -> datetime:
        """The system time, aware, in UTC."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that stands still until told to move (for tests and replays)."""

    __slots__ = ("_now",)

    def __init__(self, at: datetime) -> None:
        self._now = _aware_utc(at, "at")

    def now(self) -> datetime:
        """The instant the clock was set to."""
        return self._now

    def set(self, at: datetime) -> None:
        """Jump to ``at`` (aware)."""
        self._now = _aware_utc(at, "at")

    def advance(self, by: timedelta) -> datetime:
        """Move forward by ``by`` (an absolute duration) and return the new instant."""
        self._now = self._now + by
        return self._now

    def __repr__(self) -> str:
        return f"FixedClock({self._now.isoformat()})"


class StepClock:
    """A clock that moves by ``step`` every time it is read: each reading is a distinct instant."""

    __slots__ = ("_next", "_step")

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        if step <= timedelta(0):
            msg = "step must be a positive duration"
            raise ValueError(msg)
        self._next = _aware_utc(start, "start")
        self._step = step

    def now(self) -> datetime:
        """The next instant: ``start``, then ``start + step``, ..."""
        current = self._next
        self._next = current + self._step
        return current

    def __repr__(self) -> str:
        return f"StepClock(next={self._next.isoformat()}, step={self._step})"


def _aware_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name} must be a timezone-aware datetime"
        raise ValueError(msg)
    return value.astimezone(UTC)


class AcceleratedClock:
    """Simulated time running ``speed`` times faster than the wall clock (demos, simulations).

    ``now()`` is ``start + (wall_now - wall_start) * speed``. Every component of a demo shares
    one instance, so the hub's deadlines and the simulator's traffic agree on the time.
    """

    __slots__ = ("_start", "_wall_start", "speed")

    def __init__(self, start: datetime, speed: float, wall_start: datetime | None = None) -> None:
        self._start = _aware_utc(start, "start")
        self._wall_start = wall_start or datetime.now(UTC)
        self.speed = speed

    def now(self) -> datetime:
        """The simulated instant, aware, in UTC."""
        return self._start + (datetime.now(UTC) - self._wall_start) * self.speed

    def wall_seconds_until(self, instant: datetime) -> float:
        """Wall-clock seconds until simulated ``instant`` (negative when it has passed)."""
        return (instant - self.now()).total_seconds() / self.speed

    def __repr__(self) -> str:
        return f"AcceleratedClock({self._start.isoformat()}, x{self.speed:g})"
