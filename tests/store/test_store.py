"""The SQL store on SQLite and on a real PostgreSQL server: schema, idempotence, the scan."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, func, inspect, select, text, update
from sqlalchemy.engine import Connection, Dialect, make_url

from hub.errors import ConfigurationError
from hub.escalation import EscalationPolicy, SkippedLevel, next_level_cutoffs, plan_scan
from hub.store.engine import create_engine
from hub.store.migrate import HEAD, alembic_config, upgrade
from hub.store.models import (
    AttemptOutcome,
    Base,
    Delivery,
    EscalationDelivery,
    NotificationAttempt,
    NotificationChannel,
    NotificationStatus,
    UtcDateTime,
)
from hub.store.repository import (
    DayKindCounts,
    EpisodeFactRecord,
    EscalationRecorded,
    NewDelivery,
    NewEscalation,
    NewNotification,
    NotificationRecord,
    OpenDelivery,
    OpsAlertRecord,
    ReceiptOutcome,
    Store,
    StoredDelivery,
    UnitBacklog,
    UnreceiptedArrival,
    count_by_arrival_day_kind,
)
from topics.catalogue import MessageType, UnitKind
from topics.examples import load_example
from topics.identifiers import MASK
from topics.ids import delivery_id_for
from topics.messages import (
    AlertSeverity,
    DeliveryRole,
    Envelope,
    OpsAlert,
    Receipt,
    ReceiptChannel,
)
from topics.messages import Delivery as DeliveryMessage

UNIT_A = "SE2321000230-1001"
UNIT_B = "SE2321000230-2002"
STAFF = "SE2321000230-9001"
T0 = datetime(2027, 3, 22, 8, 0, tzinfo=UTC)  # a Monday
CET = timezone(timedelta(hours=1))
PLUS_TEN = timezone(timedelta(hours=10))
MINUS_FIVE = timezone(timedelta(hours=-5))


def make_delivery(
    n: int, *, unit: str = UNIT_A, routed_at: datetime = T0, due_at: datetime | None = None
) -> NewDelivery:
    return NewDelivery(
        delivery_id=uuid.UUID(int=n),
        message_id=uuid.UUID(int=1_000_000 + n),
        message_type="admission_notice",
        episode_id=f"ep-{n}",
        recipient=unit,
        recipient_kind="health_centre",
        role="recipient",
        routed_at=routed_at,
        due_at=due_at if due_at is not None else routed_at + timedelta(hours=2),
        directory_version=3,
        envelope_json=json.dumps({"n": n}),
    )


def stored(row: NewDelivery, **state: Any) -> StoredDelivery:
    base: dict[str, Any] = {
        "receipted_at": None,
        "receipt_id": None,
        "highest_level_sent": 0,
        "acknowledged_at": None,
    }
    base.update(state)
    return StoredDelivery(
        delivery_id=row.delivery_id,
        message_id=row.message_id,
        message_type=row.message_type,
        episode_id=row.episode_id,
        recipient=row.recipient,
        recipient_kind=row.recipient_kind,
        role=row.role,
        routed_at=row.routed_at,
        due_at=row.due_at,
        directory_version=row.directory_version,
        envelope_json=row.envelope_json,
        **base,
    )


def make_receipt(
    delivery: NewDelivery, *, n: int = 1, unit: str | None = None, at: datetime | None = None
) -> Receipt:
    return Receipt(
        receipt_id=uuid.UUID(int=5_000_000 + n),
        delivery_id=delivery.delivery_id,
        unit=unit if unit is not None else delivery.recipient,
        receipted_at=at if at is not None else delivery.due_at - timedelta(minutes=5),
        receipted_by=STAFF,
        channel=ReceiptChannel.HTTP,
    )


def make_escalation(
    n: int, *, level: int = 1, unit: str = UNIT_A, scanned_at: datetime = T0
) -> NewEscalation:
    return NewEscalation(
        escalation_id=uuid.UUID(int=7_000_000 + n),
        unit=unit,
        level=level,
        target="unit_mailbox",
        scanned_at=scanned_at,
        delivery_count=1,
        oldest_due_at=T0,
        payload_json=json.dumps({"escalation": n}),
    )


def open_of(row: NewDelivery, level: int = 0) -> OpenDelivery:
    return OpenDelivery(
        delivery_id=row.delivery_id,
        recipient=row.recipient,
        routed_at=row.routed_at,
        due_at=row.due_at,
        highest_level_sent=level,
    )


async def scalar(store: Store, statement: Any) -> Any:
    async with store.engine.connect() as connection:
        return (await connection.execute(statement)).scalar()


# --- schema and migrations -------------------------------------------------------------------


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_equals_the_models(store: Store) -> None:
    """Alembic finds no difference between the migrated database and the models' metadata."""
    async with store.engine.connect() as connection:
        assert await connection.run_sync(_schema_diff) == []
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert [tuple(row) for row in version] == [(HEAD,)]


async def test_schema_comparison_sees_a_missing_index(store: Store) -> None:
    """The comparison is not blind: dropping the scan's partial index shows up as a diff."""
    async with store.engine.begin() as connection:
        await connection.execute(text("DROP INDEX ix_deliveries_open_due"))
        diff = await connection.run_sync(_schema_diff)
    assert [(entry[0], entry[1].name) for entry in diff] == [
        ("add_index", "ix_deliveries_open_due")
    ]


def test_head_constant_is_alembic_head() -> None:
    """``migrate.HEAD`` names the newest revision of the migrations folder (one head)."""
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [HEAD]


