"""What the scan reads and publishes: the next-level cutoffs and the bounded escalation message."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hub.directory import load_directory
from hub.escalation import (
    MAX_MESSAGE_IDS,
    EscalationPolicy,
    EscalationStep,
    PendingDelivery,
    next_level_cutoffs,
    plan_scan,
)
from hub.oncall import load_oncall_config
from hub.scanner import escalation_message
from hub.settings import Settings
from topics.codec import encode
from topics.ids import escalation_id_for
from topics.messages import EscalationTarget

BASE = datetime(2026, 12, 20, tzinfo=UTC)
UNITS = ("SE2321000230-BIST2580", "SE2321000230-HSJV2580", "SE2321000230-HC0001")
LULEA_HSV = "SE2120000000-SYN2580HSV"  # Luleå home health care, in the reference directory
#: Kafka's default record limit (broker message.max.bytes, producer max_request_size).
KAFKA_RECORD_LIMIT = 1_048_576
TARGETS = (EscalationTarget.UNIT_MAILBOX, EscalationTarget.ON_CALL, EscalationTarget.MANAGER)


@st.composite
def policies(draw: st.DrawFn) -> EscalationPolicy:
    gaps = draw(st.lists(st.integers(0, 3 * 24 * 60), min_size=1, max_size=3))
    offsets = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    return EscalationPolicy(
        tuple(
            EscalationStep(i + 1, timedelta(minutes=offset), TARGETS[i])
            for i, offset in enumerate(offsets)
        )
    )


@st.composite
def backlogs(draw: st.DrawFn) -> list[PendingDelivery]:
    ids = draw(st.lists(st.integers(1, 10_000), max_size=40, unique=True))
    out = []
    for n in ids:
        due = BASE + timedelta(minutes=draw(st.integers(0, 7 * 24 * 60)))
        out.append(
            PendingDelivery(
                delivery_id=uuid.UUID(int=n),
                unit=draw(st.sampled_from(UNITS)),
                arrived_at=due - timedelta(minutes=draw(st.integers(1, 3 * 24 * 60))),
                due_at=due,
                highest_level_sent=draw(st.integers(0, 4)),
            )
        )
    return out


@given(
    pending=backlogs(),
    policy=policies(),
    now=st.integers(-24 * 60, 12 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m)),
)
def test_cutoffs_select_exactly_the_deliveries_the_ladder_sends(
    pending: list[PendingDelivery], policy: EscalationPolicy, now: datetime
) -> None:
    """Reading only `due_at <= cutoffs[highest_level_sent]` (what the store does) plans the
    same digests as reading every open delivery, and drops only deliveries in no digest."""
    cutoffs = next_level_cutoffs(now, policy)
    selected = [
        p
        for p in pending
        if p.highest_level_sent in cutoffs and p.due_at <= cutoffs[p.highest_level_sent]
    ]
    everything = plan_scan(pending, now, policy)
    assert plan_scan(selected, now, policy) == everything
    assert {d for digest in everything for d in digest.delivery_ids} == {
        p.delivery_id for p in selected
    }


def test_norrbotten_cutoffs_are_due_now_one_hour_and_one_day_ago() -> None:
    """Nothing sent: due by now; mailbox sent: due an hour ago; on-call sent: due a day ago."""
    now = datetime(2027, 1, 16, 12, 0, tzinfo=UTC)
    assert next_level_cutoffs(now, EscalationPolicy()) == {
        0: now,
        1: now - timedelta(minutes=60),
        2: now - timedelta(hours=24),
    }


def test_an_escalation_of_a_huge_backlog_fits_a_kafka_record() -> None:
    """110,000 overdue deliveries in one unit (the simulator's skew at 1 M open) give one
    digest whose message is far below Kafka's 1 MB limit, with the exact count and oldest due
    time and the id of all 110,000; the same message carrying every id would be ~4 MB."""
    due = datetime(2027, 1, 16, 10, 0, tzinfo=UTC)
    pending = [
        PendingDelivery(
            delivery_id=uuid.UUID(int=n),
            unit=LULEA_HSV,
            arrived_at=due - timedelta(hours=2, seconds=n),
            due_at=due + timedelta(seconds=n % 600),
        )
        for n in range(1, 110_001)
    ]
    now = due + timedelta(hours=1, minutes=10)  # on-call level reached by all of them
    (digest,) = plan_scan(pending, now, EscalationPolicy())
    settings = Settings()
    addressed = escalation_message(
        digest,
        load_directory(settings.directory_file),
        load_oncall_config(settings.oncall_file),
        now,
        settings.public_base_url,
    )
    message = addressed.escalation
    body, _ = encode(message)

    assert len(body) < 64 * 1024
    assert (message.count, message.oldest_due_at, message.level) == (110_000, due, 2)
    assert message.oldest_arrived_at == due - timedelta(hours=2, seconds=110_000)
    assert message.escalation_id == escalation_id_for(LULEA_HSV, 2, digest.delivery_ids)
    assert message.delivery_ids == digest.delivery_ids[:MAX_MESSAGE_IDS]
    assert len(digest.delivery_ids) == 110_000
    every_id, _ = encode(message.model_copy(update={"delivery_ids": digest.delivery_ids}))
    assert len(every_id) > 4 * KAFKA_RECORD_LIMIT
