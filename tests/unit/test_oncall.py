"""On-call rosters: rotations, layers, overrides, DST, coverage gaps and the reference file."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import ConfigurationError
from hub.oncall import (
    Gap,
    Handoff,
    Layer,
    OnCallConfig,
    OnCallPerson,
    Override,
    Roster,
    Weekday,
    Window,
    check_all,
    coverage_gaps,
    gaps_within,
    load_oncall_config,
    local_to_utc,
    on_call_spans,
    parse_oncall_config,
    resolve_contact,
    who_is_on_call,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")
DST_STARTS = date(2027, 3, 28)  # last Sunday of March: 02:00 CET -> 03:00 CEST
DST_ENDS = date(2027, 10, 31)  # last Sunday of October: 03:00 CEST -> 02:00 CET
REFERENCE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "norrbotten" / "oncall.yaml"

ALICE = OnCallPerson(name="Alice Test", email="alice@example.se")
BOB = OnCallPerson(name="Bob Test", email="bob@example.se", phone="+46 70 174 06 90")
CAROL = OnCallPerson(name="Carol Test", email="carol@example.se")
DAVE = OnCallPerson(name="Dave Test", email="dave@example.se")
ERIN = OnCallPerson(name="Erin Test", email="erin@example.se")
FALLBACK = OnCallPerson(name="Regional beredskap", email="regional@example.se")

ALL_DAYS = tuple(Weekday)
EVENINGS_AND_WEEKENDS = (
    Window(days=ALL_DAYS, start=time(16), end=time(8)),
    Window(days=(Weekday.SATURDAY, Weekday.SUNDAY), start=time(0), end=time(0)),
)


def local(text: str) -> datetime:
    """A Stockholm wall time (unambiguous ones only) as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM).astimezone(UTC)


def naive(text: str) -> datetime:
    """A local wall time as roster files write it: naive, Europe/Stockholm implied."""
    return datetime.fromisoformat(text)


def wall(instant: datetime) -> str:
    """The Stockholm wall time of an instant, with its offset, for string comparison."""
    return instant.astimezone(STOCKHOLM).isoformat()


def weekly(
    people: tuple[OnCallPerson, ...],
    *,
    start: date = date(2027, 1, 4),
    weekday: Weekday = Weekday.MONDAY,
    at: time = time(8),
    windows: tuple[Window, ...] | None = None,
    rotation_end: datetime | None = None,
    name: str = "beredskap",
) -> Layer:
    return Layer(
        name=name,
        people=people,
        handoff=Handoff(weekday=weekday, time=at),
        rotation_start=start,
        rotation_end=rotation_end,
        windows=windows,
    )


def spans_as_wall(roster: Roster, start: datetime, end: datetime) -> list[tuple[str, str, str]]:
    return [
        (wall(s.start_utc), wall(s.end_utc), s.person.name)
        for s in on_call_spans(roster, start, end)
    ]


@pytest.fixture
def reference() -> OnCallConfig:
    return load_oncall_config(REFERENCE_FILE)


# --- rotations -------------------------------------------------------------------------------

ROTATION = Roster(layers=(weekly((ALICE, BOB, CAROL)),))


@pytest.mark.parametrize(
    ("at_local", "expected"),
    [
        ("2027-01-04T07:59:59", None),  # before the first handoff
        ("2027-01-04T08:00:00", "Alice Test"),
        ("2027-01-10T23:59:59", "Alice Test"),
        ("2027-01-11T07:59:59.999999", "Alice Test"),
        ("2027-01-11T08:00:00", "Bob Test"),
        ("2027-01-18T08:00:00", "Carol Test"),
        ("2027-01-24T23:00:00", "Carol Test"),
        ("2027-01-25T08:00:00", "Alice Test"),  # the rotation wraps
        ("2027-12-27T08:00:00", "Alice Test"),  # week 51 = 17 * 3
    ],
)
def test_weekly_rotation_hands_off_on_monday_at_eight(at_local: str, expected: str | None) -> None:
    """Week k belongs to people[k % n]; the handoff instant belongs to the new week."""
    person = who_is_on_call(ROTATION, local(at_local))

    assert (None if person is None else person.name) == expected


