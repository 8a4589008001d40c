"""Swedish holidays and reading rounds (*läsrundor*): when a delivery to a unit is due.

Every rule here is evaluated in Europe/Stockholm local time, while every instant going in or
coming out is an aware datetime (results are UTC). Staff read and receipt their inbox in rounds:
twice on weekdays, once on Saturdays, Sundays and holidays (DOMAIN.md, "Default policies" §1).
A delivery is due at the end of the first round that starts at or after it reached the unit.

Holidays are Sweden's public holidays as in force (so no Whit Monday since 2005) plus exactly the
three de-facto holidays the law's "every day of the year" planning cares about: Midsummer Eve,
Christmas Eve and New Year's Eve. The `holidays` package supplies them; its `bank` and `optional`
categories would add squeeze days (trettondagsafton, skärtorsdag, 23 and 30 December, the Friday
after Ascension Day), which are ordinary weekdays here.

Local times that do not exist or exist twice (daylight saving time)
--------------------------------------------------------------------
A configured round time is a local wall-clock time, converted with the RFC 5545 (iCalendar) rule,
which is what `zoneinfo` does with ``fold=0``:

* a local time inside the spring-forward gap (02:00-03:00 on the last Sunday of March) does not
  exist; it is read with the UTC offset in force *before* the gap, i.e. shifted forward by the
  gap's length: 02:30 becomes 03:30 CEST;
* a local time inside the autumn fold (02:00-03:00 on the last Sunday of October) exists twice;
  the first occurrence (still CEST) is used, and the round happens once.

A round lasts its duration in absolute time (60 real minutes), like the escalation offsets.
A policy is rejected at construction if, on either switch day, its rounds would overlap, fall out
of order or run past local midnight, so every accepted policy yields strictly increasing,
non-overlapping rounds on every day, with none skipped and none doubled. The default times
(09:00, 14:00, 10:00) are far from the switch hour and are never moved.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Literal, Self
from zoneinfo import ZoneInfo

from holidays.countries.sweden import Sweden
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.errors import ConfigurationError
from topics.catalogue import UnitKind

__all__ = [
    "DST_END_2027",
    "DST_START_2027",
    "NORRBOTTEN_READING_ROUNDS",
    "STOCKHOLM",
    "CalendarConfig",
    "CalendarPolicy",
    "HolidayLanguage",
    "ReadingRound",
    "ReadingRoundConfig",
    "ReadingRoundPolicy",
    "due_at",
    "holiday_name",
    "is_holiday",
    "is_weekend_or_holiday",
    "local_date_of",
    "local_to_utc",
    "next_round_at_or_after",
    "require_aware",
    "rounds_between",
    "rounds_on",
    "start_of_local_day",
]

STOCKHOLM = ZoneInfo("Europe/Stockholm")

# Stockholm's daylight saving switches in 2027 (EU rule: last Sunday of March / October, 01:00 UTC).
# Both are Sundays; the spring one is also Easter Sunday.
DST_START_2027 = date(2027, 3, 28)
DST_END_2027 = date(2027, 10, 31)

HolidayLanguage = Literal["sv", "en_US"]

# `holidays` categories: public holidays plus the de-facto ones (Midsummer Eve, Christmas Eve,
# New Year's Eve). Never "bank" or "optional": they add squeeze days and half days.
_HOLIDAY_CATEGORIES = ("public", "de_facto")

_SATURDAY = 5
_ONE_DAY = timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Instants and local dates
# --------------------------------------------------------------------------------------------


def require_aware(value: datetime, name: str) -> datetime:
    """Return ``value`` in UTC; raise ``ValueError`` naming ``name`` if it is naive."""
    if not isinstance(value, datetime):
        msg = f"{name}: must be a timezone-aware datetime"
        raise TypeError(msg)
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name}: must be timezone-aware (a naive datetime has no defined instant)"
        raise ValueError(msg)
    return value.astimezone(UTC)


def _require_date(value: date, name: str) -> date:
    # A datetime is a date subclass; accepting one would silently pick a zone for the caller.
    if isinstance(value, datetime) or not isinstance(value, date):
        msg = f"{name}: must be a local calendar date (datetime.date), not a datetime"
        raise TypeError(msg)
    return value


def local_date_of(instant_utc: datetime) -> date:
    """The Europe/Stockholm calendar date on which the aware instant falls."""
    return require_aware(instant_utc, "instant_utc").astimezone(STOCKHOLM).date()


def local_to_utc(local_date: date, local_time: time) -> datetime:
    """The UTC instant of a Stockholm wall-clock time, by the module's DST rule.

    A nonexistent time (spring gap) is shifted forward by the gap; an ambiguous one (autumn fold)
    is its first occurrence. ``local_time`` must be naive: the zone is always Stockholm.
    """
    _require_date(local_date, "local_date")
    if local_time.tzinfo is not None:
        msg = "local_time: must be a naive wall-clock time (the zone is Europe/Stockholm)"
        raise ValueError(msg)
    wall = datetime.combine(local_date, local_time.replace(fold=0), tzinfo=STOCKHOLM)
    return wall.astimezone(UTC)


def start_of_local_day(local_date: date) -> datetime:
    """The UTC instant of 00:00 Stockholm time on ``local_date``."""
    return local_to_utc(local_date, time(0, 0))


# --------------------------------------------------------------------------------------------
# Holidays (helgdagar, röda dagar)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _holidays_in(year: int, language: HolidayLanguage) -> Mapping[date, str]:
    # Memoised per (year, language): the holiday set of a year is a pure function of the
    # pinned `holidays` release, and building it is far slower than a dict look-up.
    calendar = Sweden(
        years=year,
        categories=_HOLIDAY_CATEGORIES,
        include_sundays=False,
        language=language,
    )
    return MappingProxyType({day: str(name) for day, name in calendar.items()})


def is_holiday(local_date: date) -> bool:
    """Whether the Stockholm date is a Swedish public or de-facto holiday (*röd dag*).

    Ordinary Sundays are not holidays by this test (they are weekend days); Easter Sunday and
    Whitsunday are.
    """
    _require_date(local_date, "local_date")
    return local_date in _holidays_in(local_date.year, "sv")


def holiday_name(local_date: date, *, language: HolidayLanguage = "sv") -> str | None:
    """The holiday's name (Swedish by default, e.g. ``"Julafton"``), or None on other days."""
    _require_date(local_date, "local_date")
    return _holidays_in(local_date.year, language).get(local_date)


