"""Where adapters get the time: a ``Clock`` passed in, so tests can fix or step it.

Domain functions take ``now`` as an argument; only adapters (the SDK stamping ``sent_at``, the
scheduler, the gateway) hold a clock, and they are given one. ``SystemClock`` is the only place
that reads the system time; tests pass a ``FixedClock``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FixedClock", "SystemClock"]


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


def _aware_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name} must be a timezone-aware datetime"
        raise ValueError(msg)
    return value.astimezone(UTC)