def test_rotation_spans_are_whole_weeks_clipped_to_the_interval() -> None:
    """Spans list each week's person with exact local boundaries, clipped to the query."""
    spans = spans_as_wall(ROTATION, local("2027-01-01T00:00"), local("2027-01-20T12:00"))

    assert spans == [
        ("2027-01-04T08:00:00+01:00", "2027-01-11T08:00:00+01:00", "Alice Test"),
        ("2027-01-11T08:00:00+01:00", "2027-01-18T08:00:00+01:00", "Bob Test"),
        ("2027-01-18T08:00:00+01:00", "2027-01-20T12:00:00+01:00", "Carol Test"),
    ]


def test_a_single_person_rota_is_one_joined_span() -> None:
    """Consecutive weeks of the same person are reported as one span."""
    roster = Roster(layers=(weekly((ALICE,)),))

    spans = spans_as_wall(roster, local("2027-01-05T00:00"), local("2027-02-05T00:00"))

    assert spans == [("2027-01-05T00:00:00+01:00", "2027-02-05T00:00:00+01:00", "Alice Test")]


def test_rotation_end_leaves_nobody_afterwards() -> None:
    """A rota with an end (a replaced rota) covers nobody from that local time on."""
    roster = Roster(layers=(weekly((ALICE, BOB), rotation_end=naive("2027-01-13T16:00")),))

    gaps = coverage_gaps(roster, local("2027-01-10T00:00"), local("2027-01-20T00:00"))

    assert [(wall(g.start_utc), wall(g.end_utc)) for g in gaps] == [
        ("2027-01-13T16:00:00+01:00", "2027-01-20T00:00:00+01:00")
    ]


# --- windows and layers ----------------------------------------------------------------------

LAYERED = Roster(
    layers=(
        weekly((ALICE, BOB), name="dagtid"),
        weekly(
            (CAROL, DAVE),
            start=date(2027, 1, 1),
            weekday=Weekday.FRIDAY,
            at=time(16),
            windows=EVENINGS_AND_WEEKENDS,
            name="kvällar och helger",
        ),
    )
)


@pytest.mark.parametrize(
    ("at_local", "expected"),
    [
        ("2027-01-06T12:00", "Alice Test"),  # Wednesday daytime: base layer
        ("2027-01-06T16:00", "Carol Test"),  # Wednesday evening: evening layer overrides
        ("2027-01-07T07:59", "Carol Test"),
        ("2027-01-07T08:00", "Alice Test"),
        ("2027-01-08T15:59", "Alice Test"),
        ("2027-01-08T16:00", "Dave Test"),  # Friday 16:00: evening-layer handoff
        ("2027-01-09T12:00", "Dave Test"),  # Saturday
        ("2027-01-11T07:59", "Dave Test"),  # Monday early morning, Sunday's evening window
        ("2027-01-11T08:00", "Bob Test"),  # Monday 08:00: base-layer handoff
    ],
)
def test_higher_layer_overrides_lower_within_its_windows(
    at_local: str, expected: str | None
) -> None:
    """A later layer wins wherever its windows put someone; elsewhere the base layer shows."""
    person = who_is_on_call(LAYERED, local(at_local))

    assert (None if person is None else person.name) == expected


def test_windows_alone_leave_weekday_daytime_uncovered() -> None:
    """An evenings-and-weekends layer alone has a gap every weekday 08:00-16:00."""
    roster = Roster(layers=(LAYERED.layers[1],))

    gaps = coverage_gaps(roster, local("2027-01-11T00:00"), local("2027-01-13T00:00"))

    assert [(wall(g.start_utc), wall(g.end_utc), g.holidays) for g in gaps] == [
        ("2027-01-11T08:00:00+01:00", "2027-01-11T16:00:00+01:00", ()),
        ("2027-01-12T08:00:00+01:00", "2027-01-12T16:00:00+01:00", ()),
    ]


