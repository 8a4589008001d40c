"""The traffic model: a seeded, time-ordered stream of Norrbotten discharge-planning traffic.

`simulate` turns a unit directory, a start instant and a seed into the messages the journal
systems of Region Norrbotten and its 14 municipalities would send (`publish` events) and the
receipts (*kvittenser*) the recipient units would give (`receipt` events). It is a pure function
of its arguments: one `random.Random(seed)` drives every draw, nothing reads the clock, and the
same arguments give the same stream, ids and instants included. It is what `make demo` and the
benchmarks drive, so it is built to be fast (a year of traffic, ~9,000 episodes and ~225,000
events, in a few seconds) and lazy (events are yielded as soon as no later episode can precede
them, so memory stays bounded by the episodes in flight).

The figures come from DOMAIN.md and /work/shared/data/norrbotten-units.md; every number that no
source gives is an **assumption**, labelled as such where it is defined (`LifecycleParameters`,
`HospitalChoice`, `NORRBOTTEN_DEFAULT`).

Decisions
---------
* **Episodes.** Admissions are a Poisson process with a rate that is higher on weekdays than on
  weekends and holidays and follows an hour-of-day profile (Stockholm local time), scaled so
  that 365 days hold ``episodes_per_year`` on average. Every episode admitted in
  ``[start, start + days)`` is simulated to its end, so the stream runs past the window.
* **Causal order.** The admission notice is the first message of its episode, even when it is
  late: the router needs it to know the recipients, and a real ward's system cannot send a
  planning document for a stay it has not announced. A message whose moment comes before a late
  notice keeps that moment as ``occurred_at`` (and in its payload: ``assessed_at``,
  ``discharged_at``) and is sent right after the notice. Sending times within an episode are
  strictly increasing (at least 30 s apart), the discharge notice is the last message, and every
  other message is drawn before it. A cancellation always follows the message it cancels.
* **"Late" admission notice** means sent on a later Stockholm date than the admission. The 84 %
  on-time share and the mean lateness of 1.2 days are applied as "84 % on the day; the late ones
  are late by 1.2 days on average" (the reading the simulator brief asks for). A rare very late
  tail reaches the worst case of 71 days seen in 2019.
* **Receipts.** The simulator does not route; it knows each message type's audience from
  `hub.routing.ROUTING_RULES` and the episode's actors (ward, listed health centre, home health
  care and assessment unit of the home municipality), leaves out the sender, and gives each
  recipient one receipt after that unit's delay (`SimBehaviour`), counted from the moment the
  message was sent (routing takes no simulated time). Consumers compute the delivery id with
  ``topics.ids.delivery_id_for(event.message_id, event.unit)``.
* **Synthetic patients.** Patient numbers are made up: Luhn-valid 12-digit personnummer with a
  drawn birth date and a birth number (*födelsenummer*) in 980-999, the series Skatteverket's
  published test numbers use (811228-9874 is one). Nothing is derived from real people; like any
  valid number, one may still coincide with a real person's, so treat the stream as patient
  data all the same (the hub does). Episode ids are ``SIM-<seed>-<n>``.
* **Speed.** Envelopes are built with ``model_construct`` from values that are already in the
  contract's normal form (UTC datetimes, ``YYYYMMDD-NNNC``, ``UUID``): validating each one costs
  about three times as much. The unit tests validate every envelope of a simulated year against
  the contract, so the shortcut is checked, not trusted.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from types import MappingProxyType
from typing import Final, Literal, NamedTuple
from uuid import UUID

from hub.calendar import STOCKHOLM, is_weekend_or_holiday
from hub.directory import Directory, Unit
from hub.errors import ConfigurationError
from hub.routing import ROUTING_RULES, Audience
from topics.catalogue import MessageType, UnitKind
from topics.identifiers import contains_identity_number, luhn_check_digit
from topics.messages import (
    SCHEMA_VERSION,
    AdmissionNotice,
    Cancellation,
    CareContactAppointed,
    DischargeDateChanged,
    DischargeNotice,
    Envelope,
    GeneralMessage,
    PayloadModel,
    PlanningAction,
    PlanningDocument,
    ReadyForDischarge,
    ReadyForDischargeRetracted,
    SipDeclined,
    SipInvitation,
)

__all__ = [
    "CHRISTMAS_BACKLOG",
    "NORRBOTTEN_DEFAULT",
    "NORRBOTTEN_LIFECYCLE",
    "SYNTHETIC_BIRTH_NUMBERS",
    "Blackout",
    "EventKind",
    "HospitalChoice",
    "LifecycleParameters",
    "ReceiptDelay",
    "SimBehaviour",
    "SimEvent",
    "SimStats",
    "UnitBehaviour",
    "UnitOverride",
    "christmas_backlog",
    "episode_id_for",
    "simulate",
]

EventKind = Literal["publish", "receipt"]

#: Birth numbers of the synthetic patients: the series of Skatteverket's published test numbers.
SYNTHETIC_BIRTH_NUMBERS: Final = range(980, 1000)


# --------------------------------------------------------------------------------------------
# Behaviour of recipient units: how fast they receipt
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiptDelay:
    """Minutes from a message reaching a unit to its receipt: log-normal, clamped.

    ``median_minutes`` is the median delay and ``sigma`` the spread of its logarithm (0.8 puts
    the 90th percentile at about 2.8 times the median).
    """

    median_minutes: float
    sigma: float = 0.8
    min_minutes: float = 1.0
    max_minutes: float = 3 * 24 * 60.0

    def __post_init__(self) -> None:
        if not 0 < self.min_minutes <= self.median_minutes <= self.max_minutes:
            msg = "ReceiptDelay: need 0 < min_minutes <= median_minutes <= max_minutes"
            raise ConfigurationError(msg)
        if self.sigma < 0:
            msg = "ReceiptDelay.sigma: must not be negative"
            raise ConfigurationError(msg)

    def draw_s(self, rng: random.Random) -> float:
        """One delay in seconds."""
        # exp of a normal draw, as `random.lognormvariate`, but with the cheaper `gauss`.
        minutes = self.median_minutes * math.exp(self.sigma * rng.gauss())
        return min(max(minutes, self.min_minutes), self.max_minutes) * 60.0


@dataclass(frozen=True, slots=True)
class Blackout:
    """Stockholm dates, both inclusive, on which a unit receipts nothing.

    A receipt that would fall inside is given after the window instead (a fresh delay counted
    from the first midnight after ``last_day``): the backlog is cleared when staff are back.
    """

    first_day: date
    last_day: date

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            msg = "Blackout: last_day must not be before first_day"
            raise ConfigurationError(msg)


@dataclass(frozen=True, slots=True)
class UnitBehaviour:
    """How one unit receipts: delays by the kind of day the message arrives on.

    The kind of day (weekday, or weekend/holiday with its thinner staffing) is that of the
    Stockholm date on which the message reaches the unit. ``never_probability`` is the chance
    that a delivery is never receipted at all.
    """

    weekday: ReceiptDelay
    weekend_holiday: ReceiptDelay
    never_probability: float = 0.0
    blackouts: tuple[Blackout, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.never_probability <= 1.0:
            msg = "UnitBehaviour.never_probability: must be between 0 and 1"
            raise ConfigurationError(msg)


@dataclass(frozen=True, slots=True)
class UnitOverride:
    """Behaviour for the units that match every selector given (HSA-id, kind, municipality).

    Selectors left ``None`` match anything, so ``UnitOverride(b, kind=ASSESSMENT_UNIT,
    municipality_code="2521")`` names Pajala's assessment unit without knowing its HSA-id.
    """

    behaviour: UnitBehaviour
    hsa_id: str | None = None
    kind: UnitKind | None = None
    municipality_code: str | None = None

    def __post_init__(self) -> None:
        if self.hsa_id is None and self.kind is None and self.municipality_code is None:
            msg = "UnitOverride: give at least one of hsa_id, kind, municipality_code"
            raise ConfigurationError(msg)

    def matches(self, unit: Unit) -> bool:
        """Whether the override applies to ``unit``."""
        return (
            (self.hsa_id is None or self.hsa_id == unit.hsa_id)
            and (self.kind is None or self.kind is unit.kind)
            and (self.municipality_code is None or self.municipality_code == unit.municipality_code)
        )


@dataclass(frozen=True, slots=True)
class SimBehaviour:
    """Receipt behaviour of every unit: a default per unit kind, then overrides (first wins)."""

    by_kind: Mapping[UnitKind, UnitBehaviour]
    overrides: tuple[UnitOverride, ...] = ()

    def __post_init__(self) -> None:
        missing = [kind.value for kind in UnitKind if kind not in self.by_kind]
        if missing:
            msg = f"SimBehaviour.by_kind: a behaviour is required for every unit kind: {missing}"
            raise ConfigurationError(msg)
        object.__setattr__(self, "by_kind", MappingProxyType(dict(self.by_kind)))
        object.__setattr__(self, "overrides", tuple(self.overrides))

    def for_unit(self, unit: Unit) -> UnitBehaviour:
        """The behaviour of ``unit``: the first matching override, else its kind's default."""
        for override in self.overrides:
            if override.matches(unit):
                return override.behaviour
        return self.by_kind[unit.kind]

    def with_overrides(self, *overrides: UnitOverride) -> SimBehaviour:
        """The same defaults with ``overrides`` taking precedence over the existing ones."""
        return SimBehaviour(self.by_kind, (*overrides, *self.overrides))


