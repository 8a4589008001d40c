"""Payment liability, "bryt tid kl. 12" (DOMAIN.md "Default policies" §3, "Precise readings").

Expected values are written by hand from the spec as Stockholm wall times and compared as
``isoformat()`` strings. The worked examples of docs/liability.md are `DOC_EXAMPLES` here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from hub.errors import ConfigurationError
from hub.liability import (
    NORRBOTTEN_LIABILITY,
    ClockAssessment,
    ClockEndReason,
    ConditionCheck,
    ConditionReason,
    EpisodeEvent,
    EpisodeFacts,
    FactKind,
    LiabilityAssessment,
    LiabilityConditions,
    LiabilityConfig,
    LiabilityPolicy,
    assess,
    day_one,
    nth_day,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "liability.md"
LATER = datetime(2028, 1, 1, tzinfo=UTC)  # "now" for episodes that are over

READY = FactKind.READY_FOR_DISCHARGE
RETRACTED = FactKind.READY_FOR_DISCHARGE_RETRACTED
DISCHARGED = FactKind.DISCHARGED
SIP = FactKind.SIP_INVITATION_SENT
SIP_DECLINED = FactKind.SIP_DECLINED
CARE_CONTACT = FactKind.CARE_CONTACT_APPOINTED
NOTICE = FactKind.ADMISSION_NOTICE_SENT

ALL_MET = ("sip_invited", "care_contact_appointed", "admission_notice_sent")


def at(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


def iso_local(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(STOCKHOLM).isoformat()


def ev(kind: FactKind, text: str) -> EpisodeEvent:
    return EpisodeEvent(kind, at(text))


def conditions_met(ready: str) -> list[EpisodeEvent]:
    """Admission notice, care contact and SIP invitation, two hours after the assessment."""
    when = at(ready) + timedelta(hours=2)
    return [EpisodeEvent(kind, when) for kind in (NOTICE, CARE_CONTACT, SIP)]


def episode(*events: EpisodeEvent) -> EpisodeFacts:
    return EpisodeFacts(events=events)


def summary(clock: ClockAssessment) -> dict[str, object]:
    """The clock as local strings and plain values, for whole-value comparison."""
    return {
        "day1": clock.day1_local_date.isoformat(),
        "warn_at": iso_local(clock.warn_at_utc),
        "liability_start": iso_local(clock.liability_start_utc),
        "ended_at": iso_local(clock.ended_at_utc),
        "end_reason": None if clock.end_reason is None else clock.end_reason.value,
        "conditions": (
            clock.conditions.sip.reason.value,
            clock.conditions.care_contact.reason.value,
            clock.conditions.admission_notice.reason.value,
        ),
        "started": clock.liability_started,
        "bed_days": clock.liability_bed_days,
    }


def clock_summary(
    day1: str,
    warn_at: str,
    liability_start: str,
    ended_at: str | None,
    end_reason: str | None,
    *,
    started: bool,
    bed_days: int,
    conditions: tuple[str, str, str] = ALL_MET,
) -> dict[str, object]:
    return {
        "day1": day1,
        "warn_at": warn_at,
        "liability_start": liability_start,
        "ended_at": ended_at,
        "end_reason": end_reason,
        "conditions": conditions,
        "started": started,
        "bed_days": bed_days,
    }


# --------------------------------------------------------------------------------------------
# The worked examples of docs/liability.md
# --------------------------------------------------------------------------------------------

DOC_EXAMPLES: list[tuple[str, list[EpisodeEvent], datetime, list[dict[str, object]], int]] = [
    (
        "example-1",  # 11:59, before the cut-off
        [
            ev(READY, "2026-03-02T11:59:00+01:00"),
            *conditions_met("2026-03-02T11:59:00+01:00"),
            ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-02",
                "2026-03-04T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                "2026-03-09T10:00:00+01:00",
                "discharged",
                started=True,
                bed_days=4,
            )
        ],
        4,
    ),
    (
        "example-2",  # 12:00:00, at the cut-off
        [
            ev(READY, "2026-03-02T12:00:00+01:00"),
            *conditions_met("2026-03-02T12:00:00+01:00"),
            ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-03",
                "2026-03-05T00:00:00+01:00",
                "2026-03-06T00:00:00+01:00",
                "2026-03-09T10:00:00+01:00",
                "discharged",
                started=True,
                bed_days=3,
            )
        ],
        3,
    ),
    (
        "example-3",  # discharged on day 4
        [
            ev(READY, "2026-03-02T08:00:00+01:00"),
            *conditions_met("2026-03-02T08:00:00+01:00"),
            ev(DISCHARGED, "2026-03-05T16:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-02",
                "2026-03-04T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                "2026-03-05T16:00:00+01:00",
                "discharged",
                started=True,
                bed_days=0,
            )
        ],
        0,
    ),
    (
        "example-4",  # discharged exactly at 00:00 on day 4
        [
            ev(READY, "2026-03-02T08:00:00+01:00"),
            *conditions_met("2026-03-02T08:00:00+01:00"),
            ev(DISCHARGED, "2026-03-05T00:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-02",
                "2026-03-04T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                "discharged",
                started=False,
                bed_days=0,
            )
        ],
        0,
    ),
    (
        "example-5",  # the weekend counts
        [
            ev(READY, "2026-03-06T14:00:00+01:00"),
            *conditions_met("2026-03-06T14:00:00+01:00"),
            ev(DISCHARGED, "2026-03-12T09:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-07",
                "2026-03-09T00:00:00+01:00",
                "2026-03-10T00:00:00+01:00",
                "2026-03-12T09:00:00+01:00",
                "discharged",
                started=True,
                bed_days=2,
            )
        ],
        2,
    ),
    (
        "example-6",  # still in hospital
        [ev(READY, "2026-03-02T11:00:00+01:00"), *conditions_met("2026-03-02T11:00:00+01:00")],
        at("2026-03-07T08:00:00+01:00"),
        [
            clock_summary(
                "2026-03-02",
                "2026-03-04T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                None,
                None,
                started=True,
                bed_days=2,
            )
        ],
        2,
    ),
    (
        "example-7",  # spring DST inside the liability period
        [
            ev(READY, "2027-03-24T10:00:00+01:00"),
            *conditions_met("2027-03-24T10:00:00+01:00"),
            ev(DISCHARGED, "2027-03-29T10:00:00+02:00"),
        ],
        LATER,
        [
            clock_summary(
                "2027-03-24",
                "2027-03-26T00:00:00+01:00",
                "2027-03-27T00:00:00+01:00",
                "2027-03-29T10:00:00+02:00",
                "discharged",
                started=True,
                bed_days=2,
            )
        ],
        2,
    ),
    (
        "example-8",  # autumn DST on day 4
        [
            ev(READY, "2027-10-28T09:00:00+02:00"),
            *conditions_met("2027-10-28T09:00:00+02:00"),
            ev(DISCHARGED, "2027-11-02T08:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2027-10-28",
                "2027-10-30T00:00:00+02:00",
                "2027-10-31T00:00:00+02:00",
                "2027-11-02T08:00:00+01:00",
                "discharged",
                started=True,
                bed_days=2,
            )
        ],
        2,
    ),
    (
        "example-9",  # retraction after liability started
        [
            ev(READY, "2026-03-02T09:00:00+01:00"),
            *conditions_met("2026-03-02T09:00:00+01:00"),
            ev(RETRACTED, "2026-03-07T15:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-02",
                "2026-03-04T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                "2026-03-07T15:00:00+01:00",
                "retracted",
                started=True,
                bed_days=2,
            )
        ],
        2,
    ),
    (
        "example-10",  # two clocks add up
        [
            ev(READY, "2026-03-02T09:00:00+01:00"),
            *conditions_met("2026-03-02T09:00:00+01:00"),
            ev(RETRACTED, "2026-03-07T15:00:00+01:00"),
            ev(READY, "2026-03-09T13:00:00+01:00"),
            ev(DISCHARGED, "2026-03-16T11:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-02",
                "2026-03-04T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                "2026-03-07T15:00:00+01:00",
                "retracted",
                started=True,
                bed_days=2,
            ),
            clock_summary(
                "2026-03-10",
                "2026-03-12T00:00:00+01:00",
                "2026-03-13T00:00:00+01:00",
                "2026-03-16T11:00:00+01:00",
                "discharged",
                started=True,
                bed_days=3,
            ),
        ],
        5,
    ),
    (
        "example-11",  # retraction before liability, then a new clock
        [
            ev(READY, "2026-03-02T09:00:00+01:00"),
            *conditions_met("2026-03-02T09:00:00+01:00"),
            ev(RETRACTED, "2026-03-04T10:00:00+01:00"),
            ev(READY, "2026-03-04T15:00:00+01:00"),
            ev(DISCHARGED, "2026-03-10T10:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-02",
                "2026-03-04T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                "2026-03-04T10:00:00+01:00",
                "retracted",
                started=False,
                bed_days=0,
            ),
            clock_summary(
                "2026-03-05",
                "2026-03-07T00:00:00+01:00",
                "2026-03-08T00:00:00+01:00",
                "2026-03-10T10:00:00+01:00",
                "discharged",
                started=True,
                bed_days=2,
            ),
        ],
        2,
    ),
    (
        "example-12",  # SIP 74 hours after, but before 00:00 on day 4
        [
            ev(READY, "2026-03-02T20:00:00+01:00"),
            ev(NOTICE, "2026-03-02T21:00:00+01:00"),
            ev(CARE_CONTACT, "2026-03-03T09:00:00+01:00"),
            ev(SIP, "2026-03-05T22:00:00+01:00"),
            ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-03",
                "2026-03-05T00:00:00+01:00",
                "2026-03-06T00:00:00+01:00",
                "2026-03-09T10:00:00+01:00",
                "discharged",
                started=True,
                bed_days=3,
            )
        ],
        3,
    ),
    (
        "example-12-late",  # SIP at 00:00:00 on day 4
        [
            ev(READY, "2026-03-02T20:00:00+01:00"),
            ev(NOTICE, "2026-03-02T21:00:00+01:00"),
            ev(CARE_CONTACT, "2026-03-03T09:00:00+01:00"),
            ev(SIP, "2026-03-06T00:00:00+01:00"),
            ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-03-03",
                "2026-03-05T00:00:00+01:00",
                "2026-03-06T00:00:00+01:00",
                "2026-03-09T10:00:00+01:00",
                "discharged",
                started=False,
                bed_days=0,
                conditions=("sip_late", "care_contact_appointed", "admission_notice_sent"),
            )
        ],
        0,
    ),
    (
        "example-13",  # declined SIP is fine, missing care contact is not
        [
            ev(READY, "2026-03-02T09:00:00+01:00"),
            ev(NOTICE, "2026-03-02T11:00:00+01:00"),
            ev(SIP_DECLINED, "2026-03-03T10:00:00+01:00"),
        ],
        at("2026-03-09T10:00:00+01:00"),
        [
            clock_summary(
                "2026-03-02",
                "2026-03-04T00:00:00+01:00",
                "2026-03-05T00:00:00+01:00",
                None,
                None,
                started=False,
                bed_days=0,
                conditions=("sip_declined", "care_contact_missing", "admission_notice_sent"),
            )
        ],
        0,
    ),
    (
        "example-14",  # Christmas and the new year
        [
            ev(READY, "2026-12-23T12:30:00+01:00"),
            *conditions_met("2026-12-23T12:30:00+01:00"),
            ev(DISCHARGED, "2027-01-02T11:00:00+01:00"),
        ],
        LATER,
        [
            clock_summary(
                "2026-12-24",
                "2026-12-26T00:00:00+01:00",
                "2026-12-27T00:00:00+01:00",
                "2027-01-02T11:00:00+01:00",
                "discharged",
                started=True,
                bed_days=6,
            )
        ],
        6,
    ),
]


@pytest.mark.parametrize(
    ("events", "now", "clocks", "total"),
    [example[1:] for example in DOC_EXAMPLES],
    ids=[example[0] for example in DOC_EXAMPLES],
)
def test_documented_example(
    events: list[EpisodeEvent], now: datetime, clocks: list[dict[str, object]], total: int
) -> None:
    """Each worked example of docs/liability.md gives exactly the documented result."""
    result = assess(episode(*events), now, NORRBOTTEN_LIABILITY)
    assert [summary(clock) for clock in result.clocks] == clocks
    assert result.total_liability_bed_days == total


def test_every_documented_example_is_tested() -> None:
    """docs/liability.md and DOC_EXAMPLES name the same examples."""
    documented = {
        f"example-{number}"
        for number in re.findall(r"^### Example (\d+):", DOCS.read_text("utf-8"), re.MULTILINE)
    }
    tested = {example[0] for example in DOC_EXAMPLES if example[0].count("-") == 1}
    assert (len(documented) >= 8, documented) == (True, tested)


# --------------------------------------------------------------------------------------------
# Day 1 and the cut-off
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ready", "expected_day1"),
    [
        ("2026-03-02T00:00:00+01:00", "2026-03-02"),
        ("2026-03-02T11:59:59.999999+01:00", "2026-03-02"),
        ("2026-03-02T12:00:00+01:00", "2026-03-03"),
        ("2026-03-02T12:00:00.000001+01:00", "2026-03-03"),
        ("2026-03-02T23:59:59+01:00", "2026-03-03"),
        ("2026-03-02T10:59:00+00:00", "2026-03-02"),  # 11:59 local
        ("2026-03-02T11:00:00+00:00", "2026-03-03"),  # 12:00 local
        ("2027-03-28T09:59:00+00:00", "2027-03-28"),  # 11:59 CEST on the DST day
        ("2027-03-28T10:30:00+00:00", "2027-03-29"),  # 12:30 CEST, though 10:30 UTC
        ("2027-10-31T10:59:00+00:00", "2027-10-31"),  # 11:59 CET on the DST day
        ("2027-10-31T11:00:00+00:00", "2027-11-01"),  # 12:00 CET
        ("2026-12-31T13:00:00+01:00", "2027-01-01"),  # over the new year
    ],
)
def test_day_one(ready: str, expected_day1: str) -> None:
    """Before 12:00 local time the assessment day is day 1; at or after 12:00 the next day."""
    assert day_one(at(ready), NORRBOTTEN_LIABILITY).isoformat() == expected_day1


def test_nth_day_counts_calendar_days() -> None:
    """Day n is n-1 calendar days after day 1, weekends and DST days included."""
    assert [
        nth_day(date(2027, 3, 26), n, NORRBOTTEN_LIABILITY).isoformat() for n in (1, 2, 3, 4)
    ] == ["2027-03-26", "2027-03-27", "2027-03-28", "2027-03-29"]


def test_nth_day_refuses_day_zero() -> None:
    """Day numbers start at 1."""
    with pytest.raises(ValueError, match=r"^n: day numbers start at 1$"):
        nth_day(date(2027, 3, 26), 0, NORRBOTTEN_LIABILITY)


# --------------------------------------------------------------------------------------------
# Boundaries of liability start, bed days and "now"
# --------------------------------------------------------------------------------------------

MONDAY_READY = "2026-03-02T09:00:00+01:00"  # day 4 = Thu 5 March, liability from 00:00


@pytest.mark.parametrize(
    ("discharged", "started", "bed_days"),
    [
        ("2026-03-04T23:59:59+01:00", False, 0),  # day 3
        ("2026-03-05T00:00:00+01:00", False, 0),  # exactly at the start
        ("2026-03-05T00:00:00.000001+01:00", True, 0),  # just after: liable, 0 days
        ("2026-03-05T23:59:59+01:00", True, 0),  # day 4
        ("2026-03-06T00:00:00+01:00", True, 1),  # day 5 midnight: day 4 is complete
        ("2026-03-06T12:00:00+01:00", True, 1),
        ("2026-03-09T10:00:00+01:00", True, 4),
        ("2026-04-02T10:00:00+02:00", True, 28),  # over the spring DST switch of 2026
    ],
)
def test_discharge_boundaries(discharged: str, started: bool, bed_days: int) -> None:
    """Bed days count whole days from day 4 to the day before discharge; 00:00 is not liable."""
    clock = assess(
        episode(ev(READY, MONDAY_READY), *conditions_met(MONDAY_READY), ev(DISCHARGED, discharged)),
        LATER,
        NORRBOTTEN_LIABILITY,
    ).clocks[0]
    assert (clock.liability_started, clock.liability_bed_days) == (started, bed_days)


@pytest.mark.parametrize(
    ("now", "started", "bed_days", "warning_due"),
    [
        ("2026-03-02T09:00:00+01:00", False, 0, False),  # the assessment instant
        ("2026-03-03T23:59:59+01:00", False, 0, False),
        ("2026-03-04T00:00:00+01:00", False, 0, True),  # start of day 3: warn
        ("2026-03-04T23:59:59+01:00", False, 0, True),
        ("2026-03-05T00:00:00+01:00", True, 0, False),  # liability started
        ("2026-03-05T23:59:59+01:00", True, 0, False),
        ("2026-03-06T00:00:00+01:00", True, 1, False),
        ("2026-03-07T08:00:00+01:00", True, 2, False),
        ("2026-03-09T00:00:00+01:00", True, 4, False),
    ],
)
def test_still_in_hospital_counts_up_to_the_day_before_now(
    now: str, started: bool, bed_days: int, warning_due: bool
) -> None:
    """A running clock counts days from day 4 up to the day before now's local date."""
    result = assess(
        episode(ev(READY, MONDAY_READY), *conditions_met(MONDAY_READY)),
        at(now),
        NORRBOTTEN_LIABILITY,
    )
    clock = result.clocks[0]
    assert (
        clock.liability_started,
        clock.liability_bed_days,
        clock.warning_due,
        result.in_liability,
        result.warning_due,
        result.open_clock is clock,
    ) == (started, bed_days, warning_due, started, warning_due, True)