# --- overrides -------------------------------------------------------------------------------


def test_override_beats_every_layer() -> None:
    """A holiday shift replaces both layers for its interval, and only for it."""
    roster = LAYERED.model_copy(
        update={
            "overrides": (
                Override(
                    person=ERIN,
                    start=naive("2027-12-24T08:00"),
                    end=naive("2027-12-25T08:00"),
                    reason="Julafton",
                ),
            )
        }
    )

    spans = spans_as_wall(roster, local("2027-12-24T00:00"), local("2027-12-25T12:00"))

    assert spans == [
        ("2027-12-24T00:00:00+01:00", "2027-12-24T08:00:00+01:00", "Carol Test"),
        ("2027-12-24T08:00:00+01:00", "2027-12-25T08:00:00+01:00", "Erin Test"),
        ("2027-12-25T08:00:00+01:00", "2027-12-25T12:00:00+01:00", "Dave Test"),
    ]


def test_later_override_beats_earlier_one() -> None:
    """Where two overrides overlap, the one listed later wins."""
    roster = Roster(
        layers=(weekly((ALICE,)),),
        overrides=(
            Override(person=BOB, start=naive("2027-02-01T00:00"), end=naive("2027-02-03T00:00")),
            Override(person=CAROL, start=naive("2027-02-02T00:00"), end=naive("2027-02-02T06:00")),
        ),
    )

    spans = spans_as_wall(roster, local("2027-02-01T00:00"), local("2027-02-04T00:00"))

    assert spans == [
        ("2027-02-01T00:00:00+01:00", "2027-02-02T00:00:00+01:00", "Bob Test"),
        ("2027-02-02T00:00:00+01:00", "2027-02-02T06:00:00+01:00", "Carol Test"),
        ("2027-02-02T06:00:00+01:00", "2027-02-03T00:00:00+01:00", "Bob Test"),
        ("2027-02-03T00:00:00+01:00", "2027-02-04T00:00:00+01:00", "Alice Test"),
    ]


def test_override_fills_a_gap() -> None:
    """An override where no layer has anyone closes that gap."""
    roster = Roster(
        layers=(LAYERED.layers[1],),
        overrides=(
            Override(person=ERIN, start=naive("2027-01-11T08:00"), end=naive("2027-01-11T16:00")),
        ),
    )

    gaps = coverage_gaps(roster, local("2027-01-11T00:00"), local("2027-01-12T00:00"))

    assert gaps == []


# --- daylight saving time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wall_text", "expected"),
    [
        ("2027-01-04T08:00", "2027-01-04T08:00:00+01:00"),
        ("2027-03-28T01:59", "2027-03-28T01:59:00+01:00"),
        ("2027-03-28T02:00", "2027-03-28T03:00:00+02:00"),  # skipped: the instant of the jump
        ("2027-03-28T02:30", "2027-03-28T03:00:00+02:00"),
        ("2027-03-28T03:00", "2027-03-28T03:00:00+02:00"),
        ("2027-10-31T02:30", "2027-10-31T02:30:00+02:00"),  # happens twice: the first
        ("2027-10-31T03:00", "2027-10-31T03:00:00+01:00"),
    ],
)
def test_local_to_utc_rule(wall_text: str, expected: str) -> None:
    """A wall time maps to the first instant the clocks show it or later."""
    assert wall(local_to_utc(datetime.fromisoformat(wall_text))) == expected


