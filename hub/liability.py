"""The municipality's payment liability (*betalningsansvar*) for discharge-ready patients.

When a patient assessed ready for discharge (*utskrivningsklar*) stays in hospital beyond the
agreed days, the municipality pays for each extra bed day, provided the region did its part.
Norrbotten's rule, "bryt tid kl. 12" (DOMAIN.md, "Default policies" §3 and "Precise readings"):

* Days are calendar days in Europe/Stockholm, weekends and holidays included; a DST day is still
  one day. An assessment before 12:00 local time makes that day day 1; at or after 12:00
  (12:00:00 exactly included) the next day is day 1.
* Liability starts at 00:00 on day 4 if the patient is still in hospital (a discharge exactly at
  00:00 is not "still") and the conditions hold. Liability bed days run from day 4 up to and
  including the day before the discharge day; a patient discharged on day 4 has 0 bed days,
  though liability did start. For a patient still in hospital, days are counted up to the day
  before ``now``'s local date (today is not over yet).
* Conditions, each judged on events *before* the liability start: the SIP invitation was sent
  (or the patient declined a SIP) before 00:00 at the start of day 4 (not 72 hours), a named
  care contact (*fast vårdkontakt*) was appointed, and the admission notice was sent. A condition
  fulfilled only later does not start liability later: the clock is simply not liable.
* A retraction ends the clock like a discharge; a new assessment starts a new clock. The bed days
  of successive clocks add up.
* The municipality's on-call staff are warned at the start of day 3 for every clock heading into
  liability.

`assess` reads one episode's facts as of ``now``: events after ``now`` are ignored, so the same
function answers "what is the state now" and "what was it then". See docs/liability.md for
worked examples, each of which is a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.calendar import (
    STOCKHOLM,
    is_weekend_or_holiday,
    local_date_of,
    local_to_utc,
    require_aware,
    start_of_local_day,
)
from hub.errors import ConfigurationError

__all__ = [
    "NORRBOTTEN_LIABILITY",
    "ClockAssessment",
    "ClockEndReason",
    "ConditionCheck",
    "ConditionReason",
    "EpisodeEvent",
    "EpisodeFacts",
    "FactKind",
    "LiabilityAssessment",
    "LiabilityConditions",
    "LiabilityConfig",
    "LiabilityPolicy",
    "assess",
    "day_one",
    "nth_day",
]

_ONE_DAY = timedelta(days=1)
_MAX_DAY = 60


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiabilityPolicy:
    """How a regional agreement counts payment-liability days; Norrbotten's by default.

    ``*_day`` fields are day numbers of the clock (day 1 is the first day after the cut-off).
    ``count_weekends_and_holidays=False`` is for agreements that count working days only: then
    day numbers and bed days skip Saturdays, Sundays and holidays.
    """

    cutoff_local: time = time(12, 0)
    liability_start_day: int = 4
    warn_day: int = 3
    warn_local_time: time = time(0, 0)
    sip_deadline_day: int = 4
    count_weekends_and_holidays: bool = True

    def __post_init__(self) -> None:
        for name in ("cutoff_local", "warn_local_time"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                msg = f"{name}: must be a naive local time (the zone is Europe/Stockholm)"
                raise ConfigurationError(msg)
        if not 2 <= self.liability_start_day <= _MAX_DAY:
            msg = f"liability_start_day: must be between 2 and {_MAX_DAY}"
            raise ConfigurationError(msg)
        if not 1 <= self.warn_day < self.liability_start_day:
            msg = "warn_day: must be at least 1 and before liability_start_day"
            raise ConfigurationError(msg)
        if not 2 <= self.sip_deadline_day <= self.liability_start_day:
            msg = "sip_deadline_day: must be between 2 and liability_start_day"
            raise ConfigurationError(msg)

    @staticmethod
    def from_mapping(data: Mapping[str, object]) -> LiabilityPolicy:
        """Build from loaded configuration; raises `ConfigurationError` naming the field."""
        try:
            config = LiabilityConfig.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(['liability', *(str(part) for part in error['loc'])])}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            raise ConfigurationError(problems) from exc
        return config.to_policy()


NORRBOTTEN_LIABILITY = LiabilityPolicy()


class LiabilityConfig(BaseModel):
    """Loadable form of `LiabilityPolicy` (times as ``"HH:MM"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cutoff_local: time = time(12, 0)
    liability_start_day: int = Field(default=4, ge=2, le=_MAX_DAY)
    warn_day: int = Field(default=3, ge=1)
    warn_local_time: time = time(0, 0)
    sip_deadline_day: int = Field(default=4, ge=2)
    count_weekends_and_holidays: bool = True

    @model_validator(mode="after")
    def _policy_is_valid(self) -> Self:
        self.to_policy()
        return self

    def to_policy(self) -> LiabilityPolicy:
        """The validated policy value; raises ``ValueError`` naming the field when invalid."""
        try:
            return LiabilityPolicy(
                cutoff_local=self.cutoff_local,
                liability_start_day=self.liability_start_day,
                warn_day=self.warn_day,
                warn_local_time=self.warn_local_time,
                sip_deadline_day=self.sip_deadline_day,
                count_weekends_and_holidays=self.count_weekends_and_holidays,
            )
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from exc


# --------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------


class FactKind(StrEnum):
    """The events of an episode that matter for liability."""

    READY_FOR_DISCHARGE = "ready_for_discharge"  # utskrivningsklar, assessed at
    READY_FOR_DISCHARGE_RETRACTED = "ready_for_discharge_retracted"
    DISCHARGED = "discharged"  # the patient left hospital (utskrivning)
    SIP_INVITATION_SENT = "sip_invitation_sent"  # kallelse till SIP
    SIP_DECLINED = "sip_declined"  # the patient declines a SIP
    CARE_CONTACT_APPOINTED = "care_contact_appointed"  # fast vårdkontakt utsedd
    ADMISSION_NOTICE_SENT = "admission_notice_sent"  # inskrivningsmeddelande


@dataclass(frozen=True, slots=True)
class EpisodeEvent:
    """One timestamped fact of an episode; ``at_utc`` must be aware and is stored in UTC."""

    kind: FactKind
    at_utc: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FactKind(self.kind))
        object.__setattr__(self, "at_utc", require_aware(self.at_utc, "at_utc"))


