"""The traffic simulator: determinism, the Norrbotten figures, causal order, senders, receipts,
the Christmas backlog, and the runner's clock modes and per-episode order.

Expected HSA-ids, municipality codes and shares are written out by hand from
deploy/norrbotten/directory.yaml and DOMAIN.md, never read from the simulator's own tables.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from uuid import UUID

import pytest

import producers.simulator as simulator_package
from hub.calendar import STOCKHOLM, is_weekend_or_holiday
from hub.directory import Directory, load_directory
from hub.routing import EpisodeState, RoutingInput, route
from producers.simulator import (
    CHRISTMAS_BACKLOG,
    NORRBOTTEN_DEFAULT,
    NORRBOTTEN_LIFECYCLE,
    Blackout,
    HospitalChoice,
    ReceiptDelay,
    SimBehaviour,
    SimEvent,
    SimStats,
    UnitBehaviour,
    UnitOverride,
    christmas_backlog,
    episode_id_for,
    run,
    simulate,
)
from producers.simulator.__main__ import behaviour_named, dry_run, summary_lines
from topics.catalogue import MessageType, UnitKind
from topics.identifiers import normalise_personal_identity_number
from topics.messages import (
    AdmissionNotice,
    Cancellation,
    Envelope,
    GeneralMessage,
    ReadyForDischarge,
    SipInvitation,
)

REFERENCE = Path(__file__).resolve().parents[2] / "deploy" / "norrbotten" / "directory.yaml"
YEAR_START = datetime(2026, 1, 1, tzinfo=STOCKHOLM)
YEAR_SEED = 2026

PAJALA_AU = "SE2120000000-SYN2521BIS"
KIRUNA_AU = "SE2120000000-SYN2584BIS"
LULEA_AU = "SE2120000000-SYN2580BIS"

# Who sends what (DOMAIN.md, "The discharge process as messages").
WARD_MESSAGES = {
    MessageType.ADMISSION_NOTICE,
    MessageType.PLANNING_DOCUMENT,
    MessageType.DISCHARGE_DATE_CHANGED,
    MessageType.GENERAL_MESSAGE,
    MessageType.READY_FOR_DISCHARGE,
    MessageType.READY_FOR_DISCHARGE_RETRACTED,
    MessageType.DISCHARGE_NOTICE,
    MessageType.CANCELLATION,  # the simulator only cancels ward messages
}
HEALTH_CENTRE_MESSAGES = {
    MessageType.CARE_CONTACT_APPOINTED,
    MessageType.SIP_INVITATION,
    MessageType.SIP_DECLINED,
}

# Population 2025-12-31 (SCB via Regionfakta), data file section 3; row sum 248,943.
POPULATION = {
    "2506": 2578,
    "2505": 6029,
    "2582": 28652,
    "2523": 17110,
    "2583": 9044,
    "2510": 4676,
    "2514": 15272,
    "2584": 22379,
    "2580": 80321,
    "2521": 5686,
    "2581": 42203,
    "2560": 7846,
    "2513": 3151,
    "2518": 3996,
}


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def directory() -> Directory:
    """The Norrbotten reference directory."""
    return load_directory(REFERENCE)


@pytest.fixture(scope="module")
def year(directory: Directory) -> list[SimEvent]:
    """A whole simulated year (2026, Stockholm), default behaviour: ~9,000 episodes."""
    return list(simulate(directory, YEAR_START, 365, seed=YEAR_SEED))


@pytest.fixture(scope="module")
def year_stats(year: list[SimEvent]) -> SimStats:
    """The figures of the simulated year."""
    return dry_run(year)


def publishes(events: list[SimEvent]) -> Iterator[Envelope]:
    for event in events:
        if event.kind == "publish":
            assert event.envelope is not None
            yield event.envelope


def by_episode(events: list[SimEvent]) -> dict[str, list[Envelope]]:
    episodes: dict[str, list[Envelope]] = defaultdict(list)
    for envelope in publishes(events):
        assert envelope.episode_id is not None
        episodes[envelope.episode_id].append(envelope)
    return episodes


def notice_of(messages: list[Envelope]) -> AdmissionNotice:
    payload = messages[0].payload
    assert isinstance(payload, AdmissionNotice)
    return payload


def local_date(instant: datetime) -> date:
    return instant.astimezone(STOCKHOLM).date()


def fingerprint(events: list[SimEvent]) -> list[tuple[object, ...]]:
    return [(e.kind, e.at, e.message_id, e.unit, e.episode_id) for e in events]


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_gives_the_identical_stream(directory: Directory) -> None:
    """Two runs with one seed give the same events: ids, instants, units and envelopes."""
    start = datetime(2026, 3, 2, tzinfo=UTC)
    first = list(simulate(directory, start, 14, seed=7))
    second = list(simulate(directory, start, 14, seed=7))
    assert len(first) > 1000
    assert fingerprint(first) == fingerprint(second)
    assert [e.envelope for e in first] == [e.envelope for e in second]


def test_different_seeds_give_different_streams(directory: Directory) -> None:
    """Another seed gives other message ids and other instants."""
    start = datetime(2026, 3, 2, tzinfo=UTC)
    first = list(simulate(directory, start, 14, seed=7))
    second = list(simulate(directory, start, 14, seed=8))
    assert {e.message_id for e in first}.isdisjoint({e.message_id for e in second})
    assert [e.at for e in first[:50]] != [e.at for e in second[:50]]


def test_events_come_in_time_order_and_in_whole_utc_seconds(year: list[SimEvent]) -> None:
    """The stream never goes back in time; every instant is aware UTC with no fraction."""
    instants = [e.at for e in year]
    assert instants == sorted(instants)
    assert all(t.tzinfo is UTC and t.microsecond == 0 for t in instants)


def test_episode_ids_are_numbered_per_seed(year: list[SimEvent], year_stats: SimStats) -> None:
    """Episodes are SIM-<seed>-1 ... SIM-<seed>-N in order of admission."""
    notices = [e for e in publishes(year) if e.message_type is MessageType.ADMISSION_NOTICE]
    admitted_order = sorted(notices, key=lambda e: notice_of([e]).admitted_at)
    ids = [str(e.episode_id) for e in admitted_order]
    assert ids[:3] == ["SIM-2026-1", "SIM-2026-2", "SIM-2026-3"]
    assert sorted(ids) == sorted(f"SIM-2026-{n}" for n in range(1, year_stats.episodes + 1))


@pytest.mark.parametrize(
    ("seed", "n", "expected"),
    [
        (42, 7, "SIM-42-7"),
        (0, 1, "SIM-0-1"),
        # "811228-9874" is a published test personnummer; an episode id must not contain one.
        (811228, 9874, "SIM-811228-n9874"),
    ],
)
def test_episode_id_for(seed: int, n: int, expected: str) -> None:
    """Episode ids are SIM-<seed>-<n>, with n prefixed when the digits look like a patient."""
    assert episode_id_for(seed, n) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": datetime(2026, 1, 1), "days": 1, "seed": 1}, "start: must be a timezone-aware"),  # noqa: DTZ001
        ({"start": YEAR_START, "days": -1, "seed": 1}, "days: must be a non-negative int"),
        ({"start": YEAR_START, "days": 1, "seed": -3}, "seed: must be a non-negative int"),
        ({"start": YEAR_START, "days": 1, "seed": 8112289874}, "seed: its digits look like"),
    ],
)
def test_bad_arguments_are_refused_at_once(
    directory: Directory, kwargs: dict[str, object], message: str
) -> None:
    """Bad arguments raise when `simulate` is called, before any event is asked for."""
    with pytest.raises(ValueError, match=message):
        simulate(directory, **kwargs)  # type: ignore[arg-type]  # deliberately wrong values


# --- the Norrbotten figures over a year ---------------------------------------------------------


def test_about_9000_episodes_a_year(year_stats: SimStats) -> None:
    """A year holds 9,000 episodes ± 5 % (DOMAIN.md: ~8,700-9,000 coordinated episodes)."""
    assert 8550 <= year_stats.episodes <= 9450


def test_17_percent_of_discharges_on_weekends_and_holidays(year_stats: SimStats) -> None:
    """17.3 % of discharges fall on Saturdays, Sundays and holidays (± 3 pp)."""
    assert 0.143 <= year_stats.weekend_holiday_discharge_share <= 0.203


def test_16_percent_of_admission_notices_are_late(year_stats: SimStats) -> None:
    """84 % of admission notices go out on the day of admission, 16 % later (± 3 pp)."""
    assert 0.13 <= year_stats.late_notice_share <= 0.19


def test_late_admission_notices_are_late_by_about_1_2_days(year: list[SimEvent]) -> None:
    """Late notices are 1.2 days late on average (Stockholm dates), the worst within 71."""
    lateness = []
    for envelope in publishes(year):
        if isinstance(envelope.payload, AdmissionNotice):
            days = (local_date(envelope.sent_at) - local_date(envelope.payload.admitted_at)).days
            if days > 0:
                lateness.append(days)
    assert 1.05 <= sum(lateness) / len(lateness) <= 1.35
    assert max(lateness) <= 71


def test_about_11_percent_of_episodes_get_a_sip_invitation(year_stats: SimStats) -> None:
    """~1,000 SIPs over ~9,000 episodes: 11 % ± 3 pp of episodes are invited."""
    assert 0.08 <= year_stats.sip_invitation_share <= 0.14


def test_home_municipalities_follow_the_population(year: list[SimEvent]) -> None:
    """Each municipality's share of episodes is its population share within 1.5 pp."""
    counts = Counter(
        e.payload.home_municipality
        for e in publishes(year)
        if isinstance(e.payload, AdmissionNotice)
    )
    total = sum(counts.values())
    population = sum(POPULATION.values())
    for code, people in POPULATION.items():
        assert abs(counts[code] / total - people / population) <= 0.015, code


