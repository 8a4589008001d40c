"""The escalation ladder: levels, digests, catch-up after a missed scan, deterministic ids."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import ConfigurationError
from hub.escalation import (
    Digest,
    EscalationPolicy,
    EscalationStep,
    PendingDelivery,
    SkippedLevel,
    highest_level_reached,
    level_reached_at,
    next_escalation_at,
    per_delivery_escalation_id,
    plan_scan,
)
from topics.ids import escalation_id_for
from topics.messages import EscalationTarget

STOCKHOLM = ZoneInfo("Europe/Stockholm")
DST_STARTS = "2027-03-28"  # last Sunday of March: 02:00 CET -> 03:00 CEST
DST_ENDS = "2027-10-31"  # last Sunday of October: 03:00 CEST -> 02:00 CET
POLICY = EscalationPolicy()
ASSESSMENT_UNIT = "SE2321000230-BIST2580"  # biståndsenhet, Luleå (synthetic)
HOME_CARE_UNIT = "SE2321000230-HSJV2580"  # hemsjukvård, Luleå (synthetic)


def local(text: str) -> datetime:
    """A Stockholm wall time (unambiguous ones only) as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM).astimezone(UTC)


def wall(instant: datetime) -> str:
    """The Stockholm wall time of an instant, with its offset, for string comparison."""
    return instant.astimezone(STOCKHOLM).isoformat()


def delivery_id(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def make_delivery(**overrides: object) -> PendingDelivery:
    values: dict[str, object] = {
        "delivery_id": delivery_id(1),
        "unit": ASSESSMENT_UNIT,
        "arrived_at": local("2027-01-15T16:00"),  # Friday 16:00
        "due_at": local("2027-01-16T11:00"),  # Saturday round 10:00-11:00
    }
    values.update(overrides)
    return PendingDelivery(**values)  # type: ignore[arg-type]  # test factory over kwargs


def record(pending: Sequence[PendingDelivery], digests: Iterable[Digest]) -> list[PendingDelivery]:
    """What the store does after a scan: remember the level sent for each delivery."""
    sent = {d: digest.level for digest in digests for d in digest.delivery_ids}
    return [
        replace(p, highest_level_sent=sent[p.delivery_id]) if p.delivery_id in sent else p
        for p in pending
    ]


def time_travel(
    pending: Sequence[PendingDelivery],
    scans: Iterable[datetime],
    before_scan: Callable[[datetime, list[PendingDelivery]], list[PendingDelivery]] | None = None,
) -> list[tuple[str, Digest]]:
    """Run scans in order, feeding back what was sent; return (local scan time, digest) pairs."""
    state = list(pending)
    sent: list[tuple[str, Digest]] = []
    for now in scans:
        if before_scan is not None:
            state = before_scan(now, state)
        digests = plan_scan(state, now, POLICY)
        sent.extend((wall(now), d) for d in digests)
        state = record(state, digests)
    return sent


def every(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    out = []
    while start <= end:
        out.append(start)
        start += step
    return out


def expected_digest(
    unit: str,
    level: int,
    deliveries: Sequence[PendingDelivery],
    skipped: tuple[SkippedLevel, ...] = (),
) -> Digest:
    """The digest a scan should produce, assembled from the documented rules."""
    ids = tuple(sorted(d.delivery_id for d in deliveries))
    targets = {
        1: EscalationTarget.UNIT_MAILBOX,
        2: EscalationTarget.ON_CALL,
        3: EscalationTarget.MANAGER,
    }
    return Digest(
        escalation_id=escalation_id_for(unit, level, ids),
        unit=unit,
        level=level,
        target=targets[level],
        delivery_ids=ids,
        count=len(ids),
        oldest_arrived_at=min(d.arrived_at for d in deliveries),
        oldest_due_at=min(d.due_at for d in deliveries),
        skipped=skipped,
    )


# --- the policy ------------------------------------------------------------------------------


def test_default_policy_is_the_norrbotten_ladder() -> None:
    """The default ladder is mailbox at +0, on-call at +60 min, manager at +24 h."""
    assert EscalationPolicy().steps == (
        EscalationStep(1, timedelta(0), EscalationTarget.UNIT_MAILBOX),
        EscalationStep(2, timedelta(minutes=60), EscalationTarget.ON_CALL),
        EscalationStep(3, timedelta(hours=24), EscalationTarget.MANAGER),
    )


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ((), "escalation.steps: must have 1 to 3 levels"),
        (
            tuple(
                EscalationStep(n, timedelta(hours=n), EscalationTarget.MANAGER) for n in range(1, 5)
            ),
            "escalation.steps: must have 1 to 3 levels",
        ),
        (
            (EscalationStep(2, timedelta(0), EscalationTarget.UNIT_MAILBOX),),
            "escalation.steps[0].level: levels must be numbered 1, 2, 3, ... in order",
        ),
        (
            (
                EscalationStep(1, timedelta(hours=2), EscalationTarget.UNIT_MAILBOX),
                EscalationStep(2, timedelta(hours=1), EscalationTarget.ON_CALL),
            ),
            "escalation.steps[1].offset: must not be negative nor earlier than the level before",
        ),
        (
            (EscalationStep(1, timedelta(minutes=-5), EscalationTarget.UNIT_MAILBOX),),
            "escalation.steps[0].offset: must not be negative nor earlier than the level before",
        ),
    ],
)
def test_policy_rejects_malformed_ladders(steps: tuple[EscalationStep, ...], message: str) -> None:
    """A ladder with no levels, misnumbered levels or shrinking offsets stops start-up."""
    with pytest.raises(ConfigurationError) as caught:
        EscalationPolicy(steps=steps)
    assert str(caught.value) == message