@dataclass(frozen=True, slots=True)
class EpisodeFacts:
    """What is known about one inpatient stay (*vårdtillfälle*) that matters for liability.

    ``events`` may come in any order. ``admission_notice_sent`` records a notice known to have
    been sent at an unknown time (e.g. before the hub was in use); it counts as sent before
    everything else.
    """

    events: tuple[EpisodeEvent, ...] = ()
    admission_notice_sent: bool = False

    def __post_init__(self) -> None:
        events = tuple(self.events)
        for index, event in enumerate(events):
            if not isinstance(event, EpisodeEvent):
                msg = f"events[{index}]: must be an EpisodeEvent"
                raise TypeError(msg)
        object.__setattr__(self, "events", events)


# --------------------------------------------------------------------------------------------
# Assessment values
# --------------------------------------------------------------------------------------------


class ConditionReason(StrEnum):
    """Why a liability condition is or is not met (as of ``now``)."""

    SIP_INVITED = "sip_invited"  # invitation sent before the deadline
    SIP_DECLINED = "sip_declined"  # the patient declined before the deadline
    SIP_PENDING = "sip_pending"  # nothing yet, the deadline has not passed
    SIP_LATE = "sip_late"  # sent or declined only at or after the deadline
    SIP_MISSING = "sip_missing"  # the deadline passed with nothing sent
    CARE_CONTACT_APPOINTED = "care_contact_appointed"
    CARE_CONTACT_PENDING = "care_contact_pending"
    CARE_CONTACT_LATE = "care_contact_late"
    CARE_CONTACT_MISSING = "care_contact_missing"
    ADMISSION_NOTICE_SENT = "admission_notice_sent"
    ADMISSION_NOTICE_PENDING = "admission_notice_pending"
    ADMISSION_NOTICE_LATE = "admission_notice_late"
    ADMISSION_NOTICE_MISSING = "admission_notice_missing"


_PENDING = frozenset(
    {
        ConditionReason.SIP_PENDING,
        ConditionReason.CARE_CONTACT_PENDING,
        ConditionReason.ADMISSION_NOTICE_PENDING,
    }
)


@dataclass(frozen=True, slots=True)
class ConditionCheck:
    """One condition: ``met`` is whether it holds as of ``now``; ``reason`` says why."""

    met: bool
    reason: ConditionReason

    @property
    def can_still_be_met(self) -> bool:
        """Met already, or not met only because its deadline has not passed yet."""
        return self.met or self.reason in _PENDING


@dataclass(frozen=True, slots=True)
class LiabilityConditions:
    """The region's obligations that make the municipality liable."""

    sip: ConditionCheck
    care_contact: ConditionCheck
    admission_notice: ConditionCheck

    @property
    def all_met(self) -> bool:
        """Every condition holds."""
        return self.sip.met and self.care_contact.met and self.admission_notice.met

    @property
    def can_all_still_be_met(self) -> bool:
        """No condition has already failed for good."""
        return all(
            check.can_still_be_met for check in (self.sip, self.care_contact, self.admission_notice)
        )