def test_every_message_type_of_the_lifecycle_occurs(year_stats: SimStats) -> None:
    """A year exercises every message of the discharge process the simulator models."""
    assert set(year_stats.published) == {
        MessageType.ADMISSION_NOTICE,
        MessageType.PLANNING_DOCUMENT,
        MessageType.DISCHARGE_DATE_CHANGED,
        MessageType.GENERAL_MESSAGE,
        MessageType.READY_FOR_DISCHARGE,
        MessageType.READY_FOR_DISCHARGE_RETRACTED,
        MessageType.CARE_CONTACT_APPOINTED,
        MessageType.SIP_INVITATION,
        MessageType.SIP_DECLINED,
        MessageType.DISCHARGE_NOTICE,
        MessageType.CANCELLATION,
    }


def test_discharge_follows_ready_by_0_to_5_days(year: list[SimEvent]) -> None:
    """Discharge is 0-5 Stockholm days after the last utskrivningsklar; day 0 is common."""
    gaps: Counter[int] = Counter()
    for messages in by_episode(year).values():
        readies = [m.payload for m in messages if isinstance(m.payload, ReadyForDischarge)]
        if messages[-1].message_type is MessageType.DISCHARGE_NOTICE:
            gap = local_date(messages[-1].occurred_at) - local_date(readies[-1].assessed_at)
            gaps[gap.days] += 1
    assert set(gaps) <= set(range(7))  # 0-5 days, or 6 when day 0 ran past midnight
    total = gaps.total()
    assert 0.30 <= gaps[0] / total <= 0.50
    assert 0.35 <= (gaps[1] + gaps[2] + gaps[3]) / total <= 0.55