def test_handoff_stays_at_eight_local_across_the_spring_change() -> None:
    """The week containing 2027-03-28 runs 08:00 CET to 08:00 CEST: 167 real hours."""
    roster = Roster(layers=(weekly((ALICE, BOB), start=date(2027, 3, 15)),))

    spans = on_call_spans(roster, local("2027-03-22T00:00"), local("2027-03-30T00:00"))

    assert [(wall(s.start_utc), wall(s.end_utc), s.person.name) for s in spans] == [
        ("2027-03-22T00:00:00+01:00", "2027-03-22T08:00:00+01:00", "Alice Test"),
        ("2027-03-22T08:00:00+01:00", "2027-03-29T08:00:00+02:00", "Bob Test"),
        ("2027-03-29T08:00:00+02:00", "2027-03-30T00:00:00+02:00", "Alice Test"),
    ]
    assert spans[1].end_utc - spans[1].start_utc == timedelta(hours=167)


def test_handoff_stays_at_eight_local_across_the_autumn_change() -> None:
    """The week containing 2027-10-31 runs 08:00 CEST to 08:00 CET: 169 real hours."""
    roster = Roster(layers=(weekly((ALICE, BOB), start=date(2027, 10, 18)),))

    spans = on_call_spans(roster, local("2027-10-25T00:00"), local("2027-11-02T00:00"))

    assert [(wall(s.start_utc), wall(s.end_utc), s.person.name) for s in spans] == [
        ("2027-10-25T00:00:00+02:00", "2027-10-25T08:00:00+02:00", "Alice Test"),
        ("2027-10-25T08:00:00+02:00", "2027-11-01T08:00:00+01:00", "Bob Test"),
        ("2027-11-01T08:00:00+01:00", "2027-11-02T00:00:00+01:00", "Alice Test"),
    ]
    assert spans[1].end_utc - spans[1].start_utc == timedelta(hours=169)


NIGHT_HOUR = Roster(
    layers=(
        weekly(
            (ALICE,),
            start=date(2027, 1, 3),
            weekday=Weekday.SUNDAY,
            at=time(0),
            windows=(Window(days=(Weekday.SUNDAY,), start=time(2), end=time(3)),),
        ),
    )
)


def test_window_inside_the_skipped_hour_covers_nothing() -> None:
    """02:00-03:00 on 2027-03-28 never shows on a clock: no span that night, one the week before."""
    assert spans_as_wall(NIGHT_HOUR, local("2027-03-27T00:00"), local("2027-03-29T00:00")) == []
    assert spans_as_wall(NIGHT_HOUR, local("2027-03-20T00:00"), local("2027-03-22T00:00")) == [
        ("2027-03-21T02:00:00+01:00", "2027-03-21T03:00:00+01:00", "Alice Test")
    ]
    assert who_is_on_call(NIGHT_HOUR, datetime(2027, 3, 28, 0, 59, tzinfo=UTC)) is None
    assert who_is_on_call(NIGHT_HOUR, datetime(2027, 3, 28, 1, 0, tzinfo=UTC)) is None


def test_window_over_the_repeated_hour_lasts_two_real_hours() -> None:
    """02:00-03:00 on 2027-10-31 covers both passes of the clock through 02:00-03:00."""
    spans = on_call_spans(NIGHT_HOUR, local("2027-10-30T00:00"), local("2027-11-01T00:00"))

    assert [(wall(s.start_utc), wall(s.end_utc)) for s in spans] == [
        ("2027-10-31T02:00:00+02:00", "2027-10-31T03:00:00+01:00")
    ]
    assert spans[0].end_utc - spans[0].start_utc == timedelta(hours=2)


def test_handoff_in_the_skipped_hour_happens_when_the_clocks_jump() -> None:
    """A Sunday 02:30 handoff happens at 03:00 CEST on 2027-03-28."""
    roster = Roster(
        layers=(
            weekly((ALICE, BOB), start=date(2027, 3, 21), weekday=Weekday.SUNDAY, at=time(2, 30)),
        )
    )

    spans = spans_as_wall(roster, local("2027-03-28T00:00"), local("2027-03-28T06:00"))

    assert spans == [
        ("2027-03-28T00:00:00+01:00", "2027-03-28T03:00:00+02:00", "Alice Test"),
        ("2027-03-28T03:00:00+02:00", "2027-03-28T06:00:00+02:00", "Bob Test"),
    ]