def _behaviour(
    weekday_median: float, weekend_median: float, never: float, sigma: float = 0.8
) -> UnitBehaviour:
    return UnitBehaviour(
        weekday=ReceiptDelay(weekday_median, sigma),
        weekend_holiday=ReceiptDelay(weekend_median, sigma),
        never_probability=never,
    )


#: The Norrbotten default receipt behaviour. ASSUMPTION throughout: DOMAIN.md gives only the
#: agreed cadence (read twice a day on weekdays, once on weekends and holidays) and that health
#: centres and home health care, staffed every day, did better than municipal social services.
#: Medians in minutes (weekday / weekend-holiday): wards 45/60 (staffed round the clock), health
#: centres 150/360, home health care 120/240, assessment units 240/900 (one round a day on
#: weekends), other units 240/600. A few deliveries in a thousand are never receipted.
NORRBOTTEN_DEFAULT: Final = SimBehaviour(
    by_kind={
        UnitKind.HOSPITAL_WARD: _behaviour(45, 60, 0.001),
        UnitKind.HEALTH_CENTRE: _behaviour(150, 360, 0.003, sigma=0.9),
        UnitKind.HOME_HEALTH_CARE: _behaviour(120, 240, 0.002),
        UnitKind.ASSESSMENT_UNIT: _behaviour(240, 900, 0.005, sigma=0.9),
        UnitKind.OTHER_MUNICIPAL: _behaviour(240, 600, 0.005),
        UnitKind.REGIONAL_OPERATIONS: _behaviour(120, 240, 0.001),
    }
)


def christmas_backlog(
    year: int = 2026,
    *,
    municipality_code: str = "2521",
    kind: UnitKind = UnitKind.ASSESSMENT_UNIT,
    base: SimBehaviour = NORRBOTTEN_DEFAULT,
) -> SimBehaviour:
    """``base`` with one unit receipting nothing from 24 to 27 December of ``year`` (inclusive).

    DOMAIN.md: some municipal social services had up to 250 unreceipted messages over long
    holidays such as Christmas. By default the unit is Pajala's assessment unit (*biståndsenhet*).
    """
    usual = base.by_kind[kind]
    window = Blackout(date(year, 12, 24), date(year, 12, 27))
    stalled = UnitBehaviour(
        weekday=usual.weekday,
        weekend_holiday=usual.weekend_holiday,
        never_probability=usual.never_probability,
        blackouts=(window,),
    )
    return base.with_overrides(
        UnitOverride(stalled, kind=kind, municipality_code=municipality_code)
    )


#: `NORRBOTTEN_DEFAULT` with Pajala's assessment unit silent from 2026-12-24 to 2026-12-27.
CHRISTMAS_BACKLOG: Final = christmas_backlog(2026)


# --------------------------------------------------------------------------------------------
# The lifecycle of an episode
# --------------------------------------------------------------------------------------------


def _default_county_shares() -> Mapping[str, float]:
    # ASSUMPTION (no source gives patient flows): Malmfälten's acute surgery is done in
    # Gällivare, not Sunderby, so its residents go to Sunderby less often; Älvsbyn lies between
    # Piteå and Luleå and "some Älvsbyn patients may use Sunderby".
    return MappingProxyType({"2523": 0.10, "2510": 0.10, "2521": 0.10, "2584": 0.10, "2560": 0.40})


def _default_local_weights() -> Mapping[str, Mapping[str, float]]:
    # ASSUMPTION: Kiruna sjukhus has ~24 medicine/rehabilitation beds and sends surgery to
    # Gällivare, so Kiruna residents who stay in Malmfälten split 60/40 Kiruna/Gällivare.
    return MappingProxyType({"2584": MappingProxyType({"kiruna": 0.6, "gallivare": 0.4})})