def is_weekend_or_holiday(local_date: date) -> bool:
    """Saturday, Sunday or a holiday: the days with the weekend reading cadence."""
    _require_date(local_date, "local_date")
    return local_date.weekday() >= _SATURDAY or is_holiday(local_date)


# --------------------------------------------------------------------------------------------
# Reading-round policy (läsrundor)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadingRound:
    """One reading round (*läsrunda*) of a unit: it reads and receipts what has arrived."""

    start_utc: datetime
    end_utc: datetime
    local_date: date

    @property
    def start_local(self) -> datetime:
        """The start as Stockholm wall-clock time."""
        return self.start_utc.astimezone(STOCKHOLM)

    @property
    def end_local(self) -> datetime:
        """The end as Stockholm wall-clock time."""
        return self.end_utc.astimezone(STOCKHOLM)


def _round_starts_field(value: tuple[time, ...], name: str) -> tuple[time, ...]:
    starts = tuple(value)
    if not starts:
        msg = f"{name}: at least one round a day is required (planning happens every day)"
        raise ConfigurationError(msg)
    for index, start in enumerate(starts):
        if not isinstance(start, time):
            msg = f"{name}[{index}]: must be a datetime.time"
            raise ConfigurationError(msg)
        if start.tzinfo is not None:
            msg = f"{name}[{index}]: must be a naive local time (the zone is Europe/Stockholm)"
            raise ConfigurationError(msg)
    if any(later <= earlier for earlier, later in itertools.pairwise(starts)):
        msg = f"{name}: round start times must be strictly increasing"
        raise ConfigurationError(msg)
    return starts


def _rounds_for_starts(
    local_date: date, starts: tuple[time, ...], duration: timedelta
) -> list[ReadingRound]:
    rounds = []
    for start in starts:
        start_utc = local_to_utc(local_date, start)
        rounds.append(ReadingRound(start_utc, start_utc + duration, local_date))
    return rounds