class ClockEndReason(StrEnum):
    """What stopped a liability clock."""

    DISCHARGED = "discharged"
    RETRACTED = "retracted"


@dataclass(frozen=True, slots=True)
class ClockAssessment:
    """One liability clock, started by one *utskrivningsklar*, as of ``now``.

    ``liability_started``: the clock was still running at ``liability_start_utc``, that instant
    has passed, and every condition held. ``liability_bed_days`` counts whole local days from
    day 4 to the day before the end (or before ``now``'s date while the clock runs).
    ``warning_due``: the clock runs, ``warn_at_utc <= now < liability_start_utc``, and no
    condition has failed for good.
    """

    ready_at_utc: datetime
    day1_local_date: date
    warn_at_utc: datetime
    sip_deadline_utc: datetime
    liability_start_utc: datetime
    ended_at_utc: datetime | None
    end_reason: ClockEndReason | None
    conditions: LiabilityConditions
    liability_started: bool
    liability_bed_days: int
    warning_due: bool

    @property
    def is_open(self) -> bool:
        """The clock is still running (no discharge or retraction up to ``now``)."""
        return self.ended_at_utc is None


@dataclass(frozen=True, slots=True)
class LiabilityAssessment:
    """Every clock of an episode, in order, with the totals."""

    clocks: tuple[ClockAssessment, ...]
    total_liability_bed_days: int

    @property
    def open_clock(self) -> ClockAssessment | None:
        """The running clock, if any (at most one runs at a time)."""
        if self.clocks and self.clocks[-1].is_open:
            return self.clocks[-1]
        return None

    @property
    def in_liability(self) -> bool:
        """A clock is running and its liability has started."""
        clock = self.open_clock
        return clock is not None and clock.liability_started

    @property
    def warning_due(self) -> bool:
        """The on-call staff should be warned now (the open clock heads into liability)."""
        clock = self.open_clock
        return clock is not None and clock.warning_due


# --------------------------------------------------------------------------------------------
# Day counting
# --------------------------------------------------------------------------------------------


def _counts(local_date: date, policy: LiabilityPolicy) -> bool:
    return policy.count_weekends_and_holidays or not is_weekend_or_holiday(local_date)


def day_one(ready_at_utc: datetime, policy: LiabilityPolicy) -> date:
    """Day 1 of a clock: the assessment's local date if before the cut-off, else the next day.

    With working-day counting, the first counted day on or after that date.
    """
    ready_local = require_aware(ready_at_utc, "ready_at_utc").astimezone(STOCKHOLM)
    candidate = ready_local.date()
    if ready_local.time() >= policy.cutoff_local:
        candidate += _ONE_DAY
    while not _counts(candidate, policy):
        candidate += _ONE_DAY
    return candidate


def nth_day(day1: date, n: int, policy: LiabilityPolicy) -> date:
    """The local date of day ``n`` of a clock whose day 1 is ``day1``."""
    if n < 1:
        msg = "n: day numbers start at 1"
        raise ValueError(msg)
    if policy.count_weekends_and_holidays:
        return day1 + timedelta(days=n - 1)
    day, number = day1, 1
    while number < n:
        day += _ONE_DAY
        if _counts(day, policy):
            number += 1
    return day


def _counted_days(first: date, stop: date, policy: LiabilityPolicy) -> int:
    """Counted days in ``[first, stop)``."""
    if stop <= first:
        return 0
    if policy.count_weekends_and_holidays:
        return (stop - first).days
    return sum(
        1 for offset in range((stop - first).days) if _counts(first + timedelta(offset), policy)
    )


# --------------------------------------------------------------------------------------------
# Assessment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Clock:
    ready_at_utc: datetime
    ended_at_utc: datetime | None = None
    end_reason: ClockEndReason | None = None


def _clocks(events: Iterable[EpisodeEvent]) -> list[_Clock]:
    """Cut the event stream into clocks: each assessment opens one, retraction/discharge close.

    An assessment while a clock runs is a repeat and changes nothing; a retraction with no clock
    running is ignored; nothing after the discharge matters.
    """
    clocks: list[_Clock] = []
    running: datetime | None = None
    for event in events:
        if event.kind is FactKind.READY_FOR_DISCHARGE and running is None:
            running = event.at_utc
        elif event.kind is FactKind.READY_FOR_DISCHARGE_RETRACTED and running is not None:
            clocks.append(_Clock(running, event.at_utc, ClockEndReason.RETRACTED))
            running = None
        elif event.kind is FactKind.DISCHARGED:
            if running is not None:
                clocks.append(_Clock(running, event.at_utc, ClockEndReason.DISCHARGED))
                running = None
            return clocks
    if running is not None:
        clocks.append(_Clock(running))
    return clocks