async def test_concurrent_upgrades_both_succeed(store_url: str) -> None:
    """Two processes' worth of upgrades at once leave one schema at head, and repeat cleanly."""
    await asyncio.gather(upgrade(store_url), upgrade(store_url))
    await upgrade(store_url)
    engine = create_engine(store_url)
    try:
        async with engine.connect() as connection:
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            assert await connection.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()
    assert version == HEAD


def test_standalone_alembic_upgrade_and_downgrade(store_url: str) -> None:
    """Alembic's own commands, with a config built in code, migrate up to head and back down."""
    config = alembic_config(store_url)

    def revision() -> str | None:
        async def read() -> str | None:
            engine = create_engine(store_url)
            try:
                async with engine.connect() as connection:
                    tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
                    if "alembic_version" not in tables:
                        return None
                    value = await connection.scalar(text("SELECT version_num FROM alembic_version"))
                    return None if value is None else str(value)
            finally:
                await engine.dispose()

        return asyncio.run(read())

    command.upgrade(config, "head")
    at_head = revision()
    command.downgrade(config, "base")
    assert (at_head, revision()) == (HEAD, None)


async def test_sqlite_connections_are_set_up_for_several_processes(tmp_path: Path) -> None:
    """A SQLite engine creates the file's folders and sets WAL, FULL sync, busy timeout, FKs."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'a' / 'b' / 'hub.sqlite3'}"
    engine = create_engine(url, busy_timeout_ms=12_345)
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        await engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "busy_timeout": 12_345,
        "foreign_keys": 1,
    }
    assert (tmp_path / "a" / "b" / "hub.sqlite3").is_file()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql+aiomysql://u@h/db", "database_url: unsupported driver 'mysql+aiomysql'"),
        ("sqlite+pysqlcipher:///x.db", "database_url: unsupported driver 'sqlite+pysqlcipher'"),
        ("not a url", "database_url: not a database URL"),
    ],
)
def test_create_engine_refuses_other_databases(url: str, expected: str) -> None:
    """Only SQLite and PostgreSQL are accepted; the error names ``database_url``."""
    with pytest.raises(ConfigurationError) as info:
        create_engine(url)
    assert str(info.value).startswith(expected)


# --- deliveries ------------------------------------------------------------------------------


async def test_same_delivery_twice_is_one_row(store: Store) -> None:
    """A delivery stored twice (in one batch and again later) is one row, counted new once."""
    row = make_delivery(1)
    assert await store.add_deliveries([row, row]) == 1
    assert await store.add_deliveries([row]) == 0
    assert await scalar(store, select(func.count()).select_from(Delivery)) == 1
    assert await store.delivery(row.delivery_id) == stored(row)


async def test_delivery_row_from_a_delivery_message(store: Store) -> None:
    """from_message keeps the message's ids and type and a secure copy of its envelope."""
    envelope = load_example(MessageType.ADMISSION_NOTICE)
    message = DeliveryMessage(
        delivery_id=delivery_id_for(envelope.message_id, UNIT_A),
        message=envelope,
        recipient=UNIT_A,
        recipient_kind=UnitKind.HEALTH_CENTRE,
        role=DeliveryRole.RECIPIENT,
        routed_at=T0,
        directory_version=7,
    )
    row = NewDelivery.from_message(message, due_at=T0 + timedelta(hours=2))
    assert await store.add_deliveries([row]) == 1
    back = await store.delivery(message.delivery_id)
    assert back is not None
    assert Envelope.model_validate_json(back.envelope_json) == envelope
    assert back == StoredDelivery(
        delivery_id=message.delivery_id,
        message_id=envelope.message_id,
        message_type="admission_notice",
        episode_id=envelope.episode_id,
        recipient=UNIT_A,
        recipient_kind="health_centre",
        role="recipient",
        routed_at=T0,
        due_at=T0 + timedelta(hours=2),
        directory_version=7,
        envelope_json=back.envelope_json,
        receipted_at=None,
        receipt_id=None,
        highest_level_sent=0,
        acknowledged_at=None,
    )


async def test_batch_insert_counts_only_new_rows(store: Store) -> None:
    """Batches larger than one statement report exactly the rows that were not stored yet."""
    assert await store.add_deliveries(make_delivery(n) for n in range(1, 701)) == 700
    assert await store.add_deliveries(make_delivery(n) for n in range(401, 1301)) == 600
    assert await scalar(store, select(func.count()).select_from(Delivery)) == 1300


# --- receipts --------------------------------------------------------------------------------


async def test_receipt_outcomes(store: Store) -> None:
    """Unknown delivery, wrong unit, first receipt, same receipt again, a second receipt."""
    row = make_delivery(1)
    await store.add_deliveries([row])
    first = make_receipt(row, n=1)
    table = [
        (make_receipt(make_delivery(99), n=9), ReceiptOutcome.UNKNOWN_DELIVERY),
        (make_receipt(row, n=2, unit=UNIT_B), ReceiptOutcome.WRONG_RECIPIENT),
        (first, ReceiptOutcome.NEW),
        (first, ReceiptOutcome.DUPLICATE),
        (make_receipt(row, n=3, at=row.due_at), ReceiptOutcome.DUPLICATE),
    ]
    outcomes = [await store.record_receipt(receipt) for receipt, _ in table]
    assert outcomes == [expected for _, expected in table]
    assert await store.delivery(row.delivery_id) == stored(
        row, receipted_at=first.receipted_at, receipt_id=first.receipt_id
    )
    # Stored: the first and the later distinct receipt; not the refused ones.
    assert await scalar(store, text("SELECT count(*) FROM receipts")) == 2