def test_events_after_now_are_ignored() -> None:
    """The assessment as of a past instant ignores what happened later."""
    facts = episode(
        ev(READY, MONDAY_READY),
        *conditions_met(MONDAY_READY),
        ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
    )
    before = assess(facts, at("2026-03-07T08:00:00+01:00"), NORRBOTTEN_LIABILITY)
    after = assess(facts, at("2026-03-09T10:00:00+01:00"), NORRBOTTEN_LIABILITY)
    assert (
        [(c.ended_at_utc, c.liability_bed_days) for c in before.clocks],
        [(iso_local(c.ended_at_utc), c.liability_bed_days) for c in after.clocks],
    ) == ([(None, 2)], [("2026-03-09T10:00:00+01:00", 4)])


def test_retraction_exactly_at_start_is_not_liable() -> None:
    """A retraction at 00:00 on day 4 stops the clock before liability, like a discharge."""
    clock = assess(
        episode(
            ev(READY, MONDAY_READY),
            *conditions_met(MONDAY_READY),
            ev(RETRACTED, "2026-03-05T00:00:00+01:00"),
        ),
        LATER,
        NORRBOTTEN_LIABILITY,
    ).clocks[0]
    assert (clock.end_reason, clock.liability_started, clock.liability_bed_days) == (
        ClockEndReason.RETRACTED,
        False,
        0,
    )