@dataclass(frozen=True, slots=True)
class HospitalChoice:
    """Which hospital a resident of a municipality is admitted to.

    The local hospitals of a municipality are those whose ``serves`` list names it. The county
    hospital (*länssjukhus*, Sunderby) also takes ``county_share`` of the residents of every
    municipality it does not serve locally (ASSUMPTION: 25 %, for surgery and specialised care;
    per-municipality values in ``county_share_by_municipality``). The rest is split over the
    local hospitals, equally unless ``local_weights`` says otherwise. With these defaults
    Sunderby gets about 55 % of episodes, close to its ~380 of the county's ~650 beds.
    """

    county_hospital: str = "sunderby"
    county_share: float = 0.25
    county_share_by_municipality: Mapping[str, float] = field(
        default_factory=_default_county_shares
    )
    local_weights: Mapping[str, Mapping[str, float]] = field(default_factory=_default_local_weights)

    def weights(
        self, directory: Directory, municipality_code: str
    ) -> tuple[tuple[str, float], ...]:
        """``(hospital_id, probability)`` for residents of ``municipality_code``; sums to 1."""
        local = [h.hospital_id for h in directory.hospitals if municipality_code in h.serves]
        county = self.county_hospital if directory.hospital(self.county_hospital) else None
        if not local:
            if county is None:
                msg = f"hospitals: no hospital serves municipality {municipality_code}"
                raise ConfigurationError(msg)
            return ((county, 1.0),)
        given = self.local_weights.get(municipality_code, {})
        raw = [given.get(h, 1.0 if not given else 0.0) for h in local]
        total = sum(raw)
        if total <= 0:
            msg = f"local_weights[{municipality_code}]: must give a positive weight"
            raise ConfigurationError(msg)
        share = 0.0
        if county is not None and county not in local:
            share = self.county_share_by_municipality.get(municipality_code, self.county_share)
        table = [(h, (1.0 - share) * w / total) for h, w in zip(local, raw, strict=True) if w > 0]
        if share > 0 and county is not None:
            table.append((county, share))
        return tuple(table)