def _check_rounds_fit(name: str, starts: tuple[time, ...], duration: timedelta) -> None:
    # An ordinary day and both switch days: the only three shapes a Stockholm day has.
    for local_date in (date(2027, 1, 12), DST_START_2027, DST_END_2027):
        rounds = _rounds_for_starts(local_date, starts, duration)
        for earlier, later in itertools.pairwise(rounds):
            if later.start_utc < earlier.end_utc:
                msg = (
                    f"{name}: rounds overlap or fall out of order on {local_date.isoformat()} "
                    "(each round must end before the next starts, on DST switch days too)"
                )
                raise ConfigurationError(msg)
        if rounds[-1].end_utc > start_of_local_day(local_date + _ONE_DAY):
            msg = f"{name}: the last round must end by local midnight"
            raise ConfigurationError(msg)


@dataclass(frozen=True, slots=True)
class ReadingRoundPolicy:
    """When a unit reads its inbox: round start times (Stockholm wall clock) and duration.

    The default is the Norrbotten agreement: 09:00 and 14:00 on weekdays that are not holidays,
    10:00 on Saturdays, Sundays and holidays, 60 minutes each.
    """

    weekday_starts: tuple[time, ...] = (time(9, 0), time(14, 0))
    weekend_holiday_starts: tuple[time, ...] = (time(10, 0),)
    duration: timedelta = timedelta(minutes=60)

    def __post_init__(self) -> None:
        weekday = _round_starts_field(self.weekday_starts, "weekday_starts")
        weekend = _round_starts_field(self.weekend_holiday_starts, "weekend_holiday_starts")
        object.__setattr__(self, "weekday_starts", weekday)
        object.__setattr__(self, "weekend_holiday_starts", weekend)
        if not isinstance(self.duration, timedelta) or self.duration <= timedelta(0):
            msg = "duration: must be a positive timedelta"
            raise ConfigurationError(msg)
        _check_rounds_fit("weekday_starts", weekday, self.duration)
        _check_rounds_fit("weekend_holiday_starts", weekend, self.duration)

    def starts_on(self, local_date: date) -> tuple[time, ...]:
        """The configured start times that apply on the given Stockholm date."""
        if is_weekend_or_holiday(local_date):
            return self.weekend_holiday_starts
        return self.weekday_starts

    @staticmethod
    def from_mapping(data: Mapping[str, object]) -> ReadingRoundPolicy:
        """Build from loaded configuration (YAML/TOML/JSON); see `ReadingRoundConfig`.

        Raises `ConfigurationError` naming every bad field path.
        """
        try:
            config = ReadingRoundConfig.model_validate(data)
        except ValidationError as exc:
            error = _configuration_error("reading_rounds", exc)
            raise error from exc
        return config.to_policy()


NORRBOTTEN_READING_ROUNDS = ReadingRoundPolicy()


def _norrbotten_by_kind() -> Mapping[UnitKind, ReadingRoundPolicy]:
    return MappingProxyType(dict.fromkeys(UnitKind, NORRBOTTEN_READING_ROUNDS))


@dataclass(frozen=True, slots=True)
class CalendarPolicy:
    """The reading-round policy of every unit kind; Norrbotten's for all kinds by default."""

    by_kind: Mapping[UnitKind, ReadingRoundPolicy] = field(default_factory=_norrbotten_by_kind)

    def __post_init__(self) -> None:
        missing = [kind.value for kind in UnitKind if kind not in self.by_kind]
        if missing:
            msg = f"by_kind: a reading-round policy is required for every unit kind: {missing}"
            raise ConfigurationError(msg)
        frozen = MappingProxyType({kind: self.by_kind[kind] for kind in UnitKind})
        object.__setattr__(self, "by_kind", frozen)

    def __hash__(self) -> int:
        return hash(tuple(self.by_kind.items()))

    def for_kind(self, kind: UnitKind) -> ReadingRoundPolicy:
        """The reading-round policy that applies to units of ``kind``."""
        return self.by_kind[kind]

    @staticmethod
    def from_mapping(data: Mapping[str, object]) -> CalendarPolicy:
        """Build from loaded configuration; see `CalendarConfig`.

        Raises `ConfigurationError` naming every bad field path.
        """
        try:
            config = CalendarConfig.model_validate(data)
        except ValidationError as exc:
            error = _configuration_error("calendar", exc)
            raise error from exc
        return config.to_policy()


# --------------------------------------------------------------------------------------------
# Configuration form (pydantic, for hub settings and reference data)
# --------------------------------------------------------------------------------------------