def _check(
    times: list[datetime],
    deadline: datetime,
    now: datetime,
    *,
    met: ConditionReason,
    pending: ConditionReason,
    late: ConditionReason,
    missing: ConditionReason,
) -> ConditionCheck:
    """A condition met by an event strictly before ``deadline`` (``times`` are <= ``now``)."""
    if any(at < deadline for at in times):
        return ConditionCheck(met=True, reason=met)
    if times:
        return ConditionCheck(met=False, reason=late)
    if now < deadline:
        return ConditionCheck(met=False, reason=pending)
    return ConditionCheck(met=False, reason=missing)


def _sip_check(
    invited: list[datetime], declined: list[datetime], deadline: datetime, now: datetime
) -> ConditionCheck:
    if any(at < deadline for at in invited):
        return ConditionCheck(met=True, reason=ConditionReason.SIP_INVITED)
    return _check(
        declined + invited,
        deadline,
        now,
        met=ConditionReason.SIP_DECLINED,
        pending=ConditionReason.SIP_PENDING,
        late=ConditionReason.SIP_LATE,
        missing=ConditionReason.SIP_MISSING,
    )


def assess(facts: EpisodeFacts, now: datetime, policy: LiabilityPolicy) -> LiabilityAssessment:
    """The episode's liability clocks and bed days as of ``now`` (events after it are ignored)."""
    now_utc = require_aware(now, "now")
    # Stable sort: events at the same instant keep the order the caller gave them in.
    events = sorted(
        (event for event in facts.events if event.at_utc <= now_utc), key=lambda e: e.at_utc
    )

    def times(kind: FactKind) -> list[datetime]:
        return [event.at_utc for event in events if event.kind is kind]

    invited = times(FactKind.SIP_INVITATION_SENT)
    declined = times(FactKind.SIP_DECLINED)
    appointed = times(FactKind.CARE_CONTACT_APPOINTED)
    notices = times(FactKind.ADMISSION_NOTICE_SENT)

    assessed = []
    for clock in _clocks(events):
        day1 = day_one(clock.ready_at_utc, policy)
        start_day = nth_day(day1, policy.liability_start_day, policy)
        start_utc = start_of_local_day(start_day)
        warn_at = local_to_utc(nth_day(day1, policy.warn_day, policy), policy.warn_local_time)
        sip_deadline = start_of_local_day(nth_day(day1, policy.sip_deadline_day, policy))
        notice_check = (
            ConditionCheck(met=True, reason=ConditionReason.ADMISSION_NOTICE_SENT)
            if facts.admission_notice_sent
            else _check(
                notices,
                start_utc,
                now_utc,
                met=ConditionReason.ADMISSION_NOTICE_SENT,
                pending=ConditionReason.ADMISSION_NOTICE_PENDING,
                late=ConditionReason.ADMISSION_NOTICE_LATE,
                missing=ConditionReason.ADMISSION_NOTICE_MISSING,
            )
        )
        conditions = LiabilityConditions(
            sip=_sip_check(invited, declined, sip_deadline, now_utc),
            care_contact=_check(
                appointed,
                start_utc,
                now_utc,
                met=ConditionReason.CARE_CONTACT_APPOINTED,
                pending=ConditionReason.CARE_CONTACT_PENDING,
                late=ConditionReason.CARE_CONTACT_LATE,
                missing=ConditionReason.CARE_CONTACT_MISSING,
            ),
            admission_notice=notice_check,
        )
        # "Still in hospital at 00:00 on day 4": an end at that very instant is not "still".
        running_at_start = clock.ended_at_utc is None or clock.ended_at_utc > start_utc
        started = now_utc >= start_utc and running_at_start and conditions.all_met
        if started:
            stop = local_date_of(clock.ended_at_utc or now_utc)
            bed_days = _counted_days(start_day, stop, policy)
        else:
            bed_days = 0
        warning_due = (
            clock.ended_at_utc is None
            and warn_at <= now_utc < start_utc
            and conditions.can_all_still_be_met
        )
        assessed.append(
            ClockAssessment(
                ready_at_utc=clock.ready_at_utc,
                day1_local_date=day1,
                warn_at_utc=warn_at,
                sip_deadline_utc=sip_deadline,
                liability_start_utc=start_utc,
                ended_at_utc=clock.ended_at_utc,
                end_reason=clock.end_reason,
                conditions=conditions,
                liability_started=started,
                liability_bed_days=bed_days,
                warning_due=warning_due,
            )
        )
    return LiabilityAssessment(
        clocks=tuple(assessed),
        total_liability_bed_days=sum(clock.liability_bed_days for clock in assessed),
    )