# --- gaps and holidays -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_local", "end_local", "holidays"),
    [
        ("2027-06-25T10:00", "2027-06-25T12:00", ("Midsommarafton",)),
        ("2027-12-31T22:00", "2028-01-01T02:00", ("Nyårsafton", "Nyårsdagen")),
        ("2027-12-23T10:00", "2027-12-23T12:00", ()),  # 23 December is an ordinary weekday
        ("2027-05-07T10:00", "2027-05-07T12:00", ()),  # the Friday after Ascension Day
        ("2027-12-24T23:00", "2027-12-25T00:00", ("Julafton",)),  # end is exclusive
    ],
)
def test_gap_names_the_holidays_it_touches(
    start_local: str, end_local: str, holidays: tuple[str, ...]
) -> None:
    """A gap lists the Swedish public and de-facto holidays on the local dates it touches."""
    start, end = local(start_local), local(end_local)

    assert coverage_gaps(Roster(), start, end) == [Gap(start, end, holidays)]


def test_pajala_has_nobody_on_christmas_eve_night(reference: OnCallConfig) -> None:
    """The reference file's deliberate gap: Pajala, 24 Dec 22:00 to 25 Dec 07:00, 2026."""
    pajala = reference.rosters["jour-2521"]

    gaps = coverage_gaps(pajala, local("2026-12-20T00:00"), local("2027-01-06T00:00"))

    assert gaps == [
        Gap(
            start_utc=datetime(2026, 12, 24, 21, 0, tzinfo=UTC),
            end_utc=datetime(2026, 12, 25, 6, 0, tzinfo=UTC),
            holidays=("Julafton", "Juldagen"),
        )
    ]
    assert (wall(gaps[0].start_utc), wall(gaps[0].end_utc)) == (
        "2026-12-24T22:00:00+01:00",
        "2026-12-25T07:00:00+01:00",
    )


def test_reference_file_has_every_norrbotten_group(reference: OnCallConfig) -> None:
    """One group per Norrbotten municipality (jour-<kommunkod>) plus the health centres'."""
    assert sorted(reference.rosters) == [
        "jour-2505",  # Arvidsjaur
        "jour-2506",  # Arjeplog
        "jour-2510",  # Jokkmokk
        "jour-2513",  # Överkalix
        "jour-2514",  # Kalix
        "jour-2518",  # Övertorneå
        "jour-2521",  # Pajala
        "jour-2523",  # Gällivare
        "jour-2560",  # Älvsbyn
        "jour-2580",  # Luleå
        "jour-2581",  # Piteå
        "jour-2582",  # Boden
        "jour-2583",  # Haparanda
        "jour-2584",  # Kiruna
        "jour-primarvard",
    ]
    assert reference.regional_fallback.email == "regional.beredskap@example.se"


def test_year_check_of_the_reference_file_finds_only_the_deliberate_gap(
    reference: OnCallConfig,
) -> None:
    """365 days from 1 Dec 2026 over all 15 rosters: exactly the Pajala Christmas Eve gap."""
    found = check_all(reference.rosters, datetime(2026, 12, 1, tzinfo=UTC), days=365)

    assert found == {
        "jour-2521": [
            Gap(
                start_utc=datetime(2026, 12, 24, 21, 0, tzinfo=UTC),
                end_utc=datetime(2026, 12, 25, 6, 0, tzinfo=UTC),
                holidays=("Julafton", "Juldagen"),
            )
        ]
    }


def test_year_check_after_christmas_finds_nothing(reference: OnCallConfig) -> None:
    """From 2027 on, every group is covered for a whole year, both DST changes included."""
    assert check_all(reference.rosters, datetime(2027, 1, 1, tzinfo=UTC), days=365) == {}