def test_unknown_level_is_refused() -> None:
    """Asking for a level the ladder does not have is a caller error, not level 0 or 3."""
    with pytest.raises(ValueError, match=r"^level: must be between 1 and 3, got 4$"):
        level_reached_at(local("2027-01-16T11:00"), 4, POLICY)


@pytest.mark.parametrize(
    ("due_local", "level", "reached_local"),
    [
        ("2027-01-16T11:00", 1, "2027-01-16T11:00:00+01:00"),
        ("2027-01-16T11:00", 2, "2027-01-16T12:00:00+01:00"),
        ("2027-01-16T11:00", 3, "2027-01-17T11:00:00+01:00"),
        # Spring change: 24 real hours after Saturday 11:00 CET is Sunday 12:00 CEST.
        ("2027-03-27T11:00", 3, "2027-03-28T12:00:00+02:00"),
        # Autumn change: 24 real hours after Saturday 11:00 CEST is Sunday 10:00 CET.
        ("2027-10-30T11:00", 3, "2027-10-31T10:00:00+01:00"),
        # An hour across the skipped hour lands two wall-clock hours later.
        ("2027-03-28T01:30", 2, "2027-03-28T03:30:00+02:00"),
        ("2027-12-24T11:00", 3, "2027-12-25T11:00:00+01:00"),
    ],
)
def test_level_instants_are_absolute_offsets(
    due_local: str, level: int, reached_local: str
) -> None:
    """Offsets are real durations, so across DST level 3 is at a different wall clock time."""
    assert wall(level_reached_at(local(due_local), level, POLICY)) == reached_local


# --- time travel -----------------------------------------------------------------------------


def test_saturday_delivery_climbs_the_ladder_at_its_instants() -> None:
    """Due Sat 11:00 and never receipted: level 1 at 11:00, 2 at 12:00, 3 on Sunday 11:00."""
    scans = every(local("2027-01-16T09:00"), local("2027-01-18T09:00"), timedelta(minutes=5))

    sent = [(at, d.level, d.delivery_ids) for at, d in time_travel([make_delivery()], scans)]

    assert sent == [
        ("2027-01-16T11:00:00+01:00", 1, (delivery_id(1),)),
        ("2027-01-16T12:00:00+01:00", 2, (delivery_id(1),)),
        ("2027-01-17T11:00:00+01:00", 3, (delivery_id(1),)),
    ]