# --- contract and causal order ------------------------------------------------------------------


def test_every_envelope_of_a_month_validates_and_round_trips(directory: Directory) -> None:
    """Envelopes built without validation are exactly what the contract makes of their JSON."""
    month = list(simulate(directory, datetime(2026, 10, 1, tzinfo=UTC), 31, seed=11))
    for envelope in publishes(month):
        validated = Envelope.model_validate_json(envelope.model_dump_json())
        assert validated == envelope
        # Equality ignores which fields count as set; `exclude_unset` dumps do not.
        assert validated.model_fields_set == envelope.model_fields_set
        assert validated.payload.model_fields_set == envelope.payload.model_fields_set


@pytest.mark.slow
def test_every_envelope_of_a_year_validates_and_round_trips(year: list[SimEvent]) -> None:
    """All ~60,000 envelopes of a year survive validation of their JSON unchanged."""
    for envelope in publishes(year):
        assert Envelope.model_validate_json(envelope.model_dump_json()) == envelope


def test_episodes_are_in_causal_order(year: list[SimEvent]) -> None:
    """Admission notice first (even when late), then ready before discharge, discharge last.

    Sending times strictly increase within an episode; nothing is sent before it happened; a
    retraction is followed by a new ready; a cancellation follows what it cancels. Episodes
    without a discharge are the wrong-patient ones, whose admission notice was cancelled.
    """
    for episode_id, messages in by_episode(year).items():
        types = [m.message_type for m in messages]
        assert types[0] is MessageType.ADMISSION_NOTICE, episode_id
        assert types.count(MessageType.ADMISSION_NOTICE) == 1, episode_id
        sent = [m.sent_at for m in messages]
        assert all(a < b for a, b in itertools.pairwise(sent)), episode_id
        assert all(m.occurred_at <= m.sent_at for m in messages), episode_id
        seen: set[UUID] = set()
        for message in messages:
            if isinstance(message.payload, Cancellation):
                assert message.payload.cancelled_message_id in seen, episode_id
                assert message.causation_id == message.payload.cancelled_message_id
            seen.add(message.message_id)
        if types[-1] is not MessageType.DISCHARGE_NOTICE:
            assert types == [MessageType.ADMISSION_NOTICE, MessageType.CANCELLATION], episode_id
            continue
        assert types.count(MessageType.DISCHARGE_NOTICE) == 1, episode_id
        assert MessageType.READY_FOR_DISCHARGE in types, episode_id
        readies = [i for i, t in enumerate(types) if t is MessageType.READY_FOR_DISCHARGE]
        retractions = [
            i for i, t in enumerate(types) if t is MessageType.READY_FOR_DISCHARGE_RETRACTED
        ]
        assert len(readies) == len(retractions) + 1, episode_id
        for retraction in retractions:
            assert any(r < retraction for r in readies), episode_id
            assert any(r > retraction for r in readies), episode_id