@pytest.mark.parametrize(
    ("now", "expected_groups"),
    [
        (datetime(2026, 12, 1, tzinfo=UTC), []),  # Christmas Eve is 23 days away
        (datetime(2026, 12, 11, tzinfo=UTC), ["jour-2521"]),
        (datetime(2026, 12, 25, 6, 0, tzinfo=UTC), []),  # the gap has just ended
    ],
)
def test_two_week_ops_check(
    reference: OnCallConfig, now: datetime, expected_groups: list[str]
) -> None:
    """The ops alert looks 14 days ahead and sees the Pajala gap only when it is that close."""
    assert sorted(gaps_within(reference.rosters, now)) == expected_groups


def test_fallback_is_used_in_a_gap(reference: OnCallConfig) -> None:
    """In Pajala's gap the regional fallback is returned, flagged as such."""
    fallback = reference.regional_fallback

    in_gap = resolve_contact(reference.rosters, "jour-2521", local("2026-12-24T23:00"), fallback)
    before = resolve_contact(reference.rosters, "jour-2521", local("2026-12-24T18:00"), fallback)

    assert in_gap == (fallback, True)
    assert before == (
        OnCallPerson(name="Ida Öberg", email="ida.oberg@example.se", phone="+46 70 174 06 38"),
        False,
    )


def test_fallback_is_used_for_an_unknown_or_missing_group() -> None:
    """A group without a roster, or a unit without a group, gets the fallback, not nobody."""
    rosters = {"jour-2580": ROTATION}

    assert resolve_contact(rosters, None, local("2027-01-05T12:00"), FALLBACK) == (FALLBACK, True)

    assert resolve_contact(rosters, "jour-9999", local("2027-01-05T12:00"), FALLBACK) == (
        FALLBACK,
        True,
    )
    assert resolve_contact(rosters, "jour-2580", local("2027-01-05T12:00"), FALLBACK) == (
        ALICE,
        False,
    )


# --- loading ---------------------------------------------------------------------------------

VALID = """
regional_fallback: {name: Regional, email: regional@example.se}
rosters:
  jour-2580:
    layers:
      - name: beredskap
        handoff: {weekday: monday, time: "08:00"}
        rotation_start: 2027-01-04
        people:
          - {name: Alice Test, email: alice@example.se}
        windows:
          - {days: [saturday, sunday], start: "00:00", end: "24:00"}
    overrides:
      - {person: {name: Bob Test, email: bob@example.se},
         start: "2027-12-24T08:00", end: "2027-12-25T08:00", reason: Julafton}
"""