@pytest.mark.parametrize(
    ("now_local", "highest_level_sent", "expected_level"),
    [
        ("2027-01-16T10:59:59.999999", 0, None),
        ("2027-01-16T11:00:00", 0, 1),
        ("2027-01-16T11:59:59.999999", 1, None),
        ("2027-01-16T12:00:00", 1, 2),
        ("2027-01-17T10:59:59.999999", 2, None),
        ("2027-01-17T11:00:00", 2, 3),
        ("2027-01-17T11:00:00", 3, None),
        ("2027-02-01T00:00:00", 3, None),
    ],
)
def test_a_level_is_reached_at_its_instant(
    now_local: str, highest_level_sent: int, expected_level: int | None
) -> None:
    """Each level is due exactly at its instant (inclusive) and not a microsecond before."""
    pending = [make_delivery(highest_level_sent=highest_level_sent)]

    levels = [d.level for d in plan_scan(pending, local(now_local), POLICY)]

    assert levels == ([] if expected_level is None else [expected_level])


def test_spring_dst_level_three_lands_an_hour_later_on_the_wall_clock() -> None:
    """Due Sat 2027-03-27 11:00 CET: level 3 is sent on Sunday at 12:00 CEST."""
    pending = [
        make_delivery(arrived_at=local("2027-03-26T16:00"), due_at=local("2027-03-27T11:00"))
    ]
    scans = every(local("2027-03-27T10:00"), local("2027-03-29T10:00"), timedelta(minutes=15))

    sent = [(at, d.level) for at, d in time_travel(pending, scans)]

    assert sent == [
        ("2027-03-27T11:00:00+01:00", 1),
        ("2027-03-27T12:00:00+01:00", 2),
        (f"{DST_STARTS}T12:00:00+02:00", 3),
    ]


def test_autumn_dst_level_three_lands_an_hour_earlier_on_the_wall_clock() -> None:
    """Due Sat 2027-10-30 11:00 CEST: level 3 is sent on Sunday at 10:00 CET."""
    pending = [
        make_delivery(arrived_at=local("2027-10-29T16:00"), due_at=local("2027-10-30T11:00"))
    ]
    scans = every(local("2027-10-30T10:00"), local("2027-11-01T10:00"), timedelta(minutes=15))

    sent = [(at, d.level) for at, d in time_travel(pending, scans)]

    assert sent == [
        ("2027-10-30T11:00:00+02:00", 1),
        ("2027-10-30T12:00:00+02:00", 2),
        (f"{DST_ENDS}T10:00:00+01:00", 3),
    ]


def christmas_backlog() -> list[PendingDelivery]:
    """250 messages to one assessment unit, Wed 23 Dec 14:04 to Thu 24 Dec 06:40, 4 min apart.

    All arrive after the 23 December 14:00 round started and before the Christmas Eve round
    (10:00), so all are due at 11:00 on Christmas Eve.
    """
    first = local("2026-12-23T14:00")
    return [
        make_delivery(
            delivery_id=delivery_id(1000 + n),
            arrived_at=first + timedelta(minutes=4 * n),
            due_at=local("2026-12-24T11:00"),
        )
        for n in range(1, 251)
    ]