def test_sip_invitations_are_sent_within_three_days_of_ready(year: list[SimEvent]) -> None:
    """A SIP invitation is made before 00:00 starting day 4 (bryt tid kl. 12), as the law asks.

    It is *sent* then too, unless a late admission notice held the episode's messages back.
    """
    checked = sent_in_time = 0
    for messages in by_episode(year).values():
        first_ready = next(
            (m.payload for m in messages if isinstance(m.payload, ReadyForDischarge)), None
        )
        for message in messages:
            if message.message_type is MessageType.SIP_INVITATION:
                assert first_ready is not None
                ready_local = first_ready.assessed_at.astimezone(STOCKHOLM)
                day1 = ready_local.date() + timedelta(days=ready_local.hour >= 12)
                deadline = datetime.combine(day1 + timedelta(days=3), time(0), tzinfo=STOCKHOLM)
                assert first_ready.assessed_at < message.occurred_at < deadline
                notice_sent = messages[0].sent_at
                assert message.sent_at < deadline or notice_sent > message.occurred_at
                checked += 1
                sent_in_time += message.sent_at < deadline
    assert checked > 500
    assert sent_in_time / checked > 0.97


def test_senders_are_the_right_kind_of_unit(year: list[SimEvent], directory: Directory) -> None:
    """Ward messages come from the episode's ward; care contact and SIP from its health centre."""
    for episode_id, messages in by_episode(year).items():
        notice = notice_of(messages)
        ward = directory.unit(notice.ward)
        centre = directory.unit(notice.listed_health_centre)
        assert ward is not None
        assert ward.kind is UnitKind.HOSPITAL_WARD
        assert ward.active
        assert centre is not None
        assert centre.kind is UnitKind.HEALTH_CENTRE
        assert centre.active
        assert centre.municipality_code == notice.home_municipality, episode_id
        for message in messages:
            if message.message_type in WARD_MESSAGES:
                assert message.sender == notice.ward, episode_id
            else:
                assert message.message_type in HEALTH_CENTRE_MESSAGES
                assert message.sender == notice.listed_health_centre, episode_id