def test_valid_yaml_loads_into_the_models() -> None:
    """A small file loads into exactly the models it describes."""
    config = parse_oncall_config(VALID)

    assert config == OnCallConfig(
        regional_fallback=OnCallPerson(name="Regional", email="regional@example.se"),
        rosters={
            "jour-2580": Roster(
                layers=(
                    weekly(
                        (ALICE,),
                        windows=(
                            Window(
                                days=(Weekday.SATURDAY, Weekday.SUNDAY),
                                start=time(0),
                                end=time(0),
                            ),
                        ),
                    ),
                ),
                overrides=(
                    Override(
                        person=OnCallPerson(name="Bob Test", email="bob@example.se"),
                        start=naive("2027-12-24T08:00"),
                        end=naive("2027-12-25T08:00"),
                        reason="Julafton",
                    ),
                ),
            )
        },
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "rotation_start: 2027-01-04",
            "rotation_start: 2027-01-05",
            "<test>: rosters.jour-2580.layers.0.rotation_start: "
            "must be a monday (the handoff weekday)",
        ),
        (
            'time: "08:00"',
            "time: 16:00",  # YAML 1.1 reads this as 960 (base 60)
            "<test>: rosters.jour-2580.layers.0.handoff.time: must be a quoted 'HH:MM' string "
            "(YAML reads an unquoted 16:00 as a number)",
        ),
        (
            'time: "08:00"',
            'time: "8am"',
            "<test>: rosters.jour-2580.layers.0.handoff.time: "
            "must be a local time 'HH:MM' between 00:00 and 23:59",
        ),
        (
            'end: "2027-12-25T08:00"',
            'end: "2027-12-24T07:00"',
            "<test>: rosters.jour-2580.overrides.0.end: must be after start",
        ),
        (
            'end: "2027-12-25T08:00"',
            'end: "2027-12-25T08:00+01:00"',
            "<test>: rosters.jour-2580.overrides.0.end: Input should not have timezone info",
        ),
        (
            "weekday: monday",
            "weekday: mon",
            "<test>: rosters.jour-2580.layers.0.handoff.weekday: Input should be 'monday', "
            "'tuesday', 'wednesday', 'thursday', 'friday', 'saturday' or 'sunday'",
        ),
        (
            "        rotation_start: 2027-01-04\n",
            "        rotation_start: 2027-01-04\n        colour: blue\n",
            "<test>: rosters.jour-2580.layers.0.colour: Extra inputs are not permitted",
        ),
        (
            "regional_fallback: {name: Regional, email: regional@example.se}\n",
            "",
            "<test>: regional_fallback: Field required",
        ),
        (
            "- {name: Alice Test, email: alice@example.se}",
            "[]",
            "<test>: rosters.jour-2580.layers.0.people: Tuple should have at least 1 item after "
            "validation, not 0",
        ),
    ],
)
def test_invalid_yaml_names_the_path_and_rule(old: str, new: str, message: str) -> None:
    """Each broken field is reported by its path in the file and the rule it breaks."""
    text = VALID.replace(old, new)
    assert text != VALID

    with pytest.raises(ConfigurationError) as caught:
        parse_oncall_config(text, source="<test>")

    assert str(caught.value) == message


def test_invalid_email_is_reported_without_its_value() -> None:
    """The error names the field, never the rejected value itself."""
    text = VALID.replace("alice@example.se", "alice-at-example")

    with pytest.raises(ConfigurationError) as caught:
        parse_oncall_config(text, source="<test>")

    assert str(caught.value).startswith("<test>: rosters.jour-2580.layers.0.people.0.email: ")
    assert "alice-at-example" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rosters: [unclosed", "<test>: not valid YAML at line 1"),
        (
            "- just\n- a list\n",
            "<test>: the top level must be a mapping with regional_fallback and rosters",
        ),
        ("", "<test>: the top level must be a mapping with regional_fallback and rosters"),
    ],
)
def test_unusable_files_are_refused(text: str, message: str) -> None:
    """Text that is not YAML, or not a mapping, is refused with the source named."""
    with pytest.raises(ConfigurationError) as caught:
        parse_oncall_config(text, source="<test>")

    assert str(caught.value) == message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """A roster file that cannot be read is a configuration error naming the path."""
    missing = tmp_path / "oncall.yaml"

    with pytest.raises(ConfigurationError) as caught:
        load_oncall_config(missing)

    assert str(caught.value) == f"{missing}: cannot be read (No such file or directory)"


# --- properties ------------------------------------------------------------------------------

PEOPLE = (ALICE, BOB, CAROL, DAVE)
PROPERTY_WINDOW_START = datetime(2027, 3, 1, tzinfo=UTC)  # spans both DST changes
PROPERTY_WINDOW_DAYS = 260