async def test_receipt_by_another_unit_does_not_stop_the_ladder(store: Store) -> None:
    """Only the delivery's own unit can receipt it: after a wrong-unit receipt it stays open."""
    row = make_delivery(1)
    await store.add_deliveries([row])
    await store.record_receipt(make_receipt(row, unit=UNIT_B))
    assert await store.open_deliveries_due_before(row.due_at) == [open_of(row)]
    await store.record_receipt(make_receipt(row, n=2))
    assert await store.open_deliveries_due_before(row.due_at) == []
    assert await store.count_open() == 0


async def test_concurrent_receipts_only_one_is_new(store: Store) -> None:
    """Racing distinct receipts for one delivery: exactly one is NEW, the rest duplicates."""
    row = make_delivery(1)
    await store.add_deliveries([row])
    outcomes = await asyncio.gather(
        *(store.record_receipt(make_receipt(row, n=n)) for n in range(1, 6))
    )
    assert sorted(outcomes) == sorted([ReceiptOutcome.NEW] + [ReceiptOutcome.DUPLICATE] * 4)


# --- the escalation scan ---------------------------------------------------------------------


async def test_escalation_level_is_never_recorded_twice(store: Store) -> None:
    """A (delivery, level) pair is recorded once, whichever digest and however often."""
    rows = [make_delivery(n) for n in (1, 2)]
    await store.add_deliveries(rows)
    ids = [row.delivery_id for row in rows]
    first = await store.record_escalation(make_escalation(1), ids)
    again = await store.record_escalation(make_escalation(1), ids)
    racing = await store.record_escalation(make_escalation(2), [*ids, ids[0]])
    assert (first, again, racing) == (
        EscalationRecorded(new=True, claimed=tuple(ids)),
        EscalationRecorded(new=False, claimed=()),
        EscalationRecorded(new=True, claimed=()),
    )
    assert await scalar(store, select(func.count()).select_from(EscalationDelivery)) == 2
    assert await store.open_deliveries_due_before(T0 + timedelta(days=1)) == [
        open_of(row, level=1) for row in rows
    ]


async def test_skipped_levels_are_recorded_and_level_only_rises(store: Store) -> None:
    """A level-3 digest records level 2 as skipped; a late level-2 digest cannot lower it."""
    row = make_delivery(1)
    await store.add_deliveries([row])
    await store.record_escalation(make_escalation(1, level=1), [row.delivery_id])
    top = await store.record_escalation(
        make_escalation(3, level=3),
        [row.delivery_id],
        skipped=[SkippedLevel(row.delivery_id, 2)],
    )
    late = await store.record_escalation(make_escalation(2, level=2), [row.delivery_id])
    assert (top, late) == (
        EscalationRecorded(new=True, claimed=(row.delivery_id,)),
        EscalationRecorded(new=True, claimed=()),
    )
    async with store.engine.connect() as connection:
        levels = (
            await connection.execute(
                select(EscalationDelivery.level, EscalationDelivery.skipped).order_by(
                    EscalationDelivery.level
                )
            )
        ).all()
    assert [tuple(level) for level in levels] == [(1, False), (2, True), (3, False)]
    assert await store.open_deliveries_due_before(row.due_at) == [open_of(row, level=3)]
    assert await store.open_deliveries_due_before(row.due_at, below_level=3) == []


async def test_a_scan_over_the_store_sends_each_level_once(store: Store) -> None:
    """plan_scan over the store's open deliveries, recorded, plans nothing more at that time."""
    rows = [make_delivery(1), make_delivery(2, unit=UNIT_B), make_delivery(3)]
    await store.add_deliveries(rows)
    policy = EscalationPolicy()
    now = T0 + timedelta(hours=3, minutes=30)  # 90 min after due: level 2 reached
    pending = [d.as_pending() for d in await store.open_deliveries_due_before(now)]
    digests = plan_scan(pending, now, policy)
    assert [(d.unit, d.level, d.count) for d in digests] == [(UNIT_A, 2, 2), (UNIT_B, 2, 1)]
    for digest in digests:
        recorded = await store.record_escalation(
            NewEscalation.from_digest(digest, scanned_at=now, payload_json="{}"),
            digest.delivery_ids,
            skipped=digest.skipped,
        )
        assert recorded == EscalationRecorded(new=True, claimed=digest.delivery_ids)
    again = [d.as_pending() for d in await store.open_deliveries_due_before(now)]
    assert plan_scan(again, now, policy) == []
    unpublished = await store.unpublished_escalations()
    assert {e.escalation_id for e in unpublished} == {d.escalation_id for d in digests}
    assert await store.mark_escalation_published(digests[0].escalation_id, now) is True
    assert await store.mark_escalation_published(digests[0].escalation_id, now) is False
    assert [e.escalation_id for e in await store.unpublished_escalations()] == [
        digests[1].escalation_id
    ]