def test_hospital_serves_the_patients_municipality_or_is_sunderby(
    year: list[SimEvent], directory: Directory
) -> None:
    """The ward's hospital serves the home municipality, or is Sunderby, the county hospital."""
    hospitals: Counter[str] = Counter()
    for messages in by_episode(year).values():
        notice = notice_of(messages)
        ward = directory.unit(notice.ward)
        assert ward is not None
        assert ward.hospital is not None
        hospital = directory.hospital(ward.hospital)
        assert hospital is not None
        assert notice.home_municipality in hospital.serves or hospital.hospital_id == "sunderby"
        hospitals[hospital.hospital_id] += 1
    assert set(hospitals) == {"sunderby", "pitea", "kalix", "gallivare", "kiruna"}


@pytest.mark.parametrize(
    ("municipality", "expected"),
    [
        ("2580", (("sunderby", 1.0),)),  # Luleå: Sunderby is its local hospital
        ("2582", (("sunderby", 1.0),)),  # Boden
        ("2581", (("pitea", 0.75), ("sunderby", 0.25))),  # Piteå
        ("2560", (("pitea", 0.60), ("sunderby", 0.40))),  # Älvsbyn, between Piteå and Luleå
        ("2514", (("kalix", 0.75), ("sunderby", 0.25))),  # Kalix
        ("2521", (("gallivare", 0.90), ("sunderby", 0.10))),  # Pajala, Malmfälten
        ("2584", (("gallivare", 0.36), ("kiruna", 0.54), ("sunderby", 0.10))),  # Kiruna
    ],
)
def test_hospital_choice_assumptions(
    directory: Directory, municipality: str, expected: tuple[tuple[str, float], ...]
) -> None:
    """The documented hospital split per municipality (assumptions, no source gives flows)."""
    table = HospitalChoice().weights(directory, municipality)
    assert sorted((h, round(p, 6)) for h, p in table) == sorted(expected)


def test_patients_are_synthetic_valid_and_one_per_episode(year: list[SimEvent]) -> None:
    """Patient numbers are Luhn-valid, birth number 980-999, aged 18-100, constant per episode."""
    for episode_id, messages in by_episode(year).items():
        patients = {m.patient for m in messages}
        assert len(patients) == 1, episode_id
        (patient,) = patients
        admitted = local_date(notice_of(messages).admitted_at)
        assert normalise_personal_identity_number(patient, today=admitted) == patient
        assert 980 <= int(patient[9:12]) <= 999
        born = date(int(patient[:4]), int(patient[4:6]), int(patient[6:8]))
        assert 18 <= (admitted - born).days // 365.25 <= 100


def test_free_text_says_it_is_simulated(year: list[SimEvent]) -> None:
    """Every free text of the simulator is marked '[simulerad]'."""
    for envelope in publishes(year):
        for name in ("summary", "reason", "text"):
            value = getattr(envelope.payload, name, None)
            if value is not None:
                assert value.startswith("[simulerad] "), envelope.message_type


def test_late_notices_are_sent_in_office_hours_across_dst(directory: Directory) -> None:
    """Late admission notices go out 08:00-16:00 Stockholm time, DST switch days included."""
    all_late = replace(NORRBOTTEN_LIFECYCLE, on_time_notice_share=0.0)
    for start in (
        datetime(2026, 3, 26, tzinfo=STOCKHOLM),
        datetime(2026, 10, 22, tzinfo=STOCKHOLM),
    ):
        events = list(simulate(directory, start, 4, seed=5, lifecycle=all_late))
        sent_days = set()
        for envelope in publishes(events):
            if envelope.message_type is MessageType.ADMISSION_NOTICE:
                local = envelope.sent_at.astimezone(STOCKHOLM)
                assert time(8) <= local.time() <= time(16), local.isoformat()
                sent_days.add(local.date())
        assert {date(2026, 3, 29), date(2026, 10, 25)} & sent_days


# --- receipts -----------------------------------------------------------------------------------


