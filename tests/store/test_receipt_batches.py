"""Batched receipts and liability facts on SQLite and PostgreSQL: same effect as one by one.

`Store.record_receipts` must give, receipt for receipt, the outcome `record_receipt` gives when
called for each in order, and leave the same rows behind. Each test plays one sequence twice in
one database, on two disjoint sets of deliveries: once one by one, once as a batch.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from hub.store.models import Receipt as ReceiptRow
from hub.store.repository import (
    BATCH_SIZE,
    EpisodeFactRecord,
    NewDelivery,
    ReceiptOutcome,
    Store,
)
from topics.messages import Receipt, ReceiptChannel

UNIT_A = "SE2321000230-1001"
UNIT_B = "SE2321000230-2002"
STAFF = "SE2321000230-9001"
T0 = datetime(2027, 3, 22, 8, 0, tzinfo=UTC)  # a Monday
NEW, DUPLICATE = ReceiptOutcome.NEW, ReceiptOutcome.DUPLICATE
UNKNOWN, WRONG = ReceiptOutcome.UNKNOWN_DELIVERY, ReceiptOutcome.WRONG_RECIPIENT


def delivery(space: int, n: int, unit: str = UNIT_A) -> NewDelivery:
    return NewDelivery(
        delivery_id=uuid.UUID(int=space * 1_000_000 + n),
        message_id=uuid.UUID(int=space * 1_000_000 + 500_000 + n),
        message_type="admission_notice",
        episode_id=f"ep-{space}-{n}",
        recipient=unit,
        recipient_kind="health_centre",
        role="recipient",
        routed_at=T0,
        due_at=T0 + timedelta(hours=2),
        directory_version=1,
        envelope_json="{}",
    )


def receipt(space: int, n: int, of: int, *, unit: str = UNIT_A, minute: int = 0) -> Receipt:
    """Receipt number ``n`` (its id) of delivery ``of`` in id space ``space``."""
    return Receipt(
        receipt_id=uuid.UUID(int=space * 1_000_000 + 900_000 + n),
        delivery_id=uuid.UUID(int=space * 1_000_000 + of),
        unit=unit,
        receipted_at=T0 + timedelta(minutes=minute),
        receipted_by=STAFF,
        channel=ReceiptChannel.KAFKA,
    )


async def state(store: Store, space: int, deliveries: int) -> list[object]:
    """Per delivery (receipt number, minute) of the first receipt, then every stored receipt."""
    seen: list[object] = []
    for n in range(1, deliveries + 1):
        row = await store.delivery(uuid.UUID(int=space * 1_000_000 + n))
        assert row is not None
        first = None
        if row.receipt_id is not None and row.receipted_at is not None:
            minute = int((row.receipted_at - T0).total_seconds() // 60)
            first = (row.receipt_id.int - space * 1_000_000 - 900_000, minute)
        seen.append(first)
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(ReceiptRow.receipt_id, ReceiptRow.delivery_id, ReceiptRow.unit)
            .where(ReceiptRow.receipt_id >= uuid.UUID(int=space * 1_000_000))
            .where(ReceiptRow.receipt_id < uuid.UUID(int=(space + 1) * 1_000_000))
            .order_by(ReceiptRow.receipt_id)
        )
        seen += [
            (r.receipt_id.int % 1_000_000, r.delivery_id.int % 1_000_000, r.unit) for r in rows
        ]
    return seen


async def play_both_ways(
    store: Store,
    deliveries: int,
    before: list[tuple[int, int]],
    batch: list[tuple[int, int, str, int]],
) -> tuple[list[ReceiptOutcome], list[ReceiptOutcome]]:
    """Store ``deliveries`` (2 of every 7 for UNIT_B), apply ``before`` one by one, then ``batch``
    one by one in id space 1 and as one `record_receipts` in id space 2; compare the stores."""
    outcomes = []
    for space in (1, 2):
        await store.add_deliveries(
            delivery(space, n, UNIT_B if n % 7 in {3, 5} else UNIT_A)
            for n in range(1, deliveries + 1)
        )
        for n, of in before:
            unit = UNIT_B if of % 7 in {3, 5} else UNIT_A
            await store.record_receipt(receipt(space, n, of, unit=unit))
        receipts = [receipt(space, n, of, unit=u, minute=m) for n, of, u, m in batch]
        if space == 1:
            outcomes.append([await store.record_receipt(r) for r in receipts])
        else:
            outcomes.append(await store.record_receipts(receipts))
    assert await state(store, 1, deliveries) == await state(store, 2, deliveries)
    return outcomes[0], outcomes[1]


async def test_batch_outcomes_equal_one_by_one_in_every_case(store: Store) -> None:
    """Unknown delivery, wrong unit, first receipt, the same receipt again within the batch,
    a second receipt of one delivery, one already receipted before, one id stored before, and an
    id first refused (wrong unit) then accepted: outcome by outcome as one at a time."""
    before = [(50, 4)]  # delivery 4 is receipted before the batch by receipt 50
    batch = [
        (1, 99, UNIT_A, 1),  # no delivery 99
        (2, 1, UNIT_B, 2),  # delivery 1 is UNIT_A's
        (3, 1, UNIT_A, 3),  # first receipt of delivery 1
        (3, 1, UNIT_A, 3),  # the same receipt again, in the same batch
        (4, 1, UNIT_A, 4),  # a second receipt of delivery 1: kept, not first
        (5, 4, UNIT_A, 5),  # delivery 4 was receipted before the batch
        (50, 4, UNIT_A, 6),  # receipt 50 was stored before the batch
        (6, 2, UNIT_B, 7),  # refused (delivery 2 is UNIT_A's) ...
        (6, 2, UNIT_A, 8),  # ... then the same id from the right unit: new
        (7, 3, UNIT_B, 9),  # delivery 3 is UNIT_B's
    ]
    one_by_one, batched = await play_both_ways(store, 4, before, batch)
    expected = [UNKNOWN, WRONG, NEW, DUPLICATE, DUPLICATE, DUPLICATE, DUPLICATE, WRONG, NEW, NEW]
    assert one_by_one == expected
    assert batched == one_by_one


async def test_random_batches_larger_than_one_statement_match_one_by_one(store: Store) -> None:
    """Seeded random batches of 1,200 receipts (more than one IN list) over 300 deliveries, with
    repeats, other units and unknown ids, give the one-by-one outcomes and rows."""
    rng = random.Random(2026)
    size = BATCH_SIZE * 2 + 200
    batch = [
        (
            rng.randrange(1, 960),  # receipt numbers repeat; 900-959 were stored before
            rng.randrange(1, 330),  # 300 deliveries exist
            rng.choice([UNIT_A, UNIT_A, UNIT_A, UNIT_B]),
            rng.randrange(0, 600),
        )
        for _ in range(size)
    ]
    before = [(n, rng.randrange(1, 300)) for n in range(900, 960)]
    one_by_one, batched = await play_both_ways(store, 300, before, batch)
    assert batched == one_by_one
    assert set(one_by_one) == {NEW, DUPLICATE, UNKNOWN, WRONG}


async def test_an_empty_batch_changes_nothing(store: Store) -> None:
    """No receipts: no outcomes."""
    assert await store.record_receipts([]) == []


async def test_concurrent_batches_receipt_each_delivery_once(store: Store) -> None:
    """Three batches racing over the same 40 deliveries with distinct receipt ids: each
    delivery has exactly one NEW across them, and it is the receipt the delivery points at."""
    await store.add_deliveries(delivery(3, n) for n in range(1, 41))
    batches = [
        [receipt(3, k * 100 + n, n, minute=k) for n in rng_order(k, 40)] for k in range(1, 4)
    ]
    results = await asyncio.gather(*(store.record_receipts(b) for b in batches))
    new_by_delivery: dict[uuid.UUID, list[uuid.UUID]] = {}
    for batch, outcomes in zip(batches, results, strict=True):
        for r, outcome in zip(batch, outcomes, strict=True):
            assert outcome in {NEW, DUPLICATE}
            if outcome is NEW:
                new_by_delivery.setdefault(r.delivery_id, []).append(r.receipt_id)
    assert len(new_by_delivery) == 40
    for delivery_id, new in new_by_delivery.items():
        assert len(new) == 1
        row = await store.delivery(delivery_id)
        assert row is not None
        assert row.receipt_id == new[0]


def rng_order(seed: int, n: int) -> list[int]:
    order = list(range(1, n + 1))
    random.Random(seed).shuffle(order)
    return order


async def test_episode_facts_batch_keeps_the_first_of_each_and_counts_new(store: Store) -> None:
    """A batch of 1,300 facts (several statements' worth) with repeats inside the batch and of
    facts stored before: the count is of new ones, and the first of each is what is kept."""
    assert await store.add_episode_fact("ep-x", uuid.UUID(int=5), "discharged", T0)
    facts = [
        ("ep-x", uuid.UUID(int=n % 1000), "ready_for_discharge", T0 + timedelta(minutes=n))
        for n in range(1300)
    ]
    assert await store.add_episode_facts(facts) == 999  # 1,000 distinct, one stored before
    assert await store.add_episode_facts(facts) == 0
    assert not await store.add_episode_fact("ep-x", uuid.UUID(int=7), "discharged", T0)
    stored = await store.episode_facts("ep-x")
    assert len(stored) == 1000
    assert stored[0] == EpisodeFactRecord(uuid.UUID(int=0), "ready_for_discharge", T0)
    assert EpisodeFactRecord(uuid.UUID(int=5), "discharged", T0) in stored
    assert EpisodeFactRecord(
        uuid.UUID(int=7), "ready_for_discharge", T0 + timedelta(minutes=7)
    ) in (stored)
    assert await store.add_episode_facts([]) == 0