def test_christmas_backlog_gives_one_digest_per_level_not_250() -> None:
    """250 unreceipted deliveries over Christmas 2026: three digests in all, one per level."""
    backlog = christmas_backlog()
    scans = every(local("2026-12-24T00:00"), local("2026-12-29T00:00"), timedelta(minutes=15))

    sent = time_travel(backlog, scans)

    assert sent == [
        ("2026-12-24T11:00:00+01:00", expected_digest(ASSESSMENT_UNIT, 1, backlog)),
        ("2026-12-24T12:00:00+01:00", expected_digest(ASSESSMENT_UNIT, 2, backlog)),
        ("2026-12-25T11:00:00+01:00", expected_digest(ASSESSMENT_UNIT, 3, backlog)),
    ]
    assert [d.count for _, d in sent] == [250, 250, 250]
    assert wall(sent[0][1].oldest_arrived_at) == "2026-12-23T14:04:00+01:00"


def test_one_digest_per_unit_and_level() -> None:
    """Two units with overdue deliveries at two levels give one digest per (unit, level)."""
    a1 = make_delivery(delivery_id=delivery_id(1), due_at=local("2027-01-16T11:00"))
    a2 = make_delivery(delivery_id=delivery_id(2), due_at=local("2027-01-16T11:00"))
    a3 = make_delivery(
        delivery_id=delivery_id(3),
        arrived_at=local("2027-01-16T09:00"),
        due_at=local("2027-01-17T11:00"),
    )
    h1 = make_delivery(delivery_id=delivery_id(4), unit=HOME_CARE_UNIT)
    now = local("2027-01-17T11:30")

    digests = plan_scan([a3, h1, a1, a2], now, POLICY)

    assert digests == [
        expected_digest(ASSESSMENT_UNIT, 1, [a3]),
        expected_digest(
            ASSESSMENT_UNIT,
            3,
            [a1, a2],
            skipped=(
                SkippedLevel(delivery_id(1), 1),
                SkippedLevel(delivery_id(1), 2),
                SkippedLevel(delivery_id(2), 1),
                SkippedLevel(delivery_id(2), 2),
            ),
        ),
        expected_digest(
            HOME_CARE_UNIT,
            3,
            [h1],
            skipped=(SkippedLevel(delivery_id(4), 1), SkippedLevel(delivery_id(4), 2)),
        ),
    ]


# --- catching up after a missed scan ---------------------------------------------------------


@pytest.mark.parametrize(
    ("highest_level_sent", "now_local", "level", "skipped_levels"),
    [
        (0, "2027-01-16T12:30", 2, (1,)),
        (0, "2027-01-17T12:00", 3, (1, 2)),
        (1, "2027-01-17T12:00", 3, (2,)),
        (2, "2027-01-17T12:00", 3, ()),
    ],
)
def test_missed_scan_sends_only_the_highest_level_and_reports_the_rest(
    highest_level_sent: int, now_local: str, level: int, skipped_levels: tuple[int, ...]
) -> None:
    """A late scan sends the highest level reached once; lower unsent ones are reported skipped."""
    pending = [make_delivery(highest_level_sent=highest_level_sent)]

    digests = plan_scan(pending, local(now_local), POLICY)

    assert digests == [
        expected_digest(
            ASSESSMENT_UNIT,
            level,
            pending,
            skipped=tuple(SkippedLevel(delivery_id(1), s) for s in skipped_levels),
        )
    ]


def test_after_catching_up_lower_levels_are_never_sent() -> None:
    """Once level 3 went out after an outage, no later scan sends level 1 or 2 for it."""
    outage_ends = local("2027-01-17T12:00")
    scans = every(outage_ends, local("2027-01-20T12:00"), timedelta(minutes=15))

    sent = [(at, d.level) for at, d in time_travel([make_delivery()], scans)]

    assert sent == [("2027-01-17T12:00:00+01:00", 3)]


# --- what stops the ladder -------------------------------------------------------------------