# --------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "now", "reasons", "started"),
    [
        pytest.param(
            [ev(SIP, "2026-03-04T23:59:59+01:00")],
            LATER,
            ("sip_invited", "care_contact_appointed", "admission_notice_sent"),
            True,
            id="sip-last-second-of-day-3",
        ),
        pytest.param(
            [ev(SIP, "2026-03-05T00:00:00+01:00")],
            LATER,
            ("sip_late", "care_contact_appointed", "admission_notice_sent"),
            False,
            id="sip-at-start-of-day-4",
        ),
        pytest.param(
            [ev(SIP, "2026-02-27T10:00:00+01:00")],
            LATER,
            ("sip_invited", "care_contact_appointed", "admission_notice_sent"),
            True,
            id="sip-before-the-assessment",
        ),
        pytest.param(
            [ev(SIP_DECLINED, "2026-03-04T12:00:00+01:00")],
            LATER,
            ("sip_declined", "care_contact_appointed", "admission_notice_sent"),
            True,
            id="sip-declined",
        ),
        pytest.param(
            [ev(SIP, "2026-03-06T10:00:00+01:00"), ev(SIP_DECLINED, "2026-03-03T10:00:00+01:00")],
            LATER,
            ("sip_declined", "care_contact_appointed", "admission_notice_sent"),
            True,
            id="declined-in-time-invited-late",
        ),
        pytest.param(
            [],
            LATER,
            ("sip_missing", "care_contact_appointed", "admission_notice_sent"),
            False,
            id="sip-missing",
        ),
        pytest.param(
            [],
            at("2026-03-04T23:00:00+01:00"),
            ("sip_pending", "care_contact_appointed", "admission_notice_sent"),
            False,
            id="sip-pending-on-day-3",
        ),
    ],
)
def test_sip_condition(
    extra: list[EpisodeEvent], now: datetime, reasons: tuple[str, ...], started: bool
) -> None:
    """SIP is met by an invitation or a decline before 00:00 at the start of day 4."""
    facts = episode(
        ev(READY, MONDAY_READY),
        ev(NOTICE, "2026-03-02T10:00:00+01:00"),
        ev(CARE_CONTACT, "2026-03-02T10:00:00+01:00"),
        ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
        *extra,
    )
    clock = assess(facts, now, NORRBOTTEN_LIABILITY).clocks[0]
    assert (summary(clock)["conditions"], clock.liability_started) == (reasons, started)