async def test_acknowledge_stops_the_ladder_of_the_digests_deliveries(store: Store) -> None:
    """Acknowledging sets acknowledged_at on its unreceipted deliveries once; others untouched."""
    rows = [make_delivery(n) for n in (1, 2, 3)]
    await store.add_deliveries(rows)
    await store.record_escalation(make_escalation(1), [rows[0].delivery_id, rows[1].delivery_id])
    await store.record_receipt(make_receipt(rows[1]))
    at = T0 + timedelta(hours=5)
    assert await store.acknowledge(make_escalation(1).escalation_id, at) == 1
    assert await store.acknowledge(make_escalation(1).escalation_id, at) == 0
    assert await store.acknowledge(uuid.UUID(int=42), at) == 0
    assert await store.delivery(rows[0].delivery_id) == stored(
        rows[0], highest_level_sent=1, acknowledged_at=at
    )
    assert await store.open_deliveries_due_before(at) == [open_of(rows[2])]
    assert await store.count_open() == 1


async def test_scan_pages_through_open_deliveries(store: Store) -> None:
    """Keyset pages of the scan cover every open delivery once, in due order."""
    rows = [make_delivery(n, due_at=T0 + timedelta(minutes=n // 3)) for n in range(1, 26)]
    await store.add_deliveries(rows)
    seen: list[OpenDelivery] = []
    after = None
    while page := await store.open_deliveries_due_before(T0 + timedelta(hours=1), 7, after=after):
        seen += page
        after = (page[-1].due_at, page[-1].delivery_id)
    assert seen == [open_of(row) for row in rows]


def _capture_statements(store: Store) -> tuple[list[tuple[str, Any]], Callable[[], None]]:
    captured: list[tuple[str, Any]] = []

    def before(
        _conn: Connection, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    sync_engine = store.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", before)
    return captured, lambda: event.remove(sync_engine, "before_cursor_execute", before)


async def test_scan_reads_the_partial_index_not_the_history(store: Store) -> None:
    """20,000 receipted rows and 10 open: the scan returns the 10, via ix_deliveries_open_due."""
    history = [make_delivery(n, routed_at=T0 - timedelta(days=30)) for n in range(1, 20_001)]
    open_rows = [make_delivery(n) for n in range(30_001, 30_011)]
    assert await store.add_deliveries([*history, *open_rows]) == 20_010
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Delivery)
            .where(Delivery.delivery_id <= uuid.UUID(int=20_000))
            .values(receipted_at=T0 - timedelta(days=29), receipt_id=uuid.UUID(int=1))
        )
    async with store.engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()

    captured, stop = _capture_statements(store)
    try:
        found = await store.open_deliveries_due_before(T0 + timedelta(days=1), 1000)
    finally:
        stop()
    assert found == [open_of(row) for row in open_rows]
    assert await store.count_open() == 10

    [(statement, parameters)] = captured
    explain = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    async with store.engine.connect() as connection:
        plan = (await connection.exec_driver_sql(explain + statement, parameters)).all()
    plan_text = "\n".join(" ".join(str(part) for part in row) for row in plan)
    assert "ix_deliveries_open_due" in plan_text, plan_text


async def test_scan_read_returns_only_deliveries_due_for_their_next_level(store: Store) -> None:
    """At 12:30 with levels sent 0, 1 and 2: only those whose next level is reached come back
    (due by now with nothing sent, an hour ago with the mailbox sent, a day ago with on-call
    sent); a receipted, an acknowledged and a top-level delivery never do."""
    now = T0 + timedelta(hours=4, minutes=30)
    cases = {  # n: (due_at, level sent, expected)
        1: (now, 0, True),
        2: (now + timedelta(microseconds=1), 0, False),
        3: (now - timedelta(minutes=60), 1, True),
        4: (now - timedelta(minutes=59), 1, False),
        5: (now - timedelta(hours=24), 2, True),
        6: (now - timedelta(hours=23), 2, False),
        7: (now - timedelta(days=9), 3, False),
        8: (now - timedelta(days=9), 0, False),  # receipted
        9: (now - timedelta(days=9), 0, False),  # acknowledged
    }
    rows = [
        make_delivery(n, routed_at=due - timedelta(hours=1), due_at=due)
        for n, (due, _, _) in cases.items()
    ]
    await store.add_deliveries(rows)
    async with store.engine.begin() as connection:
        for n, (_, level, _) in cases.items():
            await connection.execute(
                update(Delivery)
                .where(Delivery.delivery_id == uuid.UUID(int=n))
                .values(highest_level_sent=level)
            )
        await connection.execute(
            update(Delivery)
            .where(Delivery.delivery_id == uuid.UUID(int=9))
            .values(acknowledged_at=now)
        )
    await store.record_receipt(make_receipt(rows[7], at=now))

    found = await store.deliveries_due_for_next_level(next_level_cutoffs(now, EscalationPolicy()))

    assert sorted(found, key=lambda p: p.delivery_id) == [
        open_of(row, level=cases[n][1]).as_pending()
        for n, row in zip(cases, rows, strict=True)
        if cases[n][2]
    ]
    assert await store.deliveries_due_for_next_level({}) == []


async def test_steady_scan_reads_no_row_through_the_level_index(store: Store) -> None:
    """20,000 receipted rows and 300 open ones already at level 1: a scan half an hour later
    finds nothing, each level's branch being a range search of that level's partial index."""
    history = [make_delivery(n, routed_at=T0 - timedelta(days=30)) for n in range(1, 20_001)]
    open_rows = [make_delivery(n) for n in range(30_001, 30_301)]
    await store.add_deliveries([*history, *open_rows])
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Delivery)
            .where(Delivery.delivery_id <= uuid.UUID(int=20_000))
            .values(receipted_at=T0 - timedelta(days=29), receipt_id=uuid.UUID(int=1))
        )
    await store.record_escalation(make_escalation(1), [row.delivery_id for row in open_rows])
    async with store.engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()
    now = open_rows[0].due_at + timedelta(minutes=30)
    cutoffs = next_level_cutoffs(now, EscalationPolicy())

    captured, stop = _capture_statements(store)
    try:
        found = await store.deliveries_due_for_next_level(cutoffs)
    finally:
        stop()
    assert found == []
    later = await store.deliveries_due_for_next_level(
        next_level_cutoffs(now + timedelta(minutes=30), EscalationPolicy())
    )
    assert len(later) == 300  # the on-call level is reached an hour after due

    [(statement, parameters)] = captured
    dialect = store.engine.dialect.name
    explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    async with store.engine.connect() as connection:
        plan = (await connection.exec_driver_sql(explain + statement, parameters)).all()
    plan_text = "\n".join(" ".join(str(part) for part in row) for row in plan)
    if dialect == "sqlite":
        for level in (0, 1, 2):
            index = f"ix_deliveries_open_level_{level}_due"
            assert f"SEARCH deliveries USING INDEX {index} (due_at<?)" in plan_text, plan_text
        assert "SCAN" not in plan_text, plan_text
    else:
        for level in (0, 1, 2):
            assert f"Index Scan using ix_deliveries_open_level_{level}_due" in plan_text, plan_text
        assert "ix_deliveries_open_due" not in plan_text, plan_text
        assert "Seq Scan" not in plan_text, plan_text