def test_receipt_between_level_one_and_two_stops_the_ladder() -> None:
    """A receipt at 11:30, after the 11:00 reminder, means no on-call and no manager digest."""

    def receipt_at_1130(now: datetime, state: list[PendingDelivery]) -> list[PendingDelivery]:
        if now >= local("2027-01-16T11:30"):
            return [replace(p, receipted=True) for p in state]
        return state

    scans = every(local("2027-01-16T09:00"), local("2027-01-18T09:00"), timedelta(minutes=5))

    sent = [(at, d.level) for at, d in time_travel([make_delivery()], scans, receipt_at_1130)]

    assert sent == [("2027-01-16T11:00:00+01:00", 1)]


def test_acknowledgement_stops_further_levels() -> None:
    """The on-call person acknowledges at 12:10: the manager is not told on Sunday."""

    def ack_at_1210(now: datetime, state: list[PendingDelivery]) -> list[PendingDelivery]:
        if now >= local("2027-01-16T12:10"):
            return [replace(p, acknowledged=True) for p in state]
        return state

    scans = every(local("2027-01-16T09:00"), local("2027-01-18T09:00"), timedelta(minutes=5))

    sent = [(at, d.level) for at, d in time_travel([make_delivery()], scans, ack_at_1210)]

    assert sent == [("2027-01-16T11:00:00+01:00", 1), ("2027-01-16T12:00:00+01:00", 2)]


def test_receipted_and_acknowledged_deliveries_leave_the_digest() -> None:
    """Only the still-open deliveries of a unit are counted in its digest."""
    open_one = make_delivery(delivery_id=delivery_id(1))
    receipted = make_delivery(delivery_id=delivery_id(2), receipted=True)
    acknowledged = make_delivery(delivery_id=delivery_id(3), acknowledged=True)

    digests = plan_scan([open_one, receipted, acknowledged], local("2027-01-16T11:00"), POLICY)

    assert digests == [expected_digest(ASSESSMENT_UNIT, 1, [open_one])]


# --- idempotence and ids ---------------------------------------------------------------------


def test_second_scan_at_the_same_instant_sends_nothing_once_recorded() -> None:
    """Scanning twice at the same now, with the first scan recorded, sends nothing new."""
    backlog = christmas_backlog()
    now = local("2026-12-24T12:00")

    first = plan_scan(backlog, now, POLICY)
    second = plan_scan(record(backlog, first), now, POLICY)

    assert [(d.level, d.count) for d in first] == [(2, 250)]
    assert second == []


def test_a_crashed_scan_repeated_gives_the_same_digests() -> None:
    """Before anything is recorded, a rerun yields identical digests, ids included."""
    backlog = christmas_backlog()
    now = local("2026-12-24T12:00")
    shuffled = list(backlog)
    random.Random(4).shuffle(shuffled)

    assert plan_scan(shuffled, now, POLICY) == plan_scan(backlog, now, POLICY)


def test_digest_id_is_the_contract_id_of_its_unit_level_and_members() -> None:
    """A digest's id is topics.ids.escalation_id_for over its unit, level and deliveries."""
    pending = [make_delivery(delivery_id=delivery_id(n)) for n in (3, 1, 2)]

    (digest,) = plan_scan(pending, local("2027-01-16T11:00"), POLICY)

    assert digest.escalation_id == escalation_id_for(
        ASSESSMENT_UNIT, 1, [delivery_id(1), delivery_id(2), delivery_id(3)]
    )


# The recipe spelt out independently: changing it breaks the store's uniqueness across a
# deploy, so it is pinned here rather than read back from the module.
PER_DELIVERY_NAMESPACE = uuid.uuid5(
    uuid.NAMESPACE_URL, "urn:dischargehub:escalation:delivery-level"
)


def test_per_delivery_id_is_pinned_and_unique_per_level() -> None:
    """The (delivery, level) id is stable and differs between levels and deliveries."""
    ids = {
        (n, level): per_delivery_escalation_id(delivery_id(n), level)
        for n in (1, 2)
        for level in (1, 2, 3)
    }

    assert ids[(1, 1)] == uuid.uuid5(
        PER_DELIVERY_NAMESPACE, "00000000-0000-0000-0000-000000000001|1"
    )
    assert len(set(ids.values())) == 6


