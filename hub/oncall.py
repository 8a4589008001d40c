"""On-call rosters (*jour / beredskap*): who answers for a group, and when nobody does.

An on-call group is a municipality's or a health centre's (e.g. ``jour-2580`` for Luleå). Its
roster is a stack of layers, each a weekly rotation of people, optionally restricted to
time-of-day windows; a later layer overrides earlier ones wherever it has someone, and dated
overrides (holiday shifts) override every layer. The law asks for every day of the year, so the
interesting question is less "who is on call now" than "where is nobody": :func:`coverage_gaps`
answers it from the rotation boundaries, never by sampling minutes.

Local wall times and daylight saving time
-----------------------------------------
Rosters speak local Europe/Stockholm wall time ("Monday 08:00", "16:00-08:00"); everything this
module returns is UTC. One rule turns a local wall time into an instant, :func:`local_to_utc`:
*the first instant at which Stockholm clocks show that time or later*. Consequences:

* a handoff at 08:00 happens at 08:00 local on both sides of a DST change, so the week that
  contains the spring change lasts 167 hours and the autumn one 169;
* a wall time the clocks skip (02:00-02:59 on the last Sunday of March) is the instant the clocks
  jump, 03:00 summer time; a window that lies wholly inside the skipped hour, such as 02:00-03:00
  on 2027-03-28, therefore covers no instant at all;
* a wall time that happens twice (02:00-02:59 on the last Sunday of October) is its first
  occurrence, summer time; a window 02:00-03:00 on 2027-10-31 lasts two real hours.

Staff contact data (name, e-mail, phone) is not patient data; it is still kept out of error
messages, which name only the path of the bad field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import yaml
from holidays import HolidayBase
from holidays.countries.sweden import Sweden
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NaiveDatetime,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from hub.errors import ConfigurationError

__all__ = [
    "STOCKHOLM",
    "Gap",
    "Handoff",
    "Layer",
    "OnCallConfig",
    "OnCallPerson",
    "OnCallSpan",
    "Override",
    "Roster",
    "Weekday",
    "Window",
    "check_all",
    "coverage_gaps",
    "gaps_within",
    "load_oncall_config",
    "local_to_utc",
    "on_call_spans",
    "parse_oncall_config",
    "resolve_contact",
    "who_is_on_call",
]

STOCKHOLM = ZoneInfo("Europe/Stockholm")

_HHMM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_PHONE = r"^\+?[0-9][0-9 ()-]{4,29}$"


# --------------------------------------------------------------------------------------------
# Configuration models (the YAML boundary)
# --------------------------------------------------------------------------------------------


def _parse_hhmm(value: object) -> object:
    """Accept ``"HH:MM"`` strings (and ``time`` objects); refuse YAML's sexagesimal integers."""
    if isinstance(value, time):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        # YAML 1.1 reads an unquoted 16:00 as the integer 960 (base 60): never guess.
        msg = "must be a quoted 'HH:MM' string (YAML reads an unquoted 16:00 as a number)"
        raise ValueError(msg)  # noqa: TRY004 - pydantic turns ValueError into a field error
    if not _HHMM.match(value):
        msg = "must be a local time 'HH:MM' between 00:00 and 23:59"
        raise ValueError(msg)
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _parse_window_end(value: object) -> object:
    """Like :func:`_parse_hhmm`, plus ``"24:00"``, the end of the day (same as ``"00:00"``)."""
    if value == "24:00":
        return time(0, 0)
    return _parse_hhmm(value)


LocalTime = Annotated[time, BeforeValidator(_parse_hhmm)]
WindowEnd = Annotated[time, BeforeValidator(_parse_window_end)]


class Weekday(StrEnum):
    """A day of the week, spelt in full and in lower case in the YAML."""

    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def number(self) -> int:
        """Monday is 0, as in :meth:`datetime.date.weekday`."""
        return list(Weekday).index(self)


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OnCallPerson(_Config):
    """A member of staff who can be reached while on call."""

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=320, pattern=_EMAIL)
    phone: str | None = Field(default=None, pattern=_PHONE)


class Handoff(_Config):
    """When one week's person hands over to the next (local Stockholm wall time)."""

    weekday: Weekday
    time: LocalTime


class Window(_Config):
    """Local hours a layer is in force on the given days, e.g. weekday evenings 16:00-08:00.

    A window belongs to the day it starts on. An ``end`` at or before ``start`` means the next
    day, so ``"16:00"``-``"08:00"`` runs overnight and ``"00:00"``-``"24:00"`` (or
    ``"00:00"``) is the whole day.
    """

    days: tuple[Weekday, ...] = Field(min_length=1)
    start: LocalTime
    end: WindowEnd