async def test_a_digest_of_many_deliveries_is_recorded_and_acknowledged_whole(
    store: Store,
) -> None:
    """A level-2 digest of 12,000 deliveries, level 1 skipped for 4,000 of them: every
    (delivery, level) row is stored, every level raised, and acknowledging covers all."""
    rows = [make_delivery(n) for n in range(1, 12_001)]
    await store.add_deliveries(rows)
    ids = [row.delivery_id for row in rows]
    skipped = [SkippedLevel(i, 1) for i in ids[:4_000]]

    recorded = await store.record_escalation(make_escalation(1, level=2), ids, skipped=skipped)

    assert recorded == EscalationRecorded(new=True, claimed=tuple(ids))
    async with store.engine.connect() as connection:
        per_level = (
            await connection.execute(
                select(EscalationDelivery.level, EscalationDelivery.skipped, func.count())
                .group_by(EscalationDelivery.level, EscalationDelivery.skipped)
                .order_by(EscalationDelivery.level)
            )
        ).all()
        raised = await connection.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.highest_level_sent == 2)
        )
    assert [tuple(row) for row in per_level] == [(1, True, 4_000), (2, False, 12_000)]
    assert raised == 12_000
    again = await store.record_escalation(make_escalation(2, level=2), ids[:5])
    assert again == EscalationRecorded(new=True, claimed=())
    assert await store.acknowledge(make_escalation(1).escalation_id, T0 + timedelta(hours=9)) == (
        12_000
    )
    assert await store.count_open() == 0