# --- scheduling ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected_local"),
    [
        ({}, "2027-01-16T11:00:00+01:00"),
        ({"highest_level_sent": 1}, "2027-01-16T12:00:00+01:00"),
        ({"highest_level_sent": 2}, "2027-01-17T11:00:00+01:00"),
        ({"highest_level_sent": 3}, None),
        ({"receipted": True}, None),
        ({"acknowledged": True}, None),
    ],
)
def test_next_escalation_at(overrides: dict[str, object], expected_local: str | None) -> None:
    """The next scan is due when the next unsent level is reached; never for closed ladders."""
    at = next_escalation_at([make_delivery(**overrides)], POLICY)

    assert (None if at is None else wall(at)) == expected_local


def test_next_escalation_at_takes_the_most_urgent_delivery() -> None:
    """Across deliveries the earliest next level wins; no deliveries means no scan."""
    later = make_delivery(delivery_id=delivery_id(1), due_at=local("2027-01-16T11:00"))
    sooner = make_delivery(
        delivery_id=delivery_id(2), due_at=local("2027-01-15T15:00"), highest_level_sent=1
    )

    assert wall(next_escalation_at([later, sooner], POLICY) or later.due_at) == (
        "2027-01-15T16:00:00+01:00"
    )
    assert next_escalation_at([], POLICY) is None


# --- input checks ----------------------------------------------------------------------------


def test_naive_times_are_refused() -> None:
    """A naive due time or scan time is a bug (its zone is unknown), so it raises."""
    with pytest.raises(ValueError, match=r"^due_at: must be a timezone-aware datetime \(UTC\)$"):
        make_delivery(due_at=datetime(2027, 1, 16, 10, 0))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match=r"^now: must be a timezone-aware datetime \(UTC\)$"):
        plan_scan([make_delivery()], datetime(2027, 1, 16, 10, 0), POLICY)  # noqa: DTZ001


def test_unit_must_be_an_hsa_id() -> None:
    """A delivery whose unit is not an HSA-id is refused before any id is derived from it."""
    with pytest.raises(ValueError, match=r"^unit: must be an HSA-id$"):
        make_delivery(unit="Biståndsenheten Luleå")


def test_instants_are_kept_in_utc() -> None:
    """Aware instants in another zone are stored, and reported in digests, as UTC."""
    pending = make_delivery(due_at=datetime.fromisoformat("2027-01-16T11:00:00+01:00"))

    (digest,) = plan_scan([pending], local("2027-01-16T11:00"), POLICY)

    assert digest.oldest_due_at.isoformat() == "2027-01-16T10:00:00+00:00"


def test_a_delivery_listed_twice_is_refused() -> None:
    """The same delivery twice in one scan could land in two digests, so it raises."""
    with pytest.raises(ValueError, match=r"^pending: a delivery id is listed more than once$"):
        plan_scan([make_delivery(), make_delivery()], local("2027-01-16T11:00"), POLICY)


def test_a_custom_policy_is_obeyed() -> None:
    """A two-level ladder (mailbox at +30 min, manager at +2 h) is planned as configured."""
    policy = EscalationPolicy(
        steps=(
            EscalationStep(1, timedelta(minutes=30), EscalationTarget.UNIT_MAILBOX),
            EscalationStep(2, timedelta(hours=2), EscalationTarget.MANAGER),
        )
    )
    due = local("2027-01-16T11:00")

    assert highest_level_reached(due, local("2027-01-16T11:29"), policy) == 0
    assert highest_level_reached(due, local("2027-01-16T11:30"), policy) == 1
    assert [
        (d.level, d.target) for d in plan_scan([make_delivery()], due + timedelta(hours=2), policy)
    ] == [(2, EscalationTarget.MANAGER)]