def _configuration_error(root: str, exc: ValidationError) -> ConfigurationError:
    problems = "; ".join(
        f"{'.'.join([root, *(str(part) for part in error['loc'])])}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )
    return ConfigurationError(problems)


class ReadingRoundConfig(BaseModel):
    """Loadable form of `ReadingRoundPolicy`; times as ``"HH:MM"``, duration in minutes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weekday_starts: tuple[time, ...] = (time(9, 0), time(14, 0))
    weekend_holiday_starts: tuple[time, ...] = (time(10, 0),)
    duration_minutes: int = Field(default=60, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _policy_is_valid(self) -> Self:
        # Surface the dataclass's rules (order, overlap, DST days) as pydantic errors so a
        # settings file reports them with their path.
        self.to_policy()
        return self

    def to_policy(self) -> ReadingRoundPolicy:
        """The validated policy value; raises ``ValueError`` naming the field when invalid."""
        try:
            return ReadingRoundPolicy(
                weekday_starts=self.weekday_starts,
                weekend_holiday_starts=self.weekend_holiday_starts,
                duration=timedelta(minutes=self.duration_minutes),
            )
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from exc


class CalendarConfig(BaseModel):
    """Loadable form of `CalendarPolicy`: a default plus per-kind overrides.

    An override replaces the default for its kind as a whole; fields it leaves out take the
    Norrbotten values, not those of ``default``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: ReadingRoundConfig = ReadingRoundConfig()
    by_kind: dict[UnitKind, ReadingRoundConfig] = Field(default_factory=dict)

    def to_policy(self) -> CalendarPolicy:
        """The policy value with every unit kind filled in."""
        default = self.default.to_policy()
        return CalendarPolicy(
            {
                kind: self.by_kind[kind].to_policy() if kind in self.by_kind else default
                for kind in UnitKind
            }
        )


# --------------------------------------------------------------------------------------------
# Rounds and due times
# --------------------------------------------------------------------------------------------


def rounds_on(local_date: date, policy: ReadingRoundPolicy) -> list[ReadingRound]:
    """The rounds held on a Stockholm date, in order (2 on weekdays, 1 otherwise by default)."""
    _require_date(local_date, "local_date")
    return list(_rounds_of_day(local_date, policy))


@functools.lru_cache(maxsize=4096)
def _rounds_of_day(local_date: date, policy: ReadingRoundPolicy) -> tuple[ReadingRound, ...]:
    # Memoised per (Stockholm date, policy): a day's rounds are a pure function of both (the
    # policy is a frozen value), and every delivery's due time needs them. Converting the
    # round times to UTC was most of `due_at`'s cost; a year of dates for a few policies fits.
    return tuple(_rounds_for_starts(local_date, policy.starts_on(local_date), policy.duration))


def rounds_between(
    start_utc: datetime, end_utc: datetime, policy: ReadingRoundPolicy
) -> Iterator[ReadingRound]:
    """Rounds that *start* in the half-open interval ``[start_utc, end_utc)``, in order."""
    start = require_aware(start_utc, "start_utc")
    end = require_aware(end_utc, "end_utc")
    day = start.astimezone(STOCKHOLM).date()
    # A round never starts before its own local midnight, so no earlier day can contribute.
    while start_of_local_day(day) < end:
        for reading_round in _rounds_of_day(day, policy):
            if start <= reading_round.start_utc < end:
                yield reading_round
        day += _ONE_DAY


def next_round_at_or_after(instant_utc: datetime, policy: ReadingRoundPolicy) -> ReadingRound:
    """The first round whose start is at or after the instant (a start itself belongs to it)."""
    instant = require_aware(instant_utc, "instant_utc")
    day = instant.astimezone(STOCKHOLM).date()
    # Rounds of a day start after that day's midnight and end by the next one (the policy
    # guarantees it), and every day has a round, so this finds one within two days.
    while True:
        for reading_round in _rounds_of_day(day, policy):
            if reading_round.start_utc >= instant:
                return reading_round
        day += _ONE_DAY


def due_at(arrival_utc: datetime, policy: ReadingRoundPolicy) -> datetime:
    """When a delivery that reached the unit at ``arrival_utc`` must be receipted (UTC).

    The end of the first round starting at or after arrival: Mon 08:30 → Mon 10:00,
    Mon 09:30 → Mon 15:00, Fri 16:00 → Sat 11:00 with the Norrbotten rounds.
    """
    instant = require_aware(arrival_utc, "arrival_utc")
    return next_round_at_or_after(instant, policy).end_utc