def test_receipts_are_for_deliveries_the_router_makes(directory: Directory) -> None:
    """Replayed through the router, every message routes, and every receipt names one of its
    recipients, after the message was sent; the receipting unit's kind is right."""
    events = list(simulate(directory, datetime(2026, 5, 1, tzinfo=UTC), 30, seed=3))
    states: dict[str, EpisodeState] = {}
    targets: dict[UUID, set[str]] = {}
    sent_at: dict[UUID, datetime] = {}
    receipts = 0
    for event in events:
        if event.kind == "publish":
            envelope = event.envelope
            assert envelope is not None
            assert envelope.episode_id is not None
            payload = envelope.payload
            decision = route(
                RoutingInput(
                    message_id=envelope.message_id,
                    message_type=envelope.message_type,
                    episode_id=envelope.episode_id,
                    sender=envelope.sender,
                    listed_health_centre=getattr(payload, "listed_health_centre", None),
                    home_municipality=getattr(payload, "home_municipality", None),
                    recipients=payload.recipients if isinstance(payload, GeneralMessage) else (),
                    cancelled_message_id=getattr(payload, "cancelled_message_id", None),
                ),
                states.get(envelope.episode_id),
                directory,
            )
            assert decision.new_state is not None
            states[envelope.episode_id] = decision.new_state
            targets[envelope.message_id] = {t.unit_hsa_id for t in decision.targets}
            sent_at[envelope.message_id] = envelope.sent_at
        else:
            assert event.unit in targets[event.message_id]
            assert event.at > sent_at[event.message_id]
            unit = directory.unit(event.unit or "")
            assert unit is not None
            assert event.unit_kind is unit.kind
            receipts += 1
    assert receipts > 2 * len(targets)


def test_christmas_backlog_silences_pajala_assessment_unit(directory: Directory) -> None:
    """CHRISTMAS_BACKLOG: Pajala's assessment unit receipts nothing on 24-27 December 2026,
    catches up afterwards, while other assessment units go on receipting; by default it too
    receipts during Christmas."""
    start = datetime(2026, 12, 14, tzinfo=STOCKHOLM)
    window = {date(2026, 12, d) for d in (24, 25, 26, 27)}

    def receipts_by_day(behaviour: SimBehaviour) -> dict[str, Counter[date]]:
        found: dict[str, Counter[date]] = defaultdict(Counter)
        for event in simulate(
            directory, start, 14, seed=24, episodes_per_year=20_000, behaviour=behaviour
        ):
            if event.kind == "receipt" and event.unit is not None:
                found[event.unit][local_date(event.at)] += 1
        return found

    backlog = receipts_by_day(CHRISTMAS_BACKLOG)
    usual = receipts_by_day(NORRBOTTEN_DEFAULT)
    assert sum(backlog[PAJALA_AU][d] for d in window) == 0
    assert backlog[PAJALA_AU][date(2026, 12, 28)] > usual[PAJALA_AU][date(2026, 12, 28)]
    assert sum(usual[PAJALA_AU][d] for d in window) > 0
    for other in (KIRUNA_AU, LULEA_AU):
        assert sum(backlog[other][d] for d in window) > 0


def test_never_receipting_units_give_no_receipts(directory: Directory) -> None:
    """A unit whose never-probability is 1 gives no receipt at all; the others still do."""
    silent = UnitBehaviour(ReceiptDelay(60), ReceiptDelay(60), never_probability=1.0)
    behaviour = NORRBOTTEN_DEFAULT.with_overrides(UnitOverride(silent, hsa_id=LULEA_AU))
    events = list(simulate(directory, YEAR_START, 7, seed=9, behaviour=behaviour))
    units = Counter(e.unit for e in events if e.kind == "receipt")
    assert units[LULEA_AU] == 0
    assert units["SE2120000000-SYN2580HSV"] > 0  # Luleå home health care


def test_overrides_pick_units_by_selector(directory: Directory) -> None:
    """The first matching override wins; unmatched units keep their kind's default."""
    slow = UnitBehaviour(ReceiptDelay(600), ReceiptDelay(900))
    by_id = UnitBehaviour(ReceiptDelay(5), ReceiptDelay(5))
    behaviour = SimBehaviour(
        NORRBOTTEN_DEFAULT.by_kind,
        (
            UnitOverride(by_id, hsa_id=PAJALA_AU),
            UnitOverride(slow, kind=UnitKind.ASSESSMENT_UNIT, municipality_code="2521"),
            UnitOverride(slow, municipality_code="2584"),
        ),
    )
    pajala, kiruna_au, lulea_au = (directory.unit(u) for u in (PAJALA_AU, KIRUNA_AU, LULEA_AU))
    assert pajala is not None
    assert kiruna_au is not None
    assert lulea_au is not None
    assert behaviour.for_unit(pajala) is by_id
    assert behaviour.for_unit(kiruna_au) is slow
    assert behaviour.for_unit(lulea_au) is NORRBOTTEN_DEFAULT.by_kind[UnitKind.ASSESSMENT_UNIT]