@pytest.mark.parametrize(
    ("care_contact", "now", "reason", "started"),
    [
        ("2026-03-04T23:59:59+01:00", LATER, "care_contact_appointed", True),
        ("2026-03-05T00:00:00+01:00", LATER, "care_contact_late", False),
        ("2026-03-06T10:00:00+01:00", LATER, "care_contact_late", False),
        (None, LATER, "care_contact_missing", False),
        (None, at("2026-03-03T10:00:00+01:00"), "care_contact_pending", False),
    ],
)
def test_care_contact_condition(
    care_contact: str | None, now: datetime, reason: str, started: bool
) -> None:
    """A named care contact must be appointed before liability would start."""
    events = [
        ev(READY, MONDAY_READY),
        ev(NOTICE, "2026-03-02T10:00:00+01:00"),
        ev(SIP, "2026-03-02T10:00:00+01:00"),
        ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
    ]
    if care_contact is not None:
        events.append(ev(CARE_CONTACT, care_contact))
    clock = assess(episode(*events), now, NORRBOTTEN_LIABILITY).clocks[0]
    assert (clock.conditions.care_contact, clock.liability_started) == (
        ConditionCheck(met=reason == "care_contact_appointed", reason=ConditionReason(reason)),
        started,
    )


@pytest.mark.parametrize(
    ("notice", "flag", "reason", "started"),
    [
        ("2026-02-28T10:00:00+01:00", False, "admission_notice_sent", True),
        ("2026-03-05T08:00:00+01:00", False, "admission_notice_late", False),
        (None, False, "admission_notice_missing", False),
        (None, True, "admission_notice_sent", True),
        ("2026-03-05T08:00:00+01:00", True, "admission_notice_sent", True),
    ],
)
def test_admission_notice_condition(
    notice: str | None, flag: bool, reason: str, started: bool
) -> None:
    """The admission notice must have been sent: by an event before the start, or the flag."""
    events = [
        ev(READY, MONDAY_READY),
        ev(CARE_CONTACT, "2026-03-02T10:00:00+01:00"),
        ev(SIP, "2026-03-02T10:00:00+01:00"),
        ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
    ]
    if notice is not None:
        events.append(ev(NOTICE, notice))
    facts = EpisodeFacts(events=tuple(events), admission_notice_sent=flag)
    clock = assess(facts, LATER, NORRBOTTEN_LIABILITY).clocks[0]
    assert (clock.conditions.admission_notice.reason.value, clock.liability_started) == (
        reason,
        started,
    )