class Layer(_Config):
    """A weekly rotation: ``people[k % n]`` holds week ``k`` counted from ``rotation_start``.

    ``rotation_start`` is the local date of the first handoff and must fall on the handoff
    weekday; before it the layer has nobody. ``rotation_end`` (local, exclusive) ends a rota
    that another layer replaces. Without ``windows`` the layer covers all hours of its weeks.
    """

    name: str = Field(min_length=1, max_length=100)
    people: tuple[OnCallPerson, ...] = Field(min_length=1)
    handoff: Handoff
    rotation_start: date
    rotation_end: NaiveDatetime | None = None
    windows: tuple[Window, ...] | None = Field(default=None, min_length=1)

    @field_validator("rotation_start")
    @classmethod
    def _starts_on_handoff_day(cls, value: date, info: ValidationInfo) -> date:
        handoff = info.data.get("handoff")
        if isinstance(handoff, Handoff) and value.weekday() != handoff.weekday.number:
            msg = f"must be a {handoff.weekday.value} (the handoff weekday)"
            raise ValueError(msg)
        return value

    @field_validator("rotation_end")
    @classmethod
    def _ends_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("rotation_start")
        handoff = info.data.get("handoff")
        if (
            value is not None
            and isinstance(start, date)
            and isinstance(handoff, Handoff)
            and value <= datetime.combine(start, handoff.time)
        ):
            msg = "must be after the first handoff (rotation_start at handoff.time)"
            raise ValueError(msg)
        return value


class Override(_Config):
    """A dated shift (e.g. a holiday shift) that beats every layer: local ``start`` to ``end``."""

    person: OnCallPerson
    start: NaiveDatetime
    end: NaiveDatetime
    reason: str | None = Field(default=None, max_length=200)

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if isinstance(start, datetime) and value <= start:
            msg = "must be after start"
            raise ValueError(msg)
        return value


class Roster(_Config):
    """One on-call group's layers (listed lowest priority first) and dated overrides.

    Among overrides too, a later one beats an earlier one where they overlap.
    """

    description: str | None = Field(default=None, max_length=200)
    layers: tuple[Layer, ...] = ()
    overrides: tuple[Override, ...] = ()


class OnCallConfig(_Config):
    """A roster file: every group's roster plus the contact used when a group has nobody."""

    regional_fallback: OnCallPerson
    rosters: dict[str, Roster]

    @field_validator("rosters")
    @classmethod
    def _group_names(cls, value: dict[str, Roster]) -> dict[str, Roster]:
        for group in value:
            if not group.strip():
                msg = "group names must not be empty"
                raise ValueError(msg)
        return value