def test_christmas_backlog_preset_names_one_unit_and_window(directory: Directory) -> None:
    """The preset is the default plus a 24-27 December blackout for Pajala's assessment unit."""
    pajala = directory.unit(PAJALA_AU)
    kiruna_au = directory.unit(KIRUNA_AU)
    assert pajala is not None
    assert kiruna_au is not None
    assert CHRISTMAS_BACKLOG.for_unit(pajala).blackouts == (
        Blackout(date(2026, 12, 24), date(2026, 12, 27)),
    )
    assert CHRISTMAS_BACKLOG.for_unit(kiruna_au).blackouts == ()
    assert christmas_backlog(2027).for_unit(pajala).blackouts == (
        Blackout(date(2027, 12, 24), date(2027, 12, 27)),
    )
    assert behaviour_named("christmas-backlog") is CHRISTMAS_BACKLOG


# --- the runner ---------------------------------------------------------------------------------


class FakeClock:
    """Virtual monotonic time: `sleep` advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # let calls already started run at the current time
        self.now += seconds


def small_stream(directory: Directory, days: int = 3) -> list[SimEvent]:
    return list(simulate(directory, datetime(2026, 2, 2, tzinfo=UTC), days, seed=1))


async def test_asfast_keeps_episode_order_with_concurrency(directory: Directory) -> None:
    """As fast as possible, several calls run at once, but one episode's calls never overlap
    and keep stream order; every event is handed over exactly once."""
    events = small_stream(directory)
    running: set[str] = set()
    overlap = 0
    handed: dict[str, list[tuple[UUID, str | None]]] = defaultdict(list)
    episode_of = {e.message_id: e.episode_id for e in events}

    async def enter(episode: str, key: tuple[UUID, str | None]) -> None:
        nonlocal overlap
        if episode in running:
            overlap += 1
        running.add(episode)
        for _ in range(3):  # give other calls a chance to run meanwhile
            await asyncio.sleep(0)
        handed[episode].append(key)
        running.discard(episode)

    async def publish(envelope: Envelope) -> None:
        assert envelope.episode_id is not None
        await enter(envelope.episode_id, (envelope.message_id, None))

    async def receipt(message_id: UUID, unit: str, at: datetime) -> None:
        await enter(episode_of[message_id], (message_id, unit))

    stats = await run(events, publish, receipt, clock_mode="asfast", max_in_flight=16)

    expected: dict[str, list[tuple[UUID, str | None]]] = defaultdict(list)
    for event in events:
        expected[event.episode_id].append((event.message_id, event.unit))
    assert overlap == 0
    assert handed == expected
    assert stats.max_in_flight > 1
    assert stats.traffic == dry_run(events)


async def test_accelerated_mode_divides_waits_by_speed(directory: Directory) -> None:
    """At speed 60 an event one simulated hour after the first is handed over a minute later."""
    events = small_stream(directory, days=1)[:40]
    clock = FakeClock()
    handed_at: list[float] = []

    async def publish(envelope: Envelope) -> None:
        handed_at.append(clock())

    async def receipt(message_id: UUID, unit: str, at: datetime) -> None:
        handed_at.append(clock())

    await run(
        events,
        publish,
        receipt,
        clock_mode="accelerated",
        speed=60.0,
        clock=clock,
        sleep=clock.sleep,
        max_in_flight=1,
    )
    first = events[0].at
    expected = [1000.0 + (e.at - first).total_seconds() / 60.0 for e in events]
    assert handed_at == pytest.approx(expected)


async def test_realtime_mode_maps_simulated_to_wall_time(directory: Directory) -> None:
    """In real time an event d seconds after sim_start is handed over d seconds after start."""
    events = small_stream(directory, days=1)[:10]
    clock = FakeClock()
    handed_at: list[float] = []

    async def publish(envelope: Envelope) -> None:
        handed_at.append(clock())

    async def receipt(message_id: UUID, unit: str, at: datetime) -> None:
        handed_at.append(clock())

    sim_start = events[0].at - timedelta(minutes=10)
    stats = await run(
        events,
        publish,
        receipt,
        clock_mode="realtime",
        sim_start=sim_start,
        start_wall=1000.0,
        clock=clock,
        sleep=clock.sleep,
        max_in_flight=1,
    )
    assert handed_at == pytest.approx([1000.0 + (e.at - sim_start).total_seconds() for e in events])
    assert stats.max_lag_s == 0.0


async def test_lag_behind_schedule_is_reported(directory: Directory) -> None:
    """Events due before the run started are handed over at once, and the lag is reported."""
    events = small_stream(directory, days=1)[:10]
    clock = FakeClock()

    async def sink(*_: object) -> None:
        return None

    stats = await run(
        events,
        sink,
        sink,
        clock_mode="realtime",
        sim_start=events[0].at,
        start_wall=clock() - 7200.0,
        clock=clock,
        sleep=clock.sleep,
    )
    assert stats.max_lag_s == pytest.approx(7200.0)


async def test_a_sink_error_stops_the_run_and_is_raised(directory: Directory) -> None:
    """The sink's own exception comes out of `run`, not a wrapper."""
    events = small_stream(directory, days=1)

    class BrokerDown(Exception):
        pass

    async def publish(envelope: Envelope) -> None:
        if envelope.message_type is MessageType.PLANNING_DOCUMENT:
            raise BrokerDown

    async def receipt(message_id: UUID, unit: str, at: datetime) -> None:
        return None

    with pytest.raises(BrokerDown):
        await run(events, publish, receipt, clock_mode="asfast", max_in_flight=1)