def test_whole_assessment_value() -> None:
    """The full assessment of a simple episode, compared as one value."""
    facts = episode(
        ev(READY, "2026-03-02T09:00:00+01:00"),
        ev(NOTICE, "2026-03-01T10:00:00+01:00"),
        ev(CARE_CONTACT, "2026-03-02T13:00:00+01:00"),
        ev(SIP, "2026-03-03T10:00:00+01:00"),
        ev(DISCHARGED, "2026-03-07T15:00:00+01:00"),
    )
    assert assess(facts, LATER, NORRBOTTEN_LIABILITY) == LiabilityAssessment(
        clocks=(
            ClockAssessment(
                ready_at_utc=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
                day1_local_date=date(2026, 3, 2),
                warn_at_utc=datetime(2026, 3, 3, 23, 0, tzinfo=UTC),
                sip_deadline_utc=datetime(2026, 3, 4, 23, 0, tzinfo=UTC),
                liability_start_utc=datetime(2026, 3, 4, 23, 0, tzinfo=UTC),
                ended_at_utc=datetime(2026, 3, 7, 14, 0, tzinfo=UTC),
                end_reason=ClockEndReason.DISCHARGED,
                conditions=LiabilityConditions(
                    sip=ConditionCheck(met=True, reason=ConditionReason.SIP_INVITED),
                    care_contact=ConditionCheck(
                        met=True, reason=ConditionReason.CARE_CONTACT_APPOINTED
                    ),
                    admission_notice=ConditionCheck(
                        met=True, reason=ConditionReason.ADMISSION_NOTICE_SENT
                    ),
                ),
                liability_started=True,
                liability_bed_days=2,
                warning_due=False,
            ),
        ),
        total_liability_bed_days=2,
    )


def test_results_are_in_utc() -> None:
    """Every instant in the assessment is UTC, whatever offset the input used."""
    facts = episode(ev(READY, MONDAY_READY), *conditions_met(MONDAY_READY))
    clock = assess(facts, at("2026-03-07T08:00:00+01:00"), NORRBOTTEN_LIABILITY).clocks[0]
    assert {
        instant.tzinfo
        for instant in (
            clock.ready_at_utc,
            clock.warn_at_utc,
            clock.sip_deadline_utc,
            clock.liability_start_utc,
        )
    } == {UTC}


# --------------------------------------------------------------------------------------------
# Warning
# --------------------------------------------------------------------------------------------


def test_no_warning_once_a_condition_has_failed_for_good() -> None:
    """With a SIP deadline at day 3 already missed, the clock is not heading into liability."""
    policy = LiabilityPolicy(sip_deadline_day=3)
    facts = episode(
        ev(READY, MONDAY_READY),
        ev(NOTICE, "2026-03-02T10:00:00+01:00"),
        ev(CARE_CONTACT, "2026-03-02T10:00:00+01:00"),
    )
    clock = assess(facts, at("2026-03-04T08:00:00+01:00"), policy).clocks[0]
    assert (clock.conditions.sip.reason, clock.warning_due) == (ConditionReason.SIP_MISSING, False)