async def test_several_digests_are_recorded_in_one_transaction(store: Store) -> None:
    """record_escalations records each digest as record_escalation would, in order, with one
    BEGIN for all of them; a digest recorded before stays as it was."""
    rows = [make_delivery(n) for n in (1, 2, 3)]
    await store.add_deliveries(rows)
    await store.record_escalation(make_escalation(1), [rows[0].delivery_id])
    begins: list[str] = []

    def before(_conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("BEGIN"):
            begins.append(statement)

    sync_engine = store.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", before)
    try:
        recorded = await store.record_escalations(
            [
                (
                    make_escalation(2, level=2),
                    [rows[1].delivery_id],
                    [SkippedLevel(rows[1].delivery_id, 1)],
                ),
                (make_escalation(1), [rows[0].delivery_id], []),
                (make_escalation(3, unit=UNIT_B), [rows[2].delivery_id], []),
            ]
        )
    finally:
        event.remove(sync_engine, "before_cursor_execute", before)

    assert recorded == [
        EscalationRecorded(new=True, claimed=(rows[1].delivery_id,)),
        EscalationRecorded(new=False, claimed=()),
        EscalationRecorded(new=True, claimed=(rows[2].delivery_id,)),
    ]
    if store.engine.dialect.name == "sqlite":  # PostgreSQL's BEGIN is not a cursor statement
        assert len(begins) == 1, begins
    levels = [(await store.delivery(row.delivery_id)) for row in rows]
    assert [d.highest_level_sent if d else None for d in levels] == [1, 2, 1]
    assert await store.record_escalations([]) == []


async def test_digests_are_marked_published_in_one_statement(store: Store) -> None:
    """Three digests marked published by one UPDATE; marking again, or an unknown id, is 0."""
    rows = [make_delivery(n) for n in (1, 2, 3)]
    await store.add_deliveries(rows)
    for n, row in enumerate(rows, start=1):
        await store.record_escalation(make_escalation(n), [row.delivery_id])
    ids = [make_escalation(n).escalation_id for n in (1, 2, 3)]
    updates: list[str] = []

    def before(_conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    sync_engine = store.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", before)
    try:
        marked = await store.mark_escalations_published(ids, T0)
    finally:
        event.remove(sync_engine, "before_cursor_execute", before)

    assert (marked, len(updates)) == (3, 1)
    assert await store.unpublished_escalations() == []
    assert await store.mark_escalations_published([*ids, uuid.UUID(int=99)], T0) == 0
    assert await store.mark_escalations_published([], T0) == 0


# --- leases ----------------------------------------------------------------------------------


async def test_lease_is_exclusive_between_concurrent_holders(store_url: str) -> None:
    """Two stores (as two processes) racing for a lease: one holds it until it expires."""
    await upgrade(store_url)
    engines = [create_engine(store_url), create_engine(store_url)]
    a, b = (Store(engine) for engine in engines)
    ttl = timedelta(seconds=30)
    try:
        rounds = [
            list(
                await asyncio.gather(
                    a.acquire_lease("scanner", "a", T0 + timedelta(seconds=i), ttl),
                    b.acquire_lease("scanner", "b", T0 + timedelta(seconds=i), ttl),
                )
            )
            for i in range(10)
        ]
        winner = "a" if rounds[0][0] else "b"
        expected = [True, False] if winner == "a" else [False, True]
        assert rounds == [expected] * 10
        loser_store, loser = (b, "b") if winner == "a" else (a, "a")
        winner_store = a if winner == "a" else b
        # The winner renewed last at T0+9s: held until T0+39s exactly, then free.
        assert (
            await loser_store.acquire_lease("scanner", loser, T0 + timedelta(seconds=38), ttl)
            is False
        )
        assert (
            await loser_store.acquire_lease("scanner", loser, T0 + timedelta(seconds=39), ttl)
            is True
        )
        assert (
            await winner_store.acquire_lease("scanner", winner, T0 + timedelta(seconds=40), ttl)
            is False
        )
        assert await loser_store.release_lease("scanner", loser) is True
        assert (
            await winner_store.acquire_lease("scanner", winner, T0 + timedelta(seconds=41), ttl)
            is True
        )
    finally:
        for engine in engines:
            await engine.dispose()


_LEASE_WORKER = """
import asyncio, sys
from datetime import datetime, timedelta, UTC
from hub.store.engine import create_engine
from hub.store.repository import Store

async def main(url, holder):
    engine = create_engine(url)
    store = Store(engine)
    await store.count_open()  # connect before the start signal
    print("ready", flush=True)
    sys.stdin.readline()
    now = datetime(2027, 3, 22, 8, 0, tzinfo=UTC)
    got = await store.acquire_lease("scanner", holder, now, timedelta(seconds=30))
    print("won" if got else "lost", flush=True)
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.slow
async def test_lease_is_exclusive_between_processes(store_url: str) -> None:
    """Four processes released at once: exactly one acquires the lease."""
    await upgrade(store_url)
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _LEASE_WORKER,
            store_url,
            f"worker-{i}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(4)
    ]
    try:
        async with asyncio.timeout(60):
            for worker in workers:
                assert worker.stdout is not None
                assert await worker.stdout.readline() == b"ready\n"
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            results = [(await worker.communicate())[0].decode().strip() for worker in workers]
            codes = [await worker.wait() for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert codes == [0, 0, 0, 0]
    assert sorted(results) == ["lost", "lost", "lost", "won"]


# --- timestamps ------------------------------------------------------------------------------


async def test_timestamps_round_trip_as_aware_utc(store: Store) -> None:
    """Instants given in any offset come back as the same instant, in UTC."""
    routed = datetime(2027, 3, 28, 3, 30, tzinfo=PLUS_TEN)  # 2027-03-27T17:30Z
    row = make_delivery(1, routed_at=routed, due_at=datetime(2027, 3, 27, 14, tzinfo=MINUS_FIVE))
    await store.add_deliveries([row])
    back = await store.delivery(row.delivery_id)
    assert back is not None
    assert (back.routed_at.isoformat(), back.due_at.isoformat()) == (
        "2027-03-27T17:30:00+00:00",
        "2027-03-27T19:00:00+00:00",
    )


async def test_ordering_and_filters_follow_instants_not_wall_clocks(store: Store) -> None:
    """Due times in mixed offsets sort and filter by instant, also with ``now`` in an offset."""
    # Wall-clock order (13:00, 10:00, 02:00) is the reverse of instant order.
    dues = [
        datetime(2027, 3, 22, 13, 0, tzinfo=PLUS_TEN),  # 03:00Z
        datetime(2027, 3, 22, 10, 0, tzinfo=CET),  # 09:00Z
        datetime(2027, 3, 22, 2, 0, tzinfo=MINUS_FIVE),  # 07:00Z
    ]
    rows = [
        make_delivery(n, routed_at=T0 - timedelta(days=1), due_at=d) for n, d in enumerate(dues, 1)
    ]
    await store.add_deliveries(rows)
    now = datetime(2027, 3, 22, 3, 0, tzinfo=MINUS_FIVE)  # 08:00Z
    found = await store.open_deliveries_due_before(now)
    assert [d.delivery_id for d in found] == [rows[0].delivery_id, rows[2].delivery_id]
    assert [d.due_at.isoformat() for d in found] == [
        "2027-03-22T03:00:00+00:00",
        "2027-03-22T07:00:00+00:00",
    ]
    assert await store.count_open(due_before=now) == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.open_deliveries_due_before(datetime(2027, 3, 22, 8, 0)),  # noqa: DTZ001
        lambda s: s.acquire_lease("x", "a", datetime(2027, 3, 22), timedelta(seconds=1)),  # noqa: DTZ001
        lambda s: s.save_episode_state("ep", "{}", datetime(2027, 3, 22)),  # noqa: DTZ001
    ],
    ids=["scan", "lease", "router-state"],
)
async def test_naive_datetimes_are_refused(store: Store, call: Callable[[Store], Any]) -> None:
    """A naive datetime is an error naming the argument, never silently taken as UTC."""
    with pytest.raises(ValueError, match=r"^\w+: must be timezone-aware"):
        await call(store)


def test_a_naive_delivery_time_is_refused() -> None:
    """Building a delivery row with a naive routed_at fails before any SQL runs."""
    with pytest.raises(ValueError, match=r"^routed_at: must be timezone-aware"):
        make_delivery(1, routed_at=datetime(2027, 3, 22, 8, 0))  # noqa: DTZ001


SQLITE = "sqlite+aiosqlite://"
POSTGRES = "postgresql+asyncpg://"
_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_INSTANTS = st.datetimes(
    min_value=datetime(1900, 1, 2),  # noqa: DTZ001 (hypothesis bounds are naive)
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=_OFFSETS,
)


@given(a=_INSTANTS, b=_INSTANTS)
def test_sqlite_text_form_orders_like_the_instants(a: datetime, b: datetime) -> None:
    """SQLite's stored text sorts exactly as the instants do and reads back as the UTC instant."""
    column_type = UtcDateTime()
    dialect: Dialect = make_url(SQLITE).get_dialect()()
    text_a = column_type.process_bind_param(a, dialect)
    text_b = column_type.process_bind_param(b, dialect)
    assert (text_a < text_b, text_a == text_b) == (a < b, a == b)
    back = column_type.process_result_value(text_a, dialect)
    assert back == a
    assert back is not None
    assert back.isoformat().endswith("+00:00")


def test_the_column_type_refuses_naive_datetimes() -> None:
    """Binding a naive datetime through the ORM column type is an error, on either database."""
    for url in (SQLITE, POSTGRES):
        dialect = make_url(url).get_dialect()()
        with pytest.raises(ValueError, match=r"^timestamp: must be a timezone-aware"):
            UtcDateTime().process_bind_param(datetime(2027, 3, 22), dialect)  # noqa: DTZ001


# --- notifications ---------------------------------------------------------------------------


async def test_notification_lifecycle(store: Store) -> None:
    """Stored once; attempts counted with a masked error; sent once; then no longer pending."""
    new = NewNotification(
        notification_id=uuid.UUID(int=1),
        escalation_id=uuid.UUID(int=2),
        channel=NotificationChannel.EMAIL,
        recipient="jour@boden.example.se",
        created_at=T0,
    )
    assert await store.upsert_notification(new) is True
    assert await store.upsert_notification(new) is False
    attempts = [
        await store.record_attempt(
            new.notification_id,
            attempted_at=T0 + timedelta(seconds=1),
            outcome=AttemptOutcome.FAILED,
            duration_ms=120,
            error="smtp 451 for 19121212-1212",
        ),
        await store.record_attempt(
            new.notification_id,
            attempted_at=T0 + timedelta(seconds=30),
            outcome=AttemptOutcome.SENT,
            duration_ms=80,
        ),
    ]
    assert attempts == [1, 2]
    pending = NotificationRecord(
        notification_id=new.notification_id,
        escalation_id=new.escalation_id,
        channel=NotificationChannel.EMAIL,
        recipient=new.recipient,
        status=NotificationStatus.PENDING,
        attempts=2,
        last_error=None,
        created_at=T0,
        sent_at=None,
    )
    assert await store.pending_notifications() == [pending]
    async with store.engine.connect() as connection:
        errors = (
            (
                await connection.execute(
                    select(NotificationAttempt.error).order_by(NotificationAttempt.id)
                )
            )
            .scalars()
            .all()
        )
    assert list(errors) == [f"smtp 451 for {MASK}", None]
    sent_at = T0 + timedelta(seconds=31)
    assert await store.mark_sent(new.notification_id, sent_at) is True
    assert await store.mark_sent(new.notification_id, sent_at) is False
    assert await store.mark_failed(new.notification_id, "too late") is False
    assert await store.pending_notifications() == []
    assert await store.notification(new.notification_id) == replace(
        pending, status=NotificationStatus.SENT, sent_at=sent_at
    )


async def test_attempt_for_unknown_notification_is_an_error(store: Store) -> None:
    """Recording an attempt of a notification never stored raises LookupError."""
    with pytest.raises(LookupError, match=r"^notification_id: no such notification$"):
        await store.record_attempt(
            uuid.UUID(int=9), attempted_at=T0, outcome=AttemptOutcome.FAILED, duration_ms=1
        )


# --- router state and liability facts --------------------------------------------------------


async def test_router_state_round_trip(store: Store) -> None:
    """Episode state: absent, stored, replaced."""
    assert await store.load_episode_state("ep-1") is None
    await store.save_episode_state("ep-1", '{"v": 1}', T0)
    await store.save_episode_state("ep-1", '{"v": 2}', T0 + timedelta(minutes=1))
    await store.save_episode_state("ep-2", '{"v": 9}', T0)
    assert [await store.load_episode_state(e) for e in ("ep-1", "ep-2")] == ['{"v": 2}', '{"v": 9}']


async def test_episode_facts_are_idempotent_and_in_time_order(store: Store) -> None:
    """A fact per message, stored once, returned in time order."""
    facts = [
        (uuid.UUID(int=2), "ready_for_discharge", datetime(2027, 3, 22, 11, tzinfo=CET)),
        (uuid.UUID(int=1), "admission_notice_sent", datetime(2027, 3, 20, 9, tzinfo=UTC)),
    ]
    added = [await store.add_episode_fact("ep-1", m, k, at) for m, k, at in facts]
    added.append(await store.add_episode_fact("ep-1", *facts[0]))
    assert added == [True, True, False]
    assert await store.episode_facts("ep-1") == [
        EpisodeFactRecord(
            uuid.UUID(int=1), "admission_notice_sent", datetime(2027, 3, 20, 9, tzinfo=UTC)
        ),
        EpisodeFactRecord(
            uuid.UUID(int=2), "ready_for_discharge", datetime(2027, 3, 22, 10, tzinfo=UTC)
        ),
    ]
    assert await store.episode_facts("ep-2") == []


# --- dashboard, reports, inbox ---------------------------------------------------------------


async def test_unreceipted_backlog_per_unit(store: Store) -> None:
    """Count and oldest arrival of each unit's unreceipted deliveries, acknowledged included."""
    rows = [
        make_delivery(1, routed_at=T0 - timedelta(hours=30)),
        make_delivery(2, routed_at=T0 - timedelta(hours=2)),
        make_delivery(3, routed_at=T0 - timedelta(hours=50)),  # receipted below
        make_delivery(4, unit=UNIT_B, routed_at=T0 - timedelta(minutes=10)),
    ]
    await store.add_deliveries(rows)
    await store.record_receipt(make_receipt(rows[2]))
    await store.record_escalation(make_escalation(1), [rows[1].delivery_id])
    await store.acknowledge(make_escalation(1).escalation_id, T0)
    assert await store.unreceipted_by_unit(T0) == [
        UnitBacklog(UNIT_A, 2, T0 - timedelta(hours=30), timedelta(hours=30)),
        UnitBacklog(UNIT_B, 1, T0 - timedelta(minutes=10), timedelta(minutes=10)),
    ]


async def test_unreceipted_split_by_weekday_and_holiday_arrival(store: Store) -> None:
    """Arrivals on Stockholm weekdays vs weekends/holidays (midsommarafton is a holiday)."""
    arrivals = [
        datetime(2027, 6, 24, 21, 59, tzinfo=UTC),  # Thu 23:59 Stockholm: weekday
        datetime(2027, 6, 24, 22, 0, tzinfo=UTC),  # Fri 00:00 midsommarafton: holiday
        datetime(2027, 6, 28, 6, 0, tzinfo=UTC),  # Monday: weekday
        datetime(2027, 6, 26, 9, 0, tzinfo=UTC),  # Saturday (midsommardagen)
    ]
    rows = [make_delivery(n, routed_at=at) for n, at in enumerate(arrivals, 1)]
    rows.append(make_delivery(9, unit=UNIT_B, routed_at=arrivals[0]))
    await store.add_deliveries(rows)
    listed = await store.unreceipted_arrivals()
    assert listed == sorted(
        (UnreceiptedArrival(r.delivery_id, r.recipient, r.routed_at) for r in rows),
        key=lambda a: (a.unit, a.routed_at),
    )
    assert count_by_arrival_day_kind(listed) == {
        UNIT_A: DayKindCounts(weekday=2, weekend_or_holiday=2),
        UNIT_B: DayKindCounts(weekday=1, weekend_or_holiday=0),
    }
    assert [a.delivery_id for a in await store.unreceipted_arrivals(UNIT_B)] == [
        rows[-1].delivery_id
    ]


async def test_inbox_pages_a_units_deliveries_in_arrival_order(store: Store) -> None:
    """Keyset pages over (routed_at, delivery_id) cover a unit's deliveries once, in order."""
    rows = [make_delivery(n, routed_at=T0 + timedelta(minutes=n // 4)) for n in range(1, 12)]
    await store.add_deliveries([*rows, make_delivery(50, unit=UNIT_B)])
    pages: list[list[uuid.UUID]] = []
    since, after = T0, None
    while page := await store.deliveries_for_unit(UNIT_A, since, after=after, limit=4):
        pages.append([d.delivery_id for d in page])
        since, after = page[-1].routed_at, page[-1].delivery_id
    ids = [row.delivery_id for row in rows]
    assert pages == [ids[0:4], ids[4:8], ids[8:11]]
    await store.record_receipt(make_receipt(rows[0]))
    later = await store.deliveries_for_unit(
        UNIT_A, T0 + timedelta(minutes=2), only_unreceipted=True
    )
    assert later == [stored(row) for row in rows[7:]]


# --- ops alerts ------------------------------------------------------------------------------


async def test_ops_alerts_raise_once_and_resolve(store: Store) -> None:
    """An alert id is stored once; open alerts list it until it is resolved."""
    alert = OpsAlert(
        alert_id=uuid.UUID(int=77),
        kind="escalation.no_recipient",
        severity=AlertSeverity.CRITICAL,
        summary="Ingen jour nåbar för Bodens kommun",
        raised_at=T0,
        details={"unit": UNIT_A},
    )
    assert [await store.raise_alert(alert), await store.raise_alert(alert)] == [True, False]
    assert await store.open_alerts() == [
        OpsAlertRecord(
            alert_id=alert.alert_id,
            kind="escalation.no_recipient",
            severity="critical",
            summary="Ingen jour nåbar för Bodens kommun",
            details={"unit": UNIT_A},
            raised_at=T0,
            resolved_at=None,
        )
    ]
    assert await store.resolve_alert(alert.alert_id, T0 + timedelta(hours=1)) is True
    assert await store.resolve_alert(alert.alert_id, T0 + timedelta(hours=2)) is False
    assert await store.open_alerts() == []