@st.composite
def layers(draw: st.DrawFn) -> Layer:
    weekday = draw(st.sampled_from(list(Weekday)))
    first_monday = date(2027, 2, 1) + timedelta(weeks=draw(st.integers(0, 30)))
    start = first_monday + timedelta(days=weekday.number)
    windows = draw(
        st.none()
        | st.lists(
            st.builds(
                Window,
                days=st.lists(
                    st.sampled_from(list(Weekday)), min_size=1, max_size=3, unique=True
                ).map(tuple),
                start=st.builds(time, st.integers(0, 23), st.sampled_from([0, 30])),
                end=st.builds(time, st.integers(0, 23), st.sampled_from([0, 30])),
            ),
            min_size=1,
            max_size=3,
        ).map(tuple)
    )
    return weekly(
        tuple(draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3))),
        start=start,
        weekday=weekday,
        at=time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30]))),
        windows=windows,
    )


@st.composite
def rosters(draw: st.DrawFn) -> Roster:
    overrides = []
    for _ in range(draw(st.integers(0, 3))):
        start = naive("2027-03-01T00:00") + timedelta(hours=draw(st.integers(0, 24 * 250)))
        overrides.append(
            Override(
                person=draw(st.sampled_from(PEOPLE)),
                start=start,
                end=start + timedelta(hours=draw(st.integers(1, 72))),
            )
        )
    return Roster(layers=tuple(draw(st.lists(layers(), max_size=3))), overrides=tuple(overrides))


def oracle(roster: Roster, at: datetime) -> OnCallPerson | None:
    """Who is on call, straight from the definitions, one instant at a time (slow, obvious)."""
    for override in reversed(roster.overrides):
        if local_to_utc(override.start) <= at < local_to_utc(override.end):
            return override.person
    for layer in reversed(roster.layers):
        person = oracle_layer(layer, at)
        if person is not None:
            return person
    return None


def oracle_layer(layer: Layer, at: datetime) -> OnCallPerson | None:
    def handoff(week: int) -> datetime:
        day = layer.rotation_start + timedelta(weeks=week)
        return local_to_utc(datetime.combine(day, layer.handoff.time))

    if at < handoff(0):
        return None
    if layer.rotation_end is not None and at >= local_to_utc(layer.rotation_end):
        return None
    week = 0
    while handoff(week + 1) <= at:
        week += 1
    if layer.windows is not None:
        today = at.astimezone(STOCKHOLM).date()
        inside = False
        for day in (today - timedelta(days=1), today):
            for window in layer.windows:
                if day.weekday() not in [d.number for d in window.days]:
                    continue
                end_day = day + timedelta(days=1) if window.end <= window.start else day
                lo = local_to_utc(datetime.combine(day, window.start))
                hi = local_to_utc(datetime.combine(end_day, window.end))
                inside = inside or lo <= at < hi
        if not inside:
            return None
    return layer.people[week % len(layer.people)]


instants = st.integers(0, PROPERTY_WINDOW_DAYS * 24 * 60 - 1).map(
    lambda m: PROPERTY_WINDOW_START + timedelta(minutes=m)
)


@settings(deadline=None)  # many DST-aware conversions per example; slow CI is fine
@given(roster=rosters(), at=instants)
def test_property_who_is_on_call_matches_the_definition(roster: Roster, at: datetime) -> None:
    """The interval arithmetic agrees with a direct reading of the rules at any instant."""
    assert who_is_on_call(roster, at) == oracle(roster, at)


@settings(deadline=None)  # many DST-aware conversions per example; slow CI is fine
@given(
    roster=rosters(),
    start=instants,
    length_h=st.integers(0, 24 * 21),
)
def test_property_spans_and_gaps_tile_the_interval(
    roster: Roster, start: datetime, length_h: int
) -> None:
    """Spans and gaps are disjoint, in order, and together cover the queried interval exactly."""
    end = start + timedelta(hours=length_h)
    pieces = sorted(
        [(s.start_utc, s.end_utc) for s in on_call_spans(roster, start, end)]
        + [(g.start_utc, g.end_utc) for g in coverage_gaps(roster, start, end)]
    )

    cursor = start
    for lo, hi in pieces:
        assert lo == cursor
        assert lo < hi
        cursor = hi
    assert cursor == end