def test_warning_while_conditions_are_pending() -> None:
    """On day 3, a clock still waiting for its care contact is warned about."""
    facts = episode(ev(READY, MONDAY_READY), ev(NOTICE, "2026-03-02T10:00:00+01:00"))
    result = assess(facts, at("2026-03-04T08:00:00+01:00"), NORRBOTTEN_LIABILITY)
    assert (
        summary(result.clocks[0])["conditions"],
        result.warning_due,
    ) == (("sip_pending", "care_contact_pending", "admission_notice_sent"), True)


def test_no_warning_for_an_ended_clock() -> None:
    """A patient discharged on day 3 is not warned about."""
    facts = episode(
        ev(READY, MONDAY_READY),
        *conditions_met(MONDAY_READY),
        ev(DISCHARGED, "2026-03-04T07:00:00+01:00"),
    )
    result = assess(facts, at("2026-03-04T08:00:00+01:00"), NORRBOTTEN_LIABILITY)
    assert (result.clocks[0].warning_due, result.warning_due, result.open_clock) == (
        False,
        False,
        None,
    )


def test_warning_time_is_configurable() -> None:
    """warn_day and warn_local_time move the warning instant (here: day 2 at 08:00)."""
    policy = LiabilityPolicy(warn_day=2, warn_local_time=time(8, 0))
    facts = episode(ev(READY, MONDAY_READY), *conditions_met(MONDAY_READY))
    clock = assess(facts, at("2026-03-03T08:00:00+01:00"), policy).clocks[0]
    assert (iso_local(clock.warn_at_utc), clock.warning_due) == ("2026-03-03T08:00:00+01:00", True)


# --------------------------------------------------------------------------------------------
# Clock structure
# --------------------------------------------------------------------------------------------


def test_repeated_assessment_does_not_restart_the_clock() -> None:
    """A second utskrivningsklar while a clock runs changes nothing."""
    facts = episode(
        ev(READY, MONDAY_READY),
        ev(READY, "2026-03-04T15:00:00+01:00"),
        *conditions_met(MONDAY_READY),
        ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
    )
    result = assess(facts, LATER, NORRBOTTEN_LIABILITY)
    assert [(c.day1_local_date.isoformat(), c.liability_bed_days) for c in result.clocks] == [
        ("2026-03-02", 4)
    ]


def test_retraction_without_clock_and_events_after_discharge_are_ignored() -> None:
    """A stray retraction, and anything after the discharge, start or end no clock."""
    facts = episode(
        ev(RETRACTED, "2026-03-01T10:00:00+01:00"),
        ev(READY, MONDAY_READY),
        *conditions_met(MONDAY_READY),
        ev(DISCHARGED, "2026-03-09T10:00:00+01:00"),
        ev(READY, "2026-03-10T10:00:00+01:00"),
        ev(DISCHARGED, "2026-03-20T10:00:00+01:00"),
    )
    result = assess(facts, LATER, NORRBOTTEN_LIABILITY)
    assert [(iso_local(c.ended_at_utc), c.liability_bed_days) for c in result.clocks] == [
        ("2026-03-09T10:00:00+01:00", 4)
    ]


def test_event_order_in_input_does_not_matter() -> None:
    """Facts may be listed in any order; they are read in time order."""
    events = [
        ev(READY, "2026-03-02T09:00:00+01:00"),
        *conditions_met("2026-03-02T09:00:00+01:00"),
        ev(RETRACTED, "2026-03-07T15:00:00+01:00"),
        ev(READY, "2026-03-09T13:00:00+01:00"),
        ev(DISCHARGED, "2026-03-16T11:00:00+01:00"),
    ]
    forward = assess(episode(*events), LATER, NORRBOTTEN_LIABILITY)
    backward = assess(episode(*reversed(events)), LATER, NORRBOTTEN_LIABILITY)
    assert (backward, backward.total_liability_bed_days) == (forward, 5)


def test_no_assessment_no_clock() -> None:
    """An episode never assessed ready has no clocks and no bed days."""
    result = assess(
        episode(ev(DISCHARGED, "2026-03-09T10:00:00+01:00")), LATER, NORRBOTTEN_LIABILITY
    )
    assert (result.clocks, result.total_liability_bed_days, result.in_liability) == ((), 0, False)


# --------------------------------------------------------------------------------------------
# Other policies
# --------------------------------------------------------------------------------------------


def test_working_day_counting() -> None:
    """With working-day counting, day numbers and bed days skip weekends and holidays."""
    policy = LiabilityPolicy(count_weekends_and_holidays=False)
    facts = episode(
        ev(READY, "2026-03-06T11:00:00+01:00"),  # Friday, before the cut-off
        *conditions_met("2026-03-06T11:00:00+01:00"),
        ev(DISCHARGED, "2026-03-16T10:00:00+01:00"),
    )
    clock = assess(facts, LATER, policy).clocks[0]
    # day 1 Fri 6, day 2 Mon 9, day 3 Tue 10, day 4 Wed 11; bed days Wed 11, Thu 12, Fri 13.
    assert summary(clock) == clock_summary(
        "2026-03-06",
        "2026-03-10T00:00:00+01:00",
        "2026-03-11T00:00:00+01:00",
        "2026-03-16T10:00:00+01:00",
        "discharged",
        started=True,
        bed_days=3,
    )


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        ("2026-03-07T11:00:00+01:00", "2026-03-09"),  # Saturday -> Monday
        ("2026-03-06T12:00:00+01:00", "2026-03-09"),  # Friday after the cut-off -> Monday
        ("2026-12-23T13:00:00+01:00", "2026-12-28"),  # over julafton, juldagen and weekend
    ],
)
def test_working_day_one(ready: str, expected: str) -> None:
    """With working-day counting, day 1 is the first working day on or after the cut-off day."""
    policy = LiabilityPolicy(count_weekends_and_holidays=False)
    assert day_one(at(ready), policy).isoformat() == expected