#: Relative admission rate by Stockholm hour of day. ASSUMPTION: mostly emergency admissions,
#: few at night, most from late morning to early evening.
_ADMISSION_HOURS: Final = (
    0.35, 0.30, 0.25, 0.25, 0.25, 0.30, 0.50, 0.80, 1.20, 1.50, 1.60, 1.60,
    1.60, 1.60, 1.50, 1.50, 1.40, 1.30, 1.20, 1.00, 0.90, 0.80, 0.60, 0.45,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LifecycleParameters:
    """The shape of an episode. Figures from DOMAIN.md are marked; the rest are ASSUMPTIONS.

    Shares are probabilities per episode unless said otherwise; durations are in days.
    """

    #: Admissions on a weekend or holiday relative to a weekday (fewer planned admissions).
    weekend_admission_weight: float = 0.75
    hourly_admission_weights: tuple[float, ...] = _ADMISSION_HOURS
    #: DOMAIN.md: 84 % of admission notices go out on the day of admission (2019).
    on_time_notice_share: float = 0.84
    #: DOMAIN.md: mean 1.2 days late, read as the mean lateness of the late notices (whole days).
    late_notice_mean_days: float = 1.2
    #: Of the late notices, this share is very late (7 days up to DOMAIN.md's worst case, 71).
    very_late_notice_share: float = 0.002
    very_late_notice_max_days: int = 71
    #: Days from admission to *utskrivningsklar*: log-normal (median 3.5 days, mean ~4.6).
    stay_median_days: float = 3.5
    stay_sigma: float = 0.75
    stay_max_days: float = 60.0
    planning_update_share: float = 0.35
    needs_more_information_share: float = 0.15
    #: Probability of 0, 1 and 2 changes of the expected discharge date (*framflyttning*).
    date_change_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    care_contact_share: float = 0.90
    #: DOMAIN.md: ~1,000 SIPs a year over ~9,000 episodes.
    sip_invitation_share: float = 0.11
    sip_declined_share: float = 0.05
    #: Relative weight of discharge 0, 1, ..., 5 days after *utskrivningsklar* (day 0: 40 %,
    #: 1-3: 45 %, 4-5: 15 % before the weekend correction below).
    discharge_day_weights: tuple[float, ...] = (0.40, 0.20, 0.15, 0.10, 0.08, 0.07)
    #: Weight of a weekend/holiday discharge day relative to a weekday one, calibrated so that
    #: ~17.3 % of discharges fall on weekends and holidays (DOMAIN.md, 2018).
    weekend_discharge_weight: float = 0.40
    retraction_share: float = 0.03
    general_message_share: float = 0.15
    #: A ward message (planning document or date change) sent in error and cancelled.
    cancellation_share: float = 0.01
    #: The admission notice itself was for the wrong patient: cancelled, and the episode ends.
    wrong_patient_share: float = 0.002
    #: Share of patients aged 65 or more (the ages of coordinated discharge planning).
    elderly_share: float = 0.80
    hospital_choice: HospitalChoice = field(default_factory=HospitalChoice)

    def __post_init__(self) -> None:
        shares = {
            "on_time_notice_share": self.on_time_notice_share,
            "very_late_notice_share": self.very_late_notice_share,
            "planning_update_share": self.planning_update_share,
            "needs_more_information_share": self.needs_more_information_share,
            "care_contact_share": self.care_contact_share,
            "retraction_share": self.retraction_share,
            "general_message_share": self.general_message_share,
            "cancellation_share": self.cancellation_share,
            "wrong_patient_share": self.wrong_patient_share,
            "elderly_share": self.elderly_share,
        }
        bad = [name for name, value in shares.items() if not 0.0 <= value <= 1.0]
        if self.sip_invitation_share + self.sip_declined_share > 1.0:
            bad.append("sip_invitation_share + sip_declined_share")
        if len(self.hourly_admission_weights) != 24:
            bad.append("hourly_admission_weights (24 values)")
        if self.very_late_notice_max_days < 7:
            bad.append("very_late_notice_max_days (at least 7)")
        elif self.extra_late_days < 0:
            bad.append("late_notice_mean_days (too small for the very late tail)")
        if not self.discharge_day_weights or not self.date_change_weights:
            bad.append("discharge_day_weights / date_change_weights (must not be empty)")
        if bad:
            msg = f"LifecycleParameters: out of range: {', '.join(bad)}"
            raise ConfigurationError(msg)

    @property
    def extra_late_days(self) -> float:
        """Mean days beyond the first of an ordinary late notice (a geometric count)."""
        very_late_mean = (7 + self.very_late_notice_max_days) / 2
        tail = self.very_late_notice_share
        if tail >= 1.0:
            return 0.0  # every late notice is very late; the ordinary count is never drawn
        return (self.late_notice_mean_days - tail * very_late_mean) / (1 - tail) - 1


#: The Norrbotten reference lifecycle (see the field comments for sources and assumptions).
NORRBOTTEN_LIFECYCLE: Final = LifecycleParameters()


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


class SimEvent(NamedTuple):
    """One thing that happens in the simulated world, at ``at`` (aware, UTC).

    ``publish``: a journal system sends ``envelope`` (``at`` is its ``sent_at``).
    ``receipt``: recipient ``unit`` (HSA-id, of ``unit_kind``) receipts message ``message_id``;
    the delivery id is ``topics.ids.delivery_id_for(message_id, unit)``.

    A named tuple rather than a frozen dataclass: a year holds ~225,000 of them, and a frozen
    dataclass costs more than twice as much to build.
    """

    at: datetime
    kind: EventKind
    message_id: UUID
    message_type: MessageType
    episode_id: str
    envelope: Envelope | None = None
    unit: str | None = None
    unit_kind: UnitKind | None = None


@dataclass(slots=True)
class SimStats:
    """Running figures over a stream of events: what was published, receipted, and how late.

    Mutable on purpose: `observe` is called once per event, by tests and by the runner.
    """

    published: Counter[MessageType] = field(default_factory=Counter)
    receipts: int = 0
    receipts_by_kind: Counter[UnitKind] = field(default_factory=Counter)
    late_admission_notices: int = 0
    weekend_holiday_discharges: int = 0
    episodes_with_sip_invitation: int = 0
    first_at: datetime | None = None  # the earliest event observed
    last_at: datetime | None = None  # the latest event observed

    def observe(self, event: SimEvent) -> None:
        """Count one event."""
        # Min and max, not first and last: a concurrent runner observes out of stream order.
        if self.first_at is None or event.at < self.first_at:
            self.first_at = event.at
        if self.last_at is None or event.at > self.last_at:
            self.last_at = event.at
        if event.kind == "receipt":
            self.receipts += 1
            if event.unit_kind is not None:
                self.receipts_by_kind[event.unit_kind] += 1
            return
        self.published[event.message_type] += 1
        payload = event.envelope.payload if event.envelope is not None else None
        if isinstance(payload, AdmissionNotice):
            if _local_date(event.at) > _local_date(payload.admitted_at):
                self.late_admission_notices += 1
        elif isinstance(payload, DischargeNotice):
            if is_weekend_or_holiday(_local_date(payload.discharged_at)):
                self.weekend_holiday_discharges += 1
        elif isinstance(payload, SipInvitation):
            self.episodes_with_sip_invitation += 1

    @property
    def episodes(self) -> int:
        """Episodes started (admission notices published)."""
        return self.published[MessageType.ADMISSION_NOTICE]

    @property
    def published_total(self) -> int:
        """Messages published, all types."""
        return self.published.total()

    @property
    def late_notice_share(self) -> float:
        """Share of admission notices sent after the day of admission."""
        return _ratio(self.late_admission_notices, self.episodes)

    @property
    def weekend_holiday_discharge_share(self) -> float:
        """Share of discharges on Saturdays, Sundays and holidays (Stockholm dates)."""
        return _ratio(self.weekend_holiday_discharges, self.published[MessageType.DISCHARGE_NOTICE])

    @property
    def sip_invitation_share(self) -> float:
        """Share of episodes with a SIP invitation (one per episode at most)."""
        return _ratio(self.episodes_with_sip_invitation, self.episodes)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _local_date(instant: datetime) -> date:
    return instant.astimezone(STOCKHOLM).date()


# --------------------------------------------------------------------------------------------
# Local time on integer instants
# --------------------------------------------------------------------------------------------
# Inside the model an instant is an int of POSIX seconds (UTC) and a Stockholm date is a day
# number (days since 1970-01-01, local). Datetime arithmetic costs about a microsecond per
# operation; a year of traffic needs millions of them. Datetimes are made only for the events.

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_DAY: Final = 86_400
_HOUR: Final = 3_600


class _LocalTime:
    """Stockholm dates and wall times of integer instants, memoised per hour and per day.

    Correct for any zone whose offset changes only on whole UTC hours by at most two hours,
    as Europe/Stockholm's does (01:00 UTC, last Sundays of March and October).
    """

    __slots__ = ("_dates", "_offsets", "_weekend")

    def __init__(self) -> None:
        self._offsets: dict[int, int] = {}
        self._dates: dict[int, date] = {}
        self._weekend: dict[int, bool] = {}

    def offset(self, instant: int) -> int:
        """The UTC offset in seconds at an instant."""
        hour = instant // _HOUR
        offset = self._offsets.get(hour)
        if offset is None:
            utc_offset = datetime.fromtimestamp(hour * _HOUR, STOCKHOLM).utcoffset()
            offset = int(utc_offset.total_seconds()) if utc_offset is not None else 0
            self._offsets[hour] = offset
        return offset

    def day(self, instant: int) -> int:
        """The Stockholm day number of an instant."""
        return (instant + self.offset(instant)) // _DAY

    def to_date(self, day: int) -> date:
        """The calendar date of a day number."""
        found = self._dates.get(day)
        if found is None:
            found = self._dates[day] = date.fromordinal(_EPOCH_ORDINAL + day)
        return found

    def day_of(self, local_date: date) -> int:
        """The day number of a calendar date."""
        return local_date.toordinal() - _EPOCH_ORDINAL

    def wall(self, day: int, seconds: float) -> int:
        """The instant of a Stockholm wall time, ``seconds`` after local midnight of ``day``.

        As `hub.calendar.local_to_utc`: a time in the spring gap moves forward by the gap, an
        ambiguous autumn time is its first occurrence. The offset is read two hours before the
        wall time taken as UTC, which is on the pre-change side at any wall time up to the
        change and on the post-change side after it.
        """
        local = day * _DAY + round(seconds)
        return local - self.offset(local - 2 * _HOUR)

    def weekend_or_holiday(self, day: int) -> bool:
        """Whether the day is a Saturday, Sunday or Swedish (de-facto) holiday."""
        found = self._weekend.get(day)
        if found is None:
            found = self._weekend[day] = is_weekend_or_holiday(self.to_date(day))
        return found


def _utc(instant: int) -> datetime:
    return datetime.fromtimestamp(instant, UTC)


# --------------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------------


def episode_id_for(seed: int, n: int) -> str:
    """The id of the ``n``-th simulated episode: ``SIM-<seed>-<n>``.

    When those digits happen to look like a personnummer (``SIM-811228-9874``), which an episode
    id must never contain, the number is written ``n<n>`` instead.
    """
    plain = f"SIM-{seed}-{n}"
    return f"SIM-{seed}-n{n}" if contains_identity_number(plain) else plain


def simulate(
    directory: Directory,
    start: datetime,
    days: int,
    *,
    seed: int,
    episodes_per_year: float = 9000,
    behaviour: SimBehaviour = NORRBOTTEN_DEFAULT,
    lifecycle: LifecycleParameters = NORRBOTTEN_LIFECYCLE,
) -> Iterator[SimEvent]:
    """Every event of the episodes admitted in ``[start, start + days)``, in time order.

    Events at the same instant come in the order they were drawn. Arguments are checked at
    once (``ValueError``, or ``ConfigurationError`` for a directory the model cannot use); the
    events are produced lazily. Instants are whole seconds.
    """
    if not isinstance(start, datetime) or start.tzinfo is None or start.utcoffset() is None:
        msg = "start: must be a timezone-aware datetime"
        raise ValueError(msg)
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        msg = "days: must be a non-negative int"
        raise ValueError(msg)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        msg = "seed: must be a non-negative int"
        raise ValueError(msg)
    if contains_identity_number(f"SIM-{seed}-"):
        msg = "seed: its digits look like a personnummer, which episode ids must not contain"
        raise ValueError(msg)
    if not 0 <= episodes_per_year < math.inf:
        msg = "episodes_per_year: must be a finite number >= 0"
        raise ValueError(msg)
    world = _World(directory, behaviour, lifecycle)
    return _stream(world, math.ceil(start.timestamp()), days, seed, episodes_per_year)


def _stream(
    world: _World, start: int, days: int, seed: int, episodes_per_year: float
) -> Iterator[SimEvent]:
    rng = random.Random(seed)
    pending: list[tuple[int, int, SimEvent]] = []
    push = heapq.heappush
    pop = heapq.heappop
    sequence = 0
    admissions = _admissions(world, rng, start, days, episodes_per_year)
    for n, admitted_at in enumerate(admissions, start=1):
        # Every event of this and of later episodes is at or after `admitted_at`.
        while pending and pending[0][0] < admitted_at:
            yield pop(pending)[2]
        for instant, event in _Episode(world, rng, episode_id_for(seed, n), admitted_at).events():
            push(pending, (instant, sequence, event))
            sequence += 1
    while pending:
        yield pop(pending)[2]


def _admissions(
    world: _World, rng: random.Random, start: int, days: int, episodes_per_year: float
) -> Iterator[int]:
    """Admission instants: a Poisson process whose rate is constant within each UTC hour."""
    if episodes_per_year == 0 or days == 0:
        return
    local = world.local
    lifecycle = world.lifecycle
    first_day = local.day(start)
    weights = [world.day_weight(first_day + i) for i in range(365)]
    per_weight_day = episodes_per_year / sum(weights)
    hours = lifecycle.hourly_admission_weights
    per_hour = [w / sum(hours) for w in hours]
    end = start + days * _DAY
    segment = start
    while segment < end:
        boundary = min((segment // _HOUR + 1) * _HOUR, end)
        local_hour = (segment + local.offset(segment)) % _DAY // _HOUR
        rate_per_s = (
            per_weight_day * world.day_weight(local.day(segment)) * per_hour[local_hour] / _HOUR
        )
        t = float(segment)
        if rate_per_s > 0:
            while True:
                t += rng.expovariate(rate_per_s)
                if t >= boundary:
                    break
                yield int(t)
        segment = boundary


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


@dataclass(frozen=True, slots=True)
class _Patient:
    municipality: str
    ward: Unit
    health_centre: Unit
    home_health_care: Unit
    assessment_unit: Unit


@dataclass(frozen=True, slots=True)
class _Receipting:
    """A unit's behaviour with its blackouts as day numbers."""

    weekday: ReceiptDelay
    weekend_holiday: ReceiptDelay
    never_probability: float
    blackouts: tuple[tuple[int, int], ...]


class _World:
    """Everything about the directory and the parameters the episodes need, looked up once."""

    def __init__(
        self, directory: Directory, behaviour: SimBehaviour, lifecycle: LifecycleParameters
    ) -> None:
        self.lifecycle = lifecycle
        self.local = _LocalTime()
        municipalities = list(directory.municipalities)
        if not municipalities:
            msg = "directory: no municipalities to simulate"
            raise ConfigurationError(msg)
        missing = [m.code for m in municipalities if not m.population]
        if missing:
            msg = f"municipalities: a population is required to simulate: {missing}"
            raise ConfigurationError(msg)
        self.codes = [m.code for m in municipalities]
        self.code_cum = list(accumulate(float(m.population or 0) for m in municipalities))
        self.wards: dict[str, list[Unit]] = {}
        for hospital in directory.hospitals:
            active = [w for w in directory.wards(hospital.hospital_id) if w.active]
            if active:
                self.wards[hospital.hospital_id] = active
        self.hospital_table: dict[str, tuple[list[str], list[float]]] = {}
        self.health_centres: dict[str, list[Unit]] = {}
        self.municipal: dict[str, tuple[Unit, Unit]] = {}
        for code in self.codes:
            self._add_municipality(directory, code)
        self.receipting: dict[str, _Receipting] = {}
        for unit in directory.units:
            chosen = behaviour.for_unit(unit)
            self.receipting[unit.hsa_id] = _Receipting(
                chosen.weekday,
                chosen.weekend_holiday,
                chosen.never_probability,
                tuple(
                    (self.local.day_of(b.first_day), self.local.day_of(b.last_day))
                    for b in chosen.blackouts
                ),
            )
        self.audience = {
            message_type: rule.kinds
            for message_type, rule in ROUTING_RULES.items()
            if rule.audience is Audience.EPISODE
        }
        extra = lifecycle.extra_late_days
        self.late_continue = extra / (1 + extra)

    def _add_municipality(self, directory: Directory, code: str) -> None:
        table = self.lifecycle.hospital_choice.weights(directory, code)
        unstaffed = [h for h, _ in table if h not in self.wards]
        if unstaffed:
            msg = f"hospitals: {unstaffed} serve {code} but have no active ward"
            raise ConfigurationError(msg)
        self.hospital_table[code] = ([h for h, _ in table], list(accumulate(w for _, w in table)))
        centres = [
            u
            for u in directory.units_in_municipality(code)
            if u.kind is UnitKind.HEALTH_CENTRE and u.active
        ]
        if not centres:
            msg = f"units: municipality {code} has no active health centre"
            raise ConfigurationError(msg)
        self.health_centres[code] = centres
        municipal = directory.municipal_units(code)
        if municipal is None:  # pragma: no cover - the directory guarantees it
            msg = f"units: municipality {code} has no municipal units"
            raise ConfigurationError(msg)
        self.municipal[code] = (municipal.home_health_care, municipal.assessment_unit)

    def day_weight(self, day: int) -> float:
        """Admission weight of a Stockholm day."""
        if self.local.weekend_or_holiday(day):
            return self.lifecycle.weekend_admission_weight
        return 1.0

    def patient(self, rng: random.Random) -> _Patient:
        """Home municipality by population, then hospital, ward and listed health centre."""
        code = self.codes[_pick(rng, self.code_cum)]
        hospitals, cumulative = self.hospital_table[code]
        hospital = hospitals[_pick(rng, cumulative)]
        ward = rng.choice(self.wards[hospital])
        centre = rng.choice(self.health_centres[code])
        home, assessment = self.municipal[code]
        return _Patient(code, ward, centre, home, assessment)


def _pick(rng: random.Random, cumulative: Sequence[float]) -> int:
    index = bisect_right(cumulative, rng.random() * cumulative[-1])
    return min(index, len(cumulative) - 1)


def _synthetic_personnummer(rng: random.Random, admitted: date, elderly_share: float) -> str:
    """A made-up, Luhn-valid 12-digit personnummer with a birth number in 980-999."""
    if rng.random() < elderly_share:
        age = 65 + int(rng.triangular(0, 35, 17))  # mode ~82, none over 100
    else:
        age = rng.randint(18, 64)
    born = date(admitted.year - age - 1, 1, 1) + timedelta(days=rng.randrange(365))
    serial = rng.randrange(SYNTHETIC_BIRTH_NUMBERS.start, SYNTHETIC_BIRTH_NUMBERS.stop)
    birth = f"{born.year:04d}{born.month:02d}{born.day:02d}"
    return f"{birth}-{serial:03d}{luhn_check_digit(f'{birth[2:]}{serial:03d}')}"


# --- one episode ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Draft:
    """A message before its sending time is fixed: when it happened, and what it says."""

    occurred: int
    rank: int  # tie-break in causal order when two messages happen at the same instant
    message_type: MessageType
    sender: str
    payload: PayloadModel
    message_id: UUID
    named: tuple[str, ...] = ()  # explicit recipients (general message)
    cancels: UUID | None = None  # the message a cancellation withdraws
    causation: UUID | None = None  # the message this one answers (``causation_id``)


_RANK: Final = {
    MessageType.ADMISSION_NOTICE: 0,
    MessageType.PLANNING_DOCUMENT: 1,
    MessageType.DISCHARGE_DATE_CHANGED: 2,
    MessageType.GENERAL_MESSAGE: 3,
    MessageType.CARE_CONTACT_APPOINTED: 4,
    MessageType.READY_FOR_DISCHARGE: 5,
    MessageType.READY_FOR_DISCHARGE_RETRACTED: 6,
    MessageType.SIP_INVITATION: 7,
    MessageType.SIP_DECLINED: 7,
    MessageType.CANCELLATION: 8,
    MessageType.DISCHARGE_NOTICE: 9,
}

_STEP_S: Final = 30  # minimum gap between two sends of one episode
_MIN: Final = 60
_TEXT_TAG: Final = "[simulerad]"  # every free text says it is simulated
_DATE_CHANGE_REASONS: Final = (
    "väntar på provsvar",
    "fortsatt behandling",
    "förändrat vårdbehov",
    "väntar på hjälpmedel",
    "infektion under vårdtiden",
)
_CONTACT_ROLES: Final = ("distriktssköterska", "sjuksköterska", "läkare")
_PLANNING_SUMMARY: Final = (
    f"{_TEXT_TAG} planeringsunderlag: behov av hemsjukvård och hemtjänst efter utskrivning"
)


class _Episode:
    """The messages and receipts of one inpatient stay (*vårdtillfälle*).

    Instants are int POSIX seconds and days are Stockholm day numbers (see `_LocalTime`).
    """

    __slots__ = (
        "actors",
        "admitted",
        "discharged",
        "drafts",
        "episode_id",
        "final_ready",
        "first_ready",
        "last_moment",
        "local",
        "notice_at",
        "patient",
        "pin",
        "rng",
        "ward_messages",
        "world",
    )

    def __init__(self, world: _World, rng: random.Random, episode_id: str, admitted: int) -> None:
        self.world = world
        self.local = world.local
        self.rng = rng
        self.episode_id = episode_id
        self.admitted = admitted
        self.patient = patient = world.patient(rng)
        self.pin = _synthetic_personnummer(
            rng, self.local.to_date(self.local.day(admitted)), world.lifecycle.elderly_share
        )
        self.actors: dict[str, Unit] = {
            u.hsa_id: u
            for u in (
                patient.ward,
                patient.health_centre,
                patient.home_health_care,
                patient.assessment_unit,
            )
        }
        self.drafts: list[_Draft] = []
        self.ward_messages: list[_Draft] = []
        self.notice_at = self.first_ready = self.final_ready = admitted
        self.discharged = self.last_moment = admitted

    # -- helpers -------------------------------------------------------------------------

    def _add(
        self,
        occurred: int,
        message_type: MessageType,
        sender: str,
        payload: PayloadModel,
        *,
        named: tuple[str, ...] = (),
        cancels: UUID | None = None,
        causation: UUID | None = None,
    ) -> _Draft:
        draft = _Draft(
            occurred,
            _RANK[message_type],
            message_type,
            sender,
            payload,
            _uuid(self.rng),
            named,
            cancels,
            causation or cancels,
        )
        self.drafts.append(draft)
        return draft

    def _between(self, low: int, high: int) -> int:
        """Uniform in ``[low, high]``; ``high`` when the interval is empty (never after it)."""
        if high <= low:
            return high
        return low + round(self.rng.uniform(0, high - low))

    def _clamp(self, moment: int, low: int) -> int:
        """``moment`` moved into ``[low, last_moment]``; the upper bound wins."""
        return min(max(moment, low), self.last_moment)

    def _daytime(self, day: int, first_hour: float, last_hour: float) -> int:
        return self.local.wall(day, self.rng.uniform(first_hour, last_hour) * _HOUR)

    # -- drawing -------------------------------------------------------------------------

    def _draw(self) -> None:
        rng = self.rng
        lifecycle = self.world.lifecycle
        ward = self.patient.ward.hsa_id
        admitted_day = self.local.day(self.admitted)
        stay_days = min(
            rng.lognormvariate(math.log(lifecycle.stay_median_days), lifecycle.stay_sigma),
            lifecycle.stay_max_days,
        )
        expected = admitted_day + max(0, round(stay_days + rng.uniform(-1, 2)))
        self.notice_at = self._notice_time(admitted_day)
        notice = self._add(
            self.notice_at,
            MessageType.ADMISSION_NOTICE,
            ward,
            AdmissionNotice.model_construct(
                _all_fields(AdmissionNotice),
                ward=ward,
                admitted_at=_utc(self.admitted),
                expected_discharge_date=self.local.to_date(expected),
                listed_health_centre=self.patient.health_centre.hsa_id,
                home_municipality=self.patient.municipality,
            ),
        )
        if rng.random() < lifecycle.wrong_patient_share:
            moment = self.notice_at + round(rng.uniform(15, 360) * _MIN)
            self._cancel(notice, moment, "fel patient")
            return
        self._draw_ready(stay_days)
        self._draw_planning()
        self._draw_date_changes(expected, admitted_day)
        self._draw_care_contact()
        self._draw_sip()
        self._draw_general_message()
        if rng.random() < lifecycle.cancellation_share:
            original = rng.choice(self.ward_messages)
            moment = original.occurred + round(rng.uniform(10, 120) * _MIN)
            if moment < self.last_moment:
                self._cancel(original, moment, "skickat i fel ärende")
        self._add(
            self.discharged,
            MessageType.DISCHARGE_NOTICE,
            ward,
            DischargeNotice.model_construct(
                _all_fields(DischargeNotice), discharged_at=_utc(self.discharged)
            ),
        )

    def _notice_time(self, admitted_day: int) -> int:
        """On the day of admission, or late by whole days (sent during office hours)."""
        rng = self.rng
        lifecycle = self.world.lifecycle
        if rng.random() < lifecycle.on_time_notice_share:
            room = self.local.wall(admitted_day + 1, 0) - 1 - self.admitted
            return self.admitted + min(round(rng.uniform(5, 240) * _MIN), max(room * 9 // 10, 0))
        if rng.random() < lifecycle.very_late_notice_share:
            days_late = rng.randint(7, lifecycle.very_late_notice_max_days)
        else:
            days_late = 1
            while rng.random() < self.world.late_continue:
                days_late += 1
        return self._daytime(admitted_day + days_late, 8.0, 16.0)

    def _ready_on(self, day: int, not_before: int) -> int:
        return max(self._daytime(day, 8.5, 15.5), not_before)

    def _draw_ready(self, stay_days: float) -> None:
        """*Utskrivningsklar*, sometimes retracted and given again; then the discharge."""
        rng = self.rng
        lifecycle = self.world.lifecycle
        ward = self.patient.ward.hsa_id
        ready_day = self.local.day(self.admitted + round(stay_days * _DAY))
        self.first_ready = self.final_ready = self._ready_on(ready_day, self.admitted + 4 * _HOUR)
        retracted: int | None = None
        if rng.random() < lifecycle.retraction_share:
            retracted = self.first_ready + round(rng.uniform(2, 20) * _HOUR)
            again = self.local.day(retracted) + rng.randint(1, 3)
            self.final_ready = self._ready_on(again, retracted + 2 * _HOUR)
        self.discharged = self._discharge_time(self.final_ready)
        self.last_moment = self.discharged - 5 * _MIN
        first = self._add(
            self.first_ready,
            MessageType.READY_FOR_DISCHARGE,
            ward,
            ReadyForDischarge.model_construct(
                _all_fields(ReadyForDischarge), assessed_at=_utc(self.first_ready)
            ),
        )
        if retracted is not None:
            self._add(
                retracted,
                MessageType.READY_FOR_DISCHARGE_RETRACTED,
                ward,
                ReadyForDischargeRetracted.model_construct(
                    _all_fields(ReadyForDischargeRetracted),
                    retracted_at=_utc(retracted),
                    reason=f"{_TEXT_TAG} försämrat tillstånd",
                ),
                causation=first.message_id,
            )
            self._add(
                self.final_ready,
                MessageType.READY_FOR_DISCHARGE,
                ward,
                ReadyForDischarge.model_construct(
                    _all_fields(ReadyForDischarge), assessed_at=_utc(self.final_ready)
                ),
            )

    def _discharge_time(self, ready: int) -> int:
        """0-5 days after *utskrivningsklar*, weekend and holiday days weighted down."""
        lifecycle = self.world.lifecycle
        local = self.local
        ready_day = local.day(ready)
        weekend = lifecycle.weekend_discharge_weight
        weights = [
            w * weekend if local.weekend_or_holiday(ready_day + k) else w
            for k, w in enumerate(lifecycle.discharge_day_weights)
        ]
        offset = _pick(self.rng, list(accumulate(weights)))
        discharged = self._daytime(ready_day + offset, 10.0, 17.0)
        if discharged < ready + 45 * _MIN:
            discharged = ready + round(self.rng.uniform(45, 240) * _MIN)
        return discharged

    def _draw_planning(self) -> None:
        """The planning document (*planeringsunderlag*): created, sometimes updated."""
        rng = self.rng
        lifecycle = self.world.lifecycle
        ward = self.patient.ward.hsa_id
        created = min(self.notice_at + round(rng.uniform(1, 20) * _HOUR), self.last_moment)
        incomplete = rng.random() < lifecycle.needs_more_information_share
        self.ward_messages.append(
            self._add(
                created,
                MessageType.PLANNING_DOCUMENT,
                ward,
                _planning(PlanningAction.CREATED, needs_more_information=incomplete),
            )
        )
        if incomplete or rng.random() < lifecycle.planning_update_share:
            updated = min(created + round(rng.uniform(4, 48) * _HOUR), self.last_moment)
            self.ward_messages.append(
                self._add(
                    updated,
                    MessageType.PLANNING_DOCUMENT,
                    ward,
                    _planning(PlanningAction.UPDATED, needs_more_information=False),
                )
            )

    def _draw_date_changes(self, expected: int, admitted_day: int) -> None:
        """0-2 changes of the expected discharge date (*framflyttning*), the last one right."""
        rng = self.rng
        ward = self.patient.ward.hsa_id
        changes = _pick(rng, list(accumulate(self.world.lifecycle.date_change_weights)))
        latest = min(self.final_ready, self.last_moment)
        moments = sorted(self._between(self.notice_at + _HOUR, latest) for _ in range(changes))
        final_day = self.local.day(self.discharged)
        previous = expected
        for index, moment in enumerate(moments):
            new = final_day if index == changes - 1 else final_day + rng.randint(-1, 2)
            new = max(new, admitted_day)
            if new == previous:
                new += 1
            previous = new
            self.ward_messages.append(
                self._add(
                    moment,
                    MessageType.DISCHARGE_DATE_CHANGED,
                    ward,
                    DischargeDateChanged.model_construct(
                        _all_fields(DischargeDateChanged),
                        new_expected_discharge_date=self.local.to_date(new),
                        reason=f"{_TEXT_TAG} {rng.choice(_DATE_CHANGE_REASONS)}",
                    ),
                )
            )

    def _draw_care_contact(self) -> None:
        """The listed health centre names the care contact (*fast vårdkontakt*)."""
        rng = self.rng
        if rng.random() >= self.world.lifecycle.care_contact_share:
            return
        centre = self.patient.health_centre.hsa_id
        moment = self.first_ready + round(rng.uniform(-24, 36) * _HOUR)
        self._add(
            self._clamp(moment, self.notice_at + 30 * _MIN),
            MessageType.CARE_CONTACT_APPOINTED,
            centre,
            CareContactAppointed.model_construct(
                _all_fields(CareContactAppointed),
                contact_role=rng.choice(_CONTACT_ROLES),
                contact_unit=centre,
            ),
        )

    def _draw_sip(self) -> None:
        """A SIP invitation within 2.5 days of *utskrivningsklar*, or the patient declines.

        2.5 days after the assessment is always before 00:00 at the start of liability day 4,
        whatever the 12:00 cut-off does, so every invitation is in time.
        """
        rng = self.rng
        lifecycle = self.world.lifecycle
        draw = rng.random()
        if draw >= lifecycle.sip_invitation_share + lifecycle.sip_declined_share:
            return
        patient = self.patient
        centre = patient.health_centre.hsa_id
        moment = self.first_ready + round(rng.uniform(0.5, 60) * _HOUR)
        moment = self._clamp(moment, self.first_ready + 5 * _MIN)
        if draw < lifecycle.sip_invitation_share:
            invited = (
                patient.ward.hsa_id,
                patient.home_health_care.hsa_id,
                patient.assessment_unit.hsa_id,
            )
            invitation = SipInvitation.model_construct(
                _all_fields(SipInvitation),
                meeting_at=_utc(self._meeting_after(moment)),
                invited=invited,
            )
            self._add(moment, MessageType.SIP_INVITATION, centre, invitation)
        else:
            declined = SipDeclined.model_construct(
                _all_fields(SipDeclined), declined_at=_utc(moment)
            )
            self._add(moment, MessageType.SIP_DECLINED, centre, declined)

    def _meeting_after(self, moment: int) -> int:
        day = self.local.day(moment) + self.rng.randint(1, 4)
        while self.local.weekend_or_holiday(day):
            day += 1
        return self.local.wall(day, self.rng.choice((9, 10, 13, 14)) * _HOUR)

    def _draw_general_message(self) -> None:
        """Free text from the ward to some of the episode's recipients (*meddelande*)."""
        rng = self.rng
        if rng.random() >= self.world.lifecycle.general_message_share:
            return
        patient = self.patient
        units = (
            patient.health_centre.hsa_id,
            patient.home_health_care.hsa_id,
            patient.assessment_unit.hsa_id,
        )
        named = tuple(u for u in units if rng.random() < 0.5) or (units[1],)
        self._add(
            self._between(self.notice_at + _HOUR, self.last_moment),
            MessageType.GENERAL_MESSAGE,
            patient.ward.hsa_id,
            GeneralMessage.model_construct(
                _all_fields(GeneralMessage),
                text=f"{_TEXT_TAG} fråga om hemgång och hjälpmedel",
                recipients=named,
            ),
            named=named,
        )

    def _cancel(self, original: _Draft, moment: int, reason: str) -> None:
        """The original sender withdraws a message sent in error (*makulering*)."""
        self._add(
            moment,
            MessageType.CANCELLATION,
            original.sender,
            Cancellation.model_construct(
                _all_fields(Cancellation),
                cancelled_message_id=original.message_id,
                reason=f"{_TEXT_TAG} {reason}",
            ),
            cancels=original.message_id,
        )

    # -- emitting ------------------------------------------------------------------------

    def events(self) -> list[tuple[int, SimEvent]]:
        """Publish and receipt events of the episode with their instants, in no set order."""
        self._draw()
        drafts = self.drafts
        # The admission notice first; then causal order by when things happened.
        drafts.sort(key=lambda d: (d.rank != 0, d.occurred, d.rank))
        events: list[tuple[int, SimEvent]] = []
        holders: dict[UUID, tuple[Unit, ...]] = {}
        sent = drafts[0].occurred - _STEP_S
        for draft in drafts:
            sent = max(draft.occurred, sent + _STEP_S)
            sent_at = _utc(sent)
            envelope = Envelope.model_construct(
                message_id=draft.message_id,
                message_type=draft.message_type,
                schema_version=SCHEMA_VERSION,
                episode_id=self.episode_id,
                sender=draft.sender,
                patient=self.pin,
                occurred_at=sent_at if draft.occurred == sent else _utc(draft.occurred),
                sent_at=sent_at,
                correlation_id=None,
                causation_id=draft.causation,
                payload=draft.payload,
            )
            events.append(
                (
                    sent,
                    SimEvent(
                        sent_at,
                        "publish",
                        draft.message_id,
                        draft.message_type,
                        self.episode_id,
                        envelope,
                    ),
                )
            )
            recipients = self._recipients(draft, holders)
            holders[draft.message_id] = recipients
            self._receipts(draft, sent, recipients, events)
        return events

    def _recipients(
        self, draft: _Draft, holders: Mapping[UUID, tuple[Unit, ...]]
    ) -> tuple[Unit, ...]:
        """Who gets the message: the audience of its type among the actors, never the sender."""
        if draft.cancels is not None:
            return holders.get(draft.cancels, ())
        if draft.named:
            return tuple(self.actors[u] for u in draft.named if u != draft.sender)
        kinds = self.world.audience[draft.message_type]
        return tuple(
            u for u in self.actors.values() if u.kind in kinds and u.hsa_id != draft.sender
        )

    def _receipts(
        self,
        draft: _Draft,
        sent: int,
        recipients: tuple[Unit, ...],
        into: list[tuple[int, SimEvent]],
    ) -> None:
        rng = self.rng
        receipting = self.world.receipting
        for unit in recipients:
            behaviour = receipting[unit.hsa_id]
            if behaviour.never_probability and rng.random() < behaviour.never_probability:
                continue
            at = self._receipt_time(sent, behaviour)
            into.append(
                (
                    at,
                    SimEvent(
                        _utc(at),
                        "receipt",
                        draft.message_id,
                        draft.message_type,
                        self.episode_id,
                        None,
                        unit.hsa_id,
                        unit.kind,
                    ),
                )
            )

    def _receipt_time(self, arrived: int, behaviour: _Receipting) -> int:
        """When a unit receipts a message that reached it at ``arrived``; blackouts push it on."""
        local = self.local
        rng = self.rng
        day = local.day(arrived)
        delay = behaviour.weekend_holiday if local.weekend_or_holiday(day) else behaviour.weekday
        at = arrived + round(delay.draw_s(rng))
        for _ in behaviour.blackouts:
            day = local.day(at)
            window = next((b for b in behaviour.blackouts if b[0] <= day <= b[1]), None)
            if window is None:
                break
            reopen_day = window[1] + 1
            delay = (
                behaviour.weekend_holiday
                if local.weekend_or_holiday(reopen_day)
                else behaviour.weekday
            )
            at = local.wall(reopen_day, 0) + round(delay.draw_s(rng))
        return at


def _all_fields(cls: type[PayloadModel]) -> set[str]:
    """Every field name of a payload class, as a fresh set for ``model_construct``.

    ``kind`` is left to its default (the class's own tag) but counts as set, as it does after
    validation of the wire form; the set is new each time because the model keeps it.
    """
    return set(cls.model_fields)


def _planning(action: PlanningAction, *, needs_more_information: bool) -> PlanningDocument:
    return PlanningDocument.model_construct(
        _all_fields(PlanningDocument),
        action=action,
        needs_more_information=needs_more_information,
        summary=_PLANNING_SUMMARY,
    )