def parse_oncall_config(text: str, *, source: str = "<string>") -> OnCallConfig:
    """Parse a roster file's YAML text; errors name ``source`` and the path of the bad field."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        msg = f"{source}: not valid YAML{where}"
        raise ConfigurationError(msg) from exc
    if not isinstance(raw, dict):
        msg = f"{source}: the top level must be a mapping with regional_fallback and rosters"
        raise ConfigurationError(msg)
    try:
        return OnCallConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        msg = f"{source}: {problems}"
        raise ConfigurationError(msg) from exc


def load_oncall_config(path: Path) -> OnCallConfig:
    """Read and parse a roster file (blocking: call it at start-up or via ``to_thread``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{path}: cannot be read ({exc.strerror})"
        raise ConfigurationError(msg) from exc
    return parse_oncall_config(text, source=str(path))


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnCallSpan:
    """A UTC interval ``[start_utc, end_utc)`` during which ``person`` is on call."""

    start_utc: datetime
    end_utc: datetime
    person: OnCallPerson


@dataclass(frozen=True, slots=True)
class Gap:
    """A UTC interval ``[start_utc, end_utc)`` with nobody on call.

    ``holidays`` names, in Swedish and in date order, the public and de-facto holidays whose
    local date the gap touches (e.g. ``("Julafton", "Juldagen")``).
    """

    start_utc: datetime
    end_utc: datetime
    holidays: tuple[str, ...]


def local_to_utc(wall: datetime) -> datetime:
    """The first instant at which Stockholm clocks show ``wall`` (naive) or a later time.

    For a wall time that exists once this is simply that instant; for one that happens twice it
    is the first (summer time); for one the clocks skip it is the instant of the jump.
    """
    if wall.tzinfo is not None:
        msg = "wall: must be a naive local wall time"
        raise ValueError(msg)
    first = wall.replace(tzinfo=STOCKHOLM, fold=0).astimezone(UTC)
    if _wall(first) == wall:
        return first
    # Skipped by the spring change: fold=1 reads it with the new offset (an instant before the
    # jump), fold=0 with the old one (after it). Bisect to the jump, to the microsecond; the
    # span is at most the size of the skip, so this takes some 30 steps, and only in the gap.
    before = wall.replace(tzinfo=STOCKHOLM, fold=1).astimezone(UTC)
    after = first
    while after - before > timedelta(microseconds=1):
        middle = before + (after - before) // 2
        if _wall(middle) >= wall:
            after = middle
        else:
            before = middle
    return after


def on_call_spans(roster: Roster, start_utc: datetime, end_utc: datetime) -> list[OnCallSpan]:
    """Who is on call over ``[start_utc, end_utc)``: sorted, disjoint spans, clipped to it.

    Adjacent spans of the same person are joined, so a boundary means a change of person or a
    gap. Work is proportional to the number of handoffs and window edges in the interval.
    """
    _require_utc_interval(start_utc, end_utc)
    start_utc, end_utc = start_utc.astimezone(UTC), end_utc.astimezone(UTC)
    spans: list[OnCallSpan] = []
    for layer in roster.layers:
        spans = _overlay(spans, _layer_spans(layer, start_utc, end_utc))
    for override in roster.overrides:
        lo = max(local_to_utc(override.start), start_utc)
        hi = min(local_to_utc(override.end), end_utc)
        if lo < hi:
            spans = _overlay(spans, [OnCallSpan(lo, hi, override.person)])
    return _join(spans)


def who_is_on_call(roster: Roster, at_utc: datetime) -> OnCallPerson | None:
    """The person on call at ``at_utc``, or ``None`` if the roster has a gap there."""
    _require_aware("at_utc", at_utc)
    spans = on_call_spans(roster, at_utc, at_utc + timedelta(microseconds=1))
    return spans[0].person if spans else None


def coverage_gaps(roster: Roster, start_utc: datetime, end_utc: datetime) -> list[Gap]:
    """Every interval in ``[start_utc, end_utc)`` where nobody is on call, in order."""
    _require_utc_interval(start_utc, end_utc)
    start_utc, end_utc = start_utc.astimezone(UTC), end_utc.astimezone(UTC)
    cursor = start_utc
    holes: list[tuple[datetime, datetime]] = []
    for span in on_call_spans(roster, start_utc, end_utc):
        if span.start_utc > cursor:
            holes.append((cursor, span.start_utc))
        cursor = span.end_utc
    if cursor < end_utc:
        holes.append((cursor, end_utc))
    if not holes:
        return []
    calendar = _holiday_calendar(range(_local_date(start_utc).year, _local_date(end_utc).year + 1))
    return [Gap(lo, hi, _holidays_touched(calendar, lo, hi)) for lo, hi in holes]


def check_all(
    rosters: Mapping[str, Roster], now: datetime, days: int = 365
) -> dict[str, list[Gap]]:
    """Gaps in ``[now, now + days)`` for every group that has any; an empty dict means none."""
    end = now + timedelta(days=days)
    found = {group: coverage_gaps(roster, now, end) for group, roster in rosters.items()}
    return {group: gaps for group, gaps in found.items() if gaps}


def gaps_within(
    rosters: Mapping[str, Roster], now: datetime, days: int = 14
) -> dict[str, list[Gap]]:
    """The near-term check the operations alert runs: :func:`check_all` over two weeks."""
    return check_all(rosters, now, days)


def resolve_contact(
    rosters: Mapping[str, Roster], group: str | None, at_utc: datetime, fallback: OnCallPerson
) -> tuple[OnCallPerson, bool]:
    """Whom to notify for ``group`` at ``at_utc``, and whether it is the fallback.

    A unit without a group (``None``), an unknown group and a gap in the roster all give the
    regional fallback: an escalation is never dropped for want of a name.
    """
    _require_aware("at_utc", at_utc)
    roster = None if group is None else rosters.get(group)
    person = who_is_on_call(roster, at_utc) if roster is not None else None
    if person is None:
        return fallback, True
    return person, False


# --------------------------------------------------------------------------------------------
# Interval arithmetic on sorted, disjoint UTC spans
# --------------------------------------------------------------------------------------------


def _layer_spans(layer: Layer, start: datetime, end: datetime) -> list[OnCallSpan]:
    shifts = _shifts(layer, start, end)
    if layer.windows is None or not shifts:
        return shifts
    return _intersect(shifts, _window_cover(layer.windows, start, end))


def _handoff_at(layer: Layer, week: int) -> datetime:
    local_day = layer.rotation_start + timedelta(weeks=week)
    return local_to_utc(datetime.combine(local_day, layer.handoff.time))


def _shifts(layer: Layer, start: datetime, end: datetime) -> list[OnCallSpan]:
    stop = end
    if layer.rotation_end is not None:
        stop = min(stop, local_to_utc(layer.rotation_end))
    # One week before the week of `start`, so the shift that contains `start` is included.
    week = max(0, (_local_date(start) - layer.rotation_start).days // 7 - 1)
    shifts: list[OnCallSpan] = []
    begin = _handoff_at(layer, week)
    while begin < stop:
        finish = _handoff_at(layer, week + 1)
        lo, hi = max(begin, start), min(finish, stop)
        if lo < hi:
            shifts.append(OnCallSpan(lo, hi, layer.people[week % len(layer.people)]))
        week += 1
        begin = finish
    return shifts


def _window_cover(
    windows: Sequence[Window], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    pieces: list[tuple[datetime, datetime]] = []
    # A window may start the day before `start` and run overnight into it.
    day = _local_date(start) - timedelta(days=1)
    last = _local_date(end)
    while day <= last:
        for window in windows:
            if day.weekday() not in {d.number for d in window.days}:
                continue
            end_day = day + timedelta(days=1) if window.end <= window.start else day
            lo = max(local_to_utc(datetime.combine(day, window.start)), start)
            hi = min(local_to_utc(datetime.combine(end_day, window.end)), end)
            if lo < hi:
                pieces.append((lo, hi))
        day += timedelta(days=1)
    pieces.sort()
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in pieces:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _intersect(
    spans: Sequence[OnCallSpan], cover: Sequence[tuple[datetime, datetime]]
) -> list[OnCallSpan]:
    out: list[OnCallSpan] = []
    i = j = 0
    while i < len(spans) and j < len(cover):
        span, (lo, hi) = spans[i], cover[j]
        start, end = max(span.start_utc, lo), min(span.end_utc, hi)
        if start < end:
            out.append(OnCallSpan(start, end, span.person))
        if span.end_utc <= hi:
            i += 1
        else:
            j += 1
    return out


def _subtract(spans: Sequence[OnCallSpan], cover: Sequence[OnCallSpan]) -> list[OnCallSpan]:
    out: list[OnCallSpan] = []
    j = 0
    for span in spans:
        while j < len(cover) and cover[j].end_utc <= span.start_utc:
            j += 1
        cursor = span.start_utc
        k = j
        while k < len(cover) and cover[k].start_utc < span.end_utc:
            if cover[k].start_utc > cursor:
                out.append(OnCallSpan(cursor, cover[k].start_utc, span.person))
            cursor = max(cursor, cover[k].end_utc)
            k += 1
        if cursor < span.end_utc:
            out.append(OnCallSpan(cursor, span.end_utc, span.person))
    return out


def _overlay(base: Sequence[OnCallSpan], top: Sequence[OnCallSpan]) -> list[OnCallSpan]:
    """``top`` wherever it has someone, ``base`` elsewhere."""
    return sorted([*top, *_subtract(base, top)], key=lambda s: s.start_utc)


def _join(spans: Iterable[OnCallSpan]) -> list[OnCallSpan]:
    joined: list[OnCallSpan] = []
    for span in spans:
        previous = joined[-1] if joined else None
        if (
            previous is not None
            and previous.end_utc == span.start_utc
            and previous.person == span.person
        ):
            joined[-1] = OnCallSpan(previous.start_utc, span.end_utc, span.person)
        else:
            joined.append(span)
    return joined


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _holiday_calendar(years: Iterable[int]) -> HolidayBase:
    # Public holidays plus only the three de-facto eves (DOMAIN.md "Precise readings"); the
    # default calendar omits the eves and "bank"/"optional" would add squeeze days.
    return Sweden(
        categories=("public", "de_facto"),
        include_sundays=False,
        language="sv",
        years=list(years),
    )


def _holidays_touched(calendar: HolidayBase, start: datetime, end: datetime) -> tuple[str, ...]:
    names: list[str] = []
    day, last = _local_date(start), _local_date(end - timedelta(microseconds=1))
    while day <= last:
        for name in calendar.get_list(day):
            if name not in names:
                names.append(name)
        day += timedelta(days=1)
    return tuple(names)


def _wall(instant: datetime) -> datetime:
    return instant.astimezone(STOCKHOLM).replace(tzinfo=None)


def _local_date(instant: datetime) -> date:
    return instant.astimezone(STOCKHOLM).date()


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name}: must be a timezone-aware datetime (UTC)"
        raise ValueError(msg)


def _require_utc_interval(start_utc: datetime, end_utc: datetime) -> None:
    _require_aware("start_utc", start_utc)
    _require_aware("end_utc", end_utc)
    if end_utc < start_utc:
        msg = "end_utc: must not be before start_utc"
        raise ValueError(msg)