def test_other_cutoff_and_start_day() -> None:
    """A 13:00 cut-off and liability from day 6 move day 1 and the start accordingly."""
    policy = LiabilityPolicy(
        cutoff_local=time(13, 0), liability_start_day=6, warn_day=5, sip_deadline_day=6
    )
    facts = episode(
        ev(READY, "2026-03-02T12:30:00+01:00"),
        *conditions_met("2026-03-02T12:30:00+01:00"),
        ev(DISCHARGED, "2026-03-10T10:00:00+01:00"),
    )
    clock = assess(facts, LATER, policy).clocks[0]
    assert summary(clock) == clock_summary(
        "2026-03-02",
        "2026-03-06T00:00:00+01:00",
        "2026-03-07T00:00:00+01:00",
        "2026-03-10T10:00:00+01:00",
        "discharged",
        started=True,
        bed_days=3,
    )


def test_default_policy_is_norrbotten() -> None:
    """The shipped default: cut-off 12:00, liability day 4, warn day 3 at 00:00, SIP by day 4."""
    assert LiabilityPolicy() == LiabilityPolicy(
        cutoff_local=time(12, 0),
        liability_start_day=4,
        warn_day=3,
        warn_local_time=time(0, 0),
        sip_deadline_day=4,
        count_weekends_and_holidays=True,
    )
    assert LiabilityPolicy() == NORRBOTTEN_LIABILITY


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"liability_start_day": 1}, "liability_start_day: must be between 2 and 60"),
        ({"warn_day": 4}, "warn_day: must be at least 1 and before liability_start_day"),
        ({"warn_day": 0}, "warn_day: must be at least 1 and before liability_start_day"),
        ({"sip_deadline_day": 5}, "sip_deadline_day: must be between 2 and liability_start_day"),
        ({"sip_deadline_day": 1}, "sip_deadline_day: must be between 2 and liability_start_day"),
        (
            {"cutoff_local": time(12, tzinfo=UTC)},
            "cutoff_local: must be a naive local time (the zone is Europe/Stockholm)",
        ),
    ],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, object], message: str) -> None:
    """Inconsistent liability policies are refused, naming the field."""
    with pytest.raises(ConfigurationError) as caught:
        LiabilityPolicy(**kwargs)  # type: ignore[arg-type]  # kwargs typed loosely by design
    assert str(caught.value) == message


def test_policy_from_mapping() -> None:
    """Loaded configuration (strings, numbers) becomes the policy value."""
    assert LiabilityPolicy.from_mapping(
        {"cutoff_local": "13:00", "liability_start_day": 5, "count_weekends_and_holidays": False}
    ) == LiabilityPolicy(
        cutoff_local=time(13), liability_start_day=5, count_weekends_and_holidays=False
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"liability_start_day": 1},
            "liability.liability_start_day: Input should be greater than or equal to 2",
        ),
        (
            {"warn_day": 4},
            "liability: Value error, warn_day: must be at least 1 and before liability_start_day",
        ),
        ({"cut_off": "12:00"}, "liability.cut_off: Extra inputs are not permitted"),
    ],
)
def test_policy_from_mapping_errors_name_the_field(data: dict[str, object], message: str) -> None:
    """Bad liability configuration raises ConfigurationError with the field path."""
    with pytest.raises(ConfigurationError) as caught:
        LiabilityPolicy.from_mapping(data)
    assert str(caught.value) == message


def test_liability_config_embeds_in_settings() -> None:
    """Inside a larger pydantic model, an inconsistent policy fails at its path."""

    class Settings(BaseModel):
        liability: LiabilityConfig

    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"liability": {"sip_deadline_day": 9}})
    assert caught.value.errors(include_url=False, include_input=False, include_context=False) == [
        {
            "type": "value_error",
            "loc": ("liability",),
            "msg": "Value error, sip_deadline_day: must be between 2 and liability_start_day",
        }
    ]


# --------------------------------------------------------------------------------------------
# Naive datetimes and bad facts
# --------------------------------------------------------------------------------------------

NAIVE = datetime(2026, 3, 2, 9, 0)  # noqa: DTZ001  # the point of these tests


def test_naive_now_is_refused() -> None:
    """assess refuses a naive `now`, naming it."""
    with pytest.raises(ValueError, match=r"^now: must be timezone-aware"):
        assess(EpisodeFacts(), NAIVE, NORRBOTTEN_LIABILITY)


def test_naive_event_time_is_refused() -> None:
    """An event with a naive timestamp is refused, naming the field."""
    with pytest.raises(ValueError, match=r"^at_utc: must be timezone-aware"):
        EpisodeEvent(READY, NAIVE)


def test_naive_ready_for_day_one_is_refused() -> None:
    """day_one refuses a naive instant, naming it."""
    with pytest.raises(ValueError, match=r"^ready_at_utc: must be timezone-aware"):
        day_one(NAIVE, NORRBOTTEN_LIABILITY)