# --- properties ------------------------------------------------------------------------------

BASE = datetime(2026, 12, 20, tzinfo=UTC)
UNITS = (ASSESSMENT_UNIT, HOME_CARE_UNIT, "SE2321000230-HC0001")


@st.composite
def pending_deliveries(draw: st.DrawFn) -> list[PendingDelivery]:
    ids = draw(st.lists(st.integers(1, 10_000), min_size=0, max_size=30, unique=True))
    out = []
    for n in ids:
        due = BASE + timedelta(minutes=draw(st.integers(0, 7 * 24 * 60)))
        out.append(
            PendingDelivery(
                delivery_id=delivery_id(n),
                unit=draw(st.sampled_from(UNITS)),
                arrived_at=due - timedelta(minutes=draw(st.integers(1, 3 * 24 * 60))),
                due_at=due,
                highest_level_sent=draw(st.integers(0, 3)),
                acknowledged=draw(st.booleans()),
                receipted=draw(st.booleans()),
            )
        )
    return out


scan_times = st.integers(-24 * 60, 10 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m))


@given(pending=pending_deliveries(), now=scan_times)
def test_property_digests_obey_the_ladder(pending: list[PendingDelivery], now: datetime) -> None:
    """No digest before due time, none for closed ladders, only the highest new level, once."""
    by_id = {p.delivery_id: p for p in pending}
    digests = plan_scan(pending, now, POLICY)

    members = [d for digest in digests for d in digest.delivery_ids]
    assert len(members) == len(set(members))  # at most one digest per delivery per scan
    assert len({(d.unit, d.level) for d in digests}) == len(digests)
    for digest in digests:
        assert digest.delivery_ids == tuple(sorted(digest.delivery_ids))
        assert digest.count == len(digest.delivery_ids)
        for member in digest.delivery_ids:
            p = by_id[member]
            assert p.due_at <= now
            assert not p.receipted
            assert not p.acknowledged
            assert p.unit == digest.unit
            assert digest.level > p.highest_level_sent
            assert level_reached_at(p.due_at, digest.level, POLICY) <= now
            if digest.level < POLICY.top_level:
                assert level_reached_at(p.due_at, digest.level + 1, POLICY) > now
    next_at = next_escalation_at(pending, POLICY)
    if digests:
        assert next_at is not None
        assert next_at <= now
    elif next_at is not None:
        # Nothing to send although a level is pending: then it is still in the future.
        assert next_at > now


@settings(deadline=None)  # many DST-aware conversions per example; slow CI is fine
@given(
    pending=pending_deliveries(),
    steps=st.lists(st.integers(1, 36 * 60), min_size=1, max_size=40),
    receipt_after=st.dictionaries(st.integers(1, 10_000), st.integers(0, 10 * 24 * 60)),
)
def test_property_time_travel_never_repeats_a_level(
    pending: list[PendingDelivery], steps: list[int], receipt_after: dict[int, int]
) -> None:
    """Over any sequence of scans, levels per delivery only rise and a receipt ends them."""
    state = [replace(p, highest_level_sent=0, receipted=False, acknowledged=False) for p in pending]
    receipted_at = {delivery_id(n): BASE + timedelta(minutes=m) for n, m in receipt_after.items()}
    history: dict[uuid.UUID, list[int]] = {p.delivery_id: [] for p in state}
    now = BASE
    for step in steps:
        now += timedelta(minutes=step)
        state = [
            replace(p, receipted=True)
            if p.delivery_id in receipted_at and receipted_at[p.delivery_id] <= now
            else p
            for p in state
        ]
        digests = plan_scan(state, now, POLICY)
        for digest in digests:
            for member in digest.delivery_ids:
                history[member].append(digest.level)
                assert not (member in receipted_at and receipted_at[member] <= now)
        state = record(state, digests)
    for levels in history.values():
        assert levels == sorted(set(levels))  # strictly rising: never the same level twice