async def test_runner_stats_count_what_was_handed_over(directory: Directory) -> None:
    """The run's figures: publishes per type, receipts and late notices, as the stream has."""
    events = small_stream(directory)

    async def publish(envelope: Envelope) -> None:
        return None

    async def receipt(message_id: UUID, unit: str, at: datetime) -> None:
        return None

    stats = await run(events, publish, receipt, clock_mode="asfast")
    publish_count = Counter(e.message_type for e in events if e.kind == "publish")
    assert stats.published == publish_count
    assert stats.receipts == sum(1 for e in events if e.kind == "receipt")
    late = sum(
        1
        for e in publishes(events)
        if isinstance(e.payload, AdmissionNotice)
        and local_date(e.sent_at) > local_date(e.payload.admitted_at)
    )
    assert stats.late_admission_notices == late
    assert summary_lines(stats)[0] == f"episodes: {publish_count[MessageType.ADMISSION_NOTICE]}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clock_mode": "warp"}, "clock_mode: must be one of"),
        ({"clock_mode": "accelerated", "speed": 0.0}, "speed: must be > 0"),
        ({"clock_mode": "asfast", "max_in_flight": 0}, "max_in_flight: must be an int >= 1"),
    ],
)
async def test_runner_refuses_bad_options(kwargs: dict[str, object], message: str) -> None:
    """Bad runner options raise before anything is handed over."""

    async def publish(envelope: Envelope) -> None:
        raise AssertionError

    async def receipt(message_id: UUID, unit: str, at: datetime) -> None:
        raise AssertionError

    with pytest.raises(ValueError, match=message):
        await run([], publish, receipt, **kwargs)  # type: ignore[arg-type]  # wrong on purpose


# --- the package surface ------------------------------------------------------------------------


def test_exported_names_are_the_public_api() -> None:
    """`producers.simulator.__all__` lists exactly the public names it defines or re-exports."""
    public = {
        name
        for name in vars(simulator_package)
        if not name.startswith("_") and name not in {"annotations", "model", "runner"}
    }
    assert set(simulator_package.__all__) == public


def test_sip_invitations_invite_the_ward_and_municipality(year: list[SimEvent]) -> None:
    """A SIP invitation invites the episode's ward, home health care and assessment unit."""
    for messages in by_episode(year).values():
        notice = notice_of(messages)
        code = notice.home_municipality
        for message in messages:
            if isinstance(message.payload, SipInvitation):
                assert message.payload.invited == (
                    notice.ward,
                    f"SE2120000000-SYN{code}HSV",
                    f"SE2120000000-SYN{code}BIS",
                )
                assert is_weekend_or_holiday(local_date(message.payload.meeting_at)) is False