def test_event_kind_from_string_and_utc_normalisation() -> None:
    """Events accept the kind's string value and store the instant in UTC."""
    event = EpisodeEvent("discharged", at("2026-03-02T09:00:00+01:00"))  # type: ignore[arg-type]  # wire value
    assert (event.kind, event.at_utc.isoformat()) == (DISCHARGED, "2026-03-02T08:00:00+00:00")


def test_unknown_event_kind_is_refused() -> None:
    """An event kind outside FactKind is refused."""
    with pytest.raises(ValueError, match="is not a valid FactKind"):
        EpisodeEvent("admitted", at("2026-03-02T09:00:00+01:00"))  # type: ignore[arg-type]  # bad on purpose


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001  # hypothesis bounds are naive
    max_value=datetime(2028, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


def midnights_between(after: datetime, until: datetime) -> int:
    """Stockholm local midnights m with after < m <= until, by walking calendar dates."""
    day = after.astimezone(STOCKHOLM).date() + timedelta(days=1)
    count = 0
    while datetime.combine(day, time(0), tzinfo=STOCKHOLM) <= until:
        count += 1
        day += timedelta(days=1)
    return count


@settings(deadline=None, max_examples=400)
@given(ready=instants)
def test_liability_start_is_a_local_midnight_60_to_84_hours_after(ready: datetime) -> None:
    """Liability starts at a local midnight between 59 and 85 hours after the assessment."""
    facts = episode(EpisodeEvent(READY, ready))
    clock = assess(facts, ready, NORRBOTTEN_LIABILITY).clocks[0]
    start_local = clock.liability_start_utc.astimezone(STOCKHOLM)
    warn_local = clock.warn_at_utc.astimezone(STOCKHOLM)
    assert (start_local.time(), warn_local.time()) == (time(0), time(0))
    assert start_local.date() - warn_local.date() == timedelta(days=1)
    assert timedelta(hours=59) < clock.liability_start_utc - ready <= timedelta(hours=85)
    # Day 1 moves only for assessments at or after the cut-off.
    after_cutoff = ready.astimezone(STOCKHOLM).time() >= time(12)
    assert (clock.day1_local_date - ready.astimezone(STOCKHOLM).date()).days == int(after_cutoff)


@settings(deadline=None, max_examples=400)
@given(ready=instants, stay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)))
def test_bed_days_are_the_midnights_after_the_start(ready: datetime, stay: timedelta) -> None:
    """Bed days equal the local midnights after liability start up to the discharge."""
    discharged = ready + stay
    facts = episode(
        EpisodeEvent(READY, ready),
        *(EpisodeEvent(kind, ready) for kind in (NOTICE, CARE_CONTACT, SIP)),
        EpisodeEvent(DISCHARGED, discharged),
    )
    # "now" after the discharge: instants reach 2028-12-31 and a stay 40 days, past LATER + 400.
    now = max(LATER + timedelta(days=400), discharged + timedelta(days=1))
    clock = assess(facts, now, NORRBOTTEN_LIABILITY).clocks[0]
    start = clock.liability_start_utc
    assert clock.ended_at_utc == discharged
    assert clock.liability_started is (discharged > start)
    expected = midnights_between(start, discharged) if discharged > start else 0
    assert clock.liability_bed_days == expected


@settings(deadline=None, max_examples=300)
@given(
    ready=instants,
    first=st.timedeltas(max_value=timedelta(days=30), min_value=timedelta(0)),
    second=st.timedeltas(max_value=timedelta(days=30), min_value=timedelta(0)),
)
def test_bed_days_never_decrease_with_now(
    ready: datetime, first: timedelta, second: timedelta
) -> None:
    """For a patient still in hospital, a later `now` never has fewer bed days."""
    facts = episode(
        EpisodeEvent(READY, ready),
        *(EpisodeEvent(kind, ready) for kind in (NOTICE, CARE_CONTACT, SIP)),
    )
    early, late = sorted((first, second))
    days_early = assess(facts, ready + early, NORRBOTTEN_LIABILITY).total_liability_bed_days
    days_late = assess(facts, ready + late, NORRBOTTEN_LIABILITY).total_liability_bed_days
    assert 0 <= days_early <= days_late <= max(0, late.days - 2)


@settings(deadline=None, max_examples=200)
@given(
    ready=instants,
    gaps=st.lists(
        st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=12)),
        min_size=2,
        max_size=6,
    ),
)
def test_clocks_add_up(ready: datetime, gaps: list[timedelta]) -> None:
    """Alternating assessments and retractions: the total is the sum of the clocks."""
    events = [EpisodeEvent(kind, ready) for kind in (NOTICE, CARE_CONTACT, SIP)]
    instant = ready
    for index, gap in enumerate(gaps):
        events.append(EpisodeEvent(RETRACTED if index % 2 else READY, instant))
        instant += gap
    events.append(EpisodeEvent(DISCHARGED, instant))
    result = assess(EpisodeFacts(tuple(events)), instant + timedelta(days=1), NORRBOTTEN_LIABILITY)
    assert len(result.clocks) == (len(gaps) + 1) // 2
    assert result.total_liability_bed_days == sum(c.liability_bed_days for c in result.clocks)
    for earlier, later in zip(result.clocks, result.clocks[1:], strict=False):
        assert earlier.ended_at_utc is not None
        assert earlier.ended_at_utc <= later.ready_at_utc
