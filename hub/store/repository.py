"""The hub's SQL store: every query the consumers, the scanner and the ops API run.

One class, :class:`Store`, holds the engine's session factory. **Every public method is one
transaction and commits before it returns** (or rolls back and raises): callers never see a
session, never commit, and can commit their Kafka offset as soon as the awaited call returned,
because the effect is then durable. A method never calls another public method, so there are no
nested transactions. What a method returns is a frozen dataclass, never an ORM object, so
nothing is lazily loaded after the session closed.

Why a class rather than functions taking a session: the effects must be atomic units anyway
(a receipt is checked, stored and applied together; an escalation and its per-delivery rows
are one), the dialect decides how an upsert is spelled, and SQLite needs write transactions to
start with ``BEGIN IMMEDIATE`` (see ``hub.store.engine``). A class keeps those three decisions
in one place instead of in every caller. The ops API gets a ``Store`` through ``Depends``.

Idempotence: ids are deterministic (``topics.ids``), and inserts are ``INSERT ... ON CONFLICT
DO NOTHING`` (SQLite and PostgreSQL spell it the same; the dialect's ``insert`` is chosen per
engine). Each insert reports whether it was new, so a redelivered message is recognised as
such. Instants must be timezone-aware (``ValueError`` otherwise) and come back in UTC.

Time is an argument: no method reads the clock; pass ``now``.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar, cast

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    Executable,
    Integer,
    String,
    Table,
    Uuid,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.calendar import is_weekend_or_holiday, local_date_of, require_aware
from hub.escalation import Digest, PendingDelivery, SkippedLevel
from hub.store.engine import READ, WRITE, Backend, backend_of, session_factory
from hub.store.models import (
    AttemptOutcome,
    Base,
    Delivery,
    EpisodeFact,
    Escalation,
    EscalationDelivery,
    Lease,
    Notification,
    NotificationAttempt,
    NotificationChannel,
    NotificationStatus,
    OpsAlertRow,
    Receipt,
    RouterEpisode,
    UtcDateTime,
)
from topics.identifiers import mask_identity_numbers
from topics.messages import Delivery as DeliveryMessage
from topics.messages import OpsAlert
from topics.messages import Receipt as ReceiptMessage

__all__ = [
    "BATCH_SIZE",
    "AttemptOutcome",
    "DayKindCounts",
    "EpisodeFactRecord",
    "EscalationRecorded",
    "NewDelivery",
    "NewEscalation",
    "NewNotification",
    "NotificationChannel",
    "NotificationRecord",
    "NotificationStatus",
    "OpenDelivery",
    "OpsAlertRecord",
    "ReceiptOutcome",
    "Store",
    "StoredDelivery",
    "StoredEscalation",
    "Totals",
    "UnitBacklog",
    "UnreceiptedArrival",
    "count_by_arrival_day_kind",
]

#: Ids per ``IN (...)`` list: far below both databases' bind-parameter limits.
BATCH_SIZE: Final = 500
_ERROR_MAX: Final = 500
#: The highest ``highest_level_sent`` the scan's per-level indexes cover (``hub.store.models``).
_MAX_LEVEL_SENT: Final = 2
#: Sort key giving UUID order by the 128-bit integer (in C, not ``UUID.__lt__`` per pair).
_UUID_ORDER: Final = operator.attrgetter("int")

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Values in and out
# --------------------------------------------------------------------------------------------


class ReceiptOutcome(StrEnum):
    """What recording a receipt (*kvittens*) did."""

    NEW = "new"  # the first receipt of this delivery: its ladder stops now
    DUPLICATE = "duplicate"  # this receipt was seen before, or the delivery was already receipted
    UNKNOWN_DELIVERY = "unknown_delivery"  # no such delivery (yet): nothing stored
    WRONG_RECIPIENT = "wrong_recipient"  # not the delivery's own recipient unit: nothing stored


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to store, as the tracker builds it from a ``topics.messages.Delivery``.

    ``routed_at`` is when it reached the unit (the ladder's "arrived"); ``due_at`` is computed
    by the reading-round policy; ``envelope_json`` is the secure-side copy of the message.
    """

    delivery_id: uuid.UUID
    message_id: uuid.UUID
    message_type: str
    episode_id: str | None
    recipient: str
    recipient_kind: str
    role: str
    routed_at: datetime
    due_at: datetime
    directory_version: int
    envelope_json: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "routed_at", require_aware(self.routed_at, "routed_at"))
        object.__setattr__(self, "due_at", require_aware(self.due_at, "due_at"))

    @classmethod
    def from_message(
        cls, delivery: DeliveryMessage, due_at: datetime, envelope_json: str | None = None
    ) -> NewDelivery:
        """The row for a delivery message, due at ``due_at``.

        ``envelope_json`` is the envelope's canonical JSON when the caller has it already
        (``topics.codec.decode_delivery`` keeps it from the record); else it is serialised.
        """
        return cls(
            delivery_id=delivery.delivery_id,
            message_id=delivery.message.message_id,
            message_type=delivery.message.message_type.value,
            episode_id=delivery.message.episode_id,
            recipient=delivery.recipient,
            recipient_kind=delivery.recipient_kind.value,
            role=delivery.role.value,
            routed_at=delivery.routed_at,
            due_at=due_at,
            directory_version=delivery.directory_version,
            envelope_json=(
                delivery.message.model_dump_json() if envelope_json is None else envelope_json
            ),
        )


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery as stored, with where it stands (receipted, escalated, acknowledged)."""

    delivery_id: uuid.UUID
    message_id: uuid.UUID
    message_type: str
    episode_id: str | None
    recipient: str
    recipient_kind: str
    role: str
    routed_at: datetime
    due_at: datetime
    directory_version: int
    envelope_json: str
    receipted_at: datetime | None
    receipt_id: uuid.UUID | None
    highest_level_sent: int
    acknowledged_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpenDelivery:
    """An unreceipted, unacknowledged delivery, as the escalation scan needs it."""

    delivery_id: uuid.UUID
    recipient: str
    routed_at: datetime
    due_at: datetime
    highest_level_sent: int

    def as_pending(self) -> PendingDelivery:
        """The ladder's view of it (``hub.escalation.plan_scan`` input)."""
        return PendingDelivery(
            delivery_id=self.delivery_id,
            unit=self.recipient,
            arrived_at=self.routed_at,
            due_at=self.due_at,
            highest_level_sent=self.highest_level_sent,
        )


@dataclass(frozen=True, slots=True)
class NewEscalation:
    """An escalation digest to record: the digest's fields plus the message to publish."""

    escalation_id: uuid.UUID
    unit: str
    level: int
    target: str
    scanned_at: datetime
    delivery_count: int
    oldest_due_at: datetime
    payload_json: str

    def __post_init__(self) -> None:
        if self.level < 1:
            msg = "level: must be 1 or more"
            raise ValueError(msg)
        object.__setattr__(self, "scanned_at", require_aware(self.scanned_at, "scanned_at"))
        object.__setattr__(
            self, "oldest_due_at", require_aware(self.oldest_due_at, "oldest_due_at")
        )

    @classmethod
    def from_digest(
        cls, digest: Digest, *, scanned_at: datetime, payload_json: str
    ) -> NewEscalation:
        """The row for a planned digest (``hub.escalation.Digest``) and its published form."""
        return cls(
            escalation_id=digest.escalation_id,
            unit=digest.unit,
            level=digest.level,
            target=digest.target.value,
            scanned_at=scanned_at,
            delivery_count=digest.count,
            oldest_due_at=digest.oldest_due_at,
            payload_json=payload_json,
        )


@dataclass(frozen=True, slots=True)
class EscalationRecorded:
    """What :meth:`Store.record_escalation` did.

    ``new`` is False when the digest id was already recorded (a repeated scan): nothing changed.
    ``claimed`` are the deliveries for which this digest recorded the level; a delivery whose
    level was already recorded by another digest (a racing scan) is not among them.
    """

    new: bool
    claimed: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class StoredEscalation:
    """A recorded digest (an outbox row until ``published_at`` is set)."""

    escalation_id: uuid.UUID
    unit: str
    level: int
    target: str
    scanned_at: datetime
    delivery_count: int
    oldest_due_at: datetime
    payload_json: str
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewNotification:
    """One digest to send to one address over one channel."""

    notification_id: uuid.UUID
    escalation_id: uuid.UUID
    channel: NotificationChannel
    recipient: str
    created_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel", NotificationChannel(self.channel))
        object.__setattr__(self, "created_at", require_aware(self.created_at, "created_at"))


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A notification as stored, with its sending state."""

    notification_id: uuid.UUID
    escalation_id: uuid.UUID
    channel: NotificationChannel
    recipient: str
    status: NotificationStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class EpisodeFactRecord:
    """One liability fact of an episode: ``kind`` is a ``hub.liability.FactKind`` value."""

    message_id: uuid.UUID
    kind: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Totals:
    """Whole-store counts (see :meth:`Store.totals`)."""

    deliveries: int
    receipted: int
    acknowledged: int
    escalations_by_level: dict[int, int]
    notifications_sent: int

    @property
    def open(self) -> int:
        return self.deliveries - self.receipted - self.acknowledged


@dataclass(frozen=True, slots=True)
class UnitBacklog:
    """A unit's unreceipted deliveries: how many, and when the oldest arrived and its age."""

    unit: str
    count: int
    oldest_routed_at: datetime
    oldest_age: timedelta


@dataclass(frozen=True, slots=True)
class UnreceiptedArrival:
    """When one unreceipted delivery reached its unit (input of report splits)."""

    delivery_id: uuid.UUID
    unit: str
    routed_at: datetime


@dataclass(frozen=True, slots=True)
class DayKindCounts:
    """Arrivals split by the kind of Stockholm day they arrived on."""

    weekday: int = 0
    weekend_or_holiday: int = 0


@dataclass(frozen=True, slots=True)
class OpsAlertRecord:
    """An ops alert as stored; ``details`` decoded from its JSON."""

    alert_id: uuid.UUID
    kind: str
    severity: str
    summary: str
    details: Mapping[str, str]
    raised_at: datetime
    resolved_at: datetime | None


def count_by_arrival_day_kind(
    arrivals: Iterable[UnreceiptedArrival],
) -> dict[str, DayKindCounts]:
    """Per unit, how many arrived on a weekday and how many on a weekend or holiday.

    The day is the Europe/Stockholm calendar date of ``routed_at``; holidays are the hub's
    calendar (public holidays plus midsommarafton, julafton, nyårsafton).
    """
    weekday: defaultdict[str, int] = defaultdict(int)
    weekend: defaultdict[str, int] = defaultdict(int)
    for arrival in arrivals:
        if is_weekend_or_holiday(local_date_of(arrival.routed_at)):
            weekend[arrival.unit] += 1
        else:
            weekday[arrival.unit] += 1
    return {
        unit: DayKindCounts(weekday=weekday[unit], weekend_or_holiday=weekend[unit])
        for unit in sorted(weekday.keys() | weekend.keys())
    }


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


class Store:
    """The hub's SQL store over one engine; each method is one committed transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._backend: Backend = backend_of(engine)
        self._sessions = session_factory(engine)

    @property
    def engine(self) -> AsyncEngine:
        """The engine this store runs on (the caller disposes it at shutdown)."""
        return self._engine

    # --- transactions and dialect -----------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self, options: Mapping[str, Any]) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            # Procures the connection with the options, so the "begin" hook sees them.
            await session.connection(execution_options=dict(options))
            yield session

    def _write(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction that writes: ``BEGIN IMMEDIATE`` on SQLite (takes the lock first)."""
        return self._transaction(WRITE)

    def _read(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read-only transaction: a consistent snapshot, no write lock."""
        return self._transaction(READ)

    def _insert(self, model: type[Base] | Table) -> Any:
        """``INSERT`` in the engine's dialect, which has ``on_conflict_do_nothing/update``."""
        if self._backend == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    # Set-based statements of record_escalation, in each dialect's spelling (fixed SQL).

    def _level_rows_insert(self) -> Executable:
        if self._backend == "postgresql":
            sql = (
                "INSERT INTO escalation_deliveries (delivery_id, level, escalation_id, skipped) "
                "SELECT t.delivery_id, t.level, CAST(:escalation_id AS uuid), t.skipped "
                "FROM unnest(CAST(:delivery_ids AS uuid[]), CAST(:levels AS integer[]), "
                "CAST(:skipped AS boolean[])) AS t(delivery_id, level, skipped) "
                "ON CONFLICT (delivery_id, level) DO NOTHING RETURNING delivery_id, skipped"
            )
        else:
            # "WHERE true" keeps SQLite from reading ON CONFLICT as part of the SELECT.
            sql = (
                "INSERT INTO escalation_deliveries (delivery_id, level, escalation_id, skipped) "
                "SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), "
                ":escalation_id, json_extract(j.value, '$[2]') FROM json_each(:rows) AS j "
                "WHERE true "
                "ON CONFLICT (delivery_id, level) DO NOTHING RETURNING delivery_id, skipped"
            )
        return text(sql).columns(delivery_id=Uuid(), skipped=Boolean())

    def _level_rows_params(
        self, escalation_id: uuid.UUID, rows: Sequence[tuple[uuid.UUID, int, bool]]
    ) -> dict[str, object]:
        if self._backend == "postgresql":
            return {
                "escalation_id": escalation_id,
                "delivery_ids": [row[0] for row in rows],
                "levels": [row[1] for row in rows],
                "skipped": [row[2] for row in rows],
            }
        return {
            "escalation_id": escalation_id.hex,
            "rows": json.dumps([[row[0].hex, row[1], int(row[2])] for row in rows]),
        }

    def _update_deliveries(
        self,
        assignments: str,
        condition: str,
        *,
        returning: bool,
        binds: Sequence[BindParameter[Any]] = (),
    ) -> Executable:
        """``UPDATE deliveries SET <assignments>`` for the ids in ``:delivery_ids`` (one array
        or JSON document, see :meth:`_delivery_ids_param`) that meet ``condition`` (fixed SQL).

        The list drives the update (a primary-key probe per id), whatever the statistics.
        """
        if self._backend == "postgresql":
            # Fixed SQL from this class; values are bound.
            sql = (
                f"UPDATE deliveries SET {assignments} "  # noqa: S608
                "FROM unnest(CAST(:delivery_ids AS uuid[])) AS t(delivery_id) "
                f"WHERE deliveries.delivery_id = t.delivery_id AND {condition}"
            )
        else:
            sql = (
                f"UPDATE deliveries SET {assignments} WHERE delivery_id IN "  # noqa: S608
                f"(SELECT value FROM json_each(:delivery_ids)) AND {condition}"
            )
        if not returning:
            return text(sql).bindparams(*binds)
        statement = text(sql + " RETURNING deliveries.delivery_id").bindparams(*binds)
        return statement.columns(delivery_id=Uuid())

    def _delivery_ids_param(self, ids: Sequence[uuid.UUID]) -> dict[str, object]:
        if self._backend == "postgresql":
            return {"delivery_ids": list(ids)}
        return {"delivery_ids": json.dumps([i.hex for i in ids])}

    # --- deliveries -------------------------------------------------------------------------

    async def add_deliveries(self, rows: Iterable[NewDelivery]) -> int:
        """Store deliveries (a batch, in one transaction); how many were new.

        Deliveries already stored (same ``delivery_id``) are left as they are, also within the
        batch, so redelivered and replayed batches are harmless.
        """
        first_of_each: dict[uuid.UUID, NewDelivery] = {}
        for row in rows:
            first_of_each.setdefault(row.delivery_id, row)
        unique = list(first_of_each.values())
        if not unique:
            return 0
        # One cached statement, executed for many parameter sets: SQLAlchemy's "insertmanyvalues"
        # sends them as multi-row INSERTs and collects RETURNING from each, so only rows that
        # were really inserted come back. (A literal multi-row .values() would be compiled anew
        # on every call, which costs more than the database work.)
        stmt = (
            self._insert(_table(Delivery))
            .on_conflict_do_nothing(index_elements=["delivery_id"])
            .returning(_table(Delivery).c.delivery_id)
        )
        async with self._write() as session:
            result = await session.execute(stmt, [_delivery_values(row) for row in unique])
            return len(result.all())

    async def delivery(self, delivery_id: uuid.UUID) -> StoredDelivery | None:
        """One delivery by id, or ``None``."""
        async with self._read() as session:
            row = await session.get(Delivery, delivery_id)
            return None if row is None else _stored_delivery(row)

    async def deliveries_for_unit(
        self,
        unit: str,
        since: datetime,
        *,
        after: uuid.UUID | None = None,
        limit: int = 100,
        only_unreceipted: bool = False,
    ) -> list[StoredDelivery]:
        """A unit's deliveries in arrival order (``routed_at``, then ``delivery_id``), paged.

        The first page is every delivery with ``routed_at >= since``. For the next page pass
        the last row's ``routed_at`` as ``since`` and its ``delivery_id`` as ``after``: rows
        strictly after that (``routed_at``, ``delivery_id``) pair follow. Keyset paging, so a
        page costs the same however deep it is. ``routed_at`` is the router's time, and rows
        may be stored out of that order: an inbox that must see everything should also pull
        with ``only_unreceipted=True`` (its worklist) rather than rely on ``since`` alone.
        """
        since = require_aware(since, "since")
        _check_limit(limit)
        conditions = [Delivery.recipient == unit, Delivery.routed_at >= since]
        if after is not None:
            conditions.append(
                or_(
                    Delivery.routed_at > since,
                    and_(Delivery.routed_at == since, Delivery.delivery_id > after),
                )
            )
        if only_unreceipted:
            conditions.append(Delivery.receipted_at.is_(None))
        stmt = (
            select(Delivery)
            .where(*conditions)
            .order_by(Delivery.routed_at, Delivery.delivery_id)
            .limit(limit)
        )
        async with self._read() as session:
            return [_stored_delivery(row) for row in (await session.scalars(stmt)).all()]

    # --- receipts ---------------------------------------------------------------------------

    async def record_receipt(self, receipt: ReceiptMessage) -> ReceiptOutcome:
        """Check and store a receipt (*kvittens*); the first one for a delivery stops its ladder.

        Only the delivery's own recipient unit may receipt it (DOMAIN.md "Precise readings"):
        a receipt from another unit, or for a delivery not (yet) stored, is not stored. A
        receipt id seen before is a duplicate. A new receipt for an already receipted delivery
        is stored (audit) but reported as a duplicate; ``receipted_at`` keeps the first one.
        """
        require_aware(receipt.receipted_at, "receipted_at")
        async with self._write() as session:
            (outcome,) = await self._apply_receipts(session, [receipt])
        return outcome

    async def record_receipts(self, receipts: Sequence[ReceiptMessage]) -> list[ReceiptOutcome]:
        """Check and store a batch of receipts in one transaction; one outcome per receipt.

        The outcomes are exactly those of :meth:`record_receipt` called for each receipt in
        order (so a receipt repeated within the batch is a duplicate the second time, and of two
        receipts for one delivery only the first is new), but with a handful of statements for
        the whole batch instead of three per receipt.
        """
        for receipt in receipts:
            require_aware(receipt.receipted_at, "receipted_at")
        if not receipts:
            return []
        async with self._write() as session:
            return await self._apply_receipts(session, receipts)

    async def _apply_receipts(
        self, session: AsyncSession, receipts: Sequence[ReceiptMessage]
    ) -> list[ReceiptOutcome]:
        """The receipts' effect inside the caller's write transaction (see record_receipts).

        1. Read each named delivery's recipient and receipt state with ``SELECT ... IN``,
           ``FOR UPDATE`` on PostgreSQL (in id order, so concurrent batches lock alike): no
           other transaction can receipt these deliveries until this one ends. SQLite's
           ``BEGIN IMMEDIATE`` already serialises writers.
        2. Insert the receipts that pass the recipient check (the first of each receipt id)
           with one cached executemany ``INSERT ... ON CONFLICT DO NOTHING RETURNING``; a receipt
           id that does not come back was stored before.
        3. Replay the batch in order against that state to decide each outcome, and mark each
           newly receipted delivery with one executemany ``UPDATE``.
        """
        deliveries = _table(Delivery)
        state: dict[uuid.UUID, tuple[str, bool]] = {}  # delivery id -> (recipient, receipted)
        for chunk in _chunks(sorted({r.delivery_id for r in receipts}), BATCH_SIZE):
            rows = await session.execute(
                select(deliveries.c.delivery_id, deliveries.c.recipient, deliveries.c.receipted_at)
                .where(deliveries.c.delivery_id.in_(chunk))
                .order_by(deliveries.c.delivery_id)
                .with_for_update()
            )
            state.update({row[0]: (row[1], row[2] is not None) for row in rows})

        accepted = [
            r for r in receipts if r.delivery_id in state and state[r.delivery_id][0] == r.unit
        ]
        first_of_each: dict[uuid.UUID, ReceiptMessage] = {}
        for receipt in accepted:
            first_of_each.setdefault(receipt.receipt_id, receipt)
        inserted: set[uuid.UUID] = set()
        if first_of_each:
            result = await session.execute(
                self._insert(_table(Receipt))
                .on_conflict_do_nothing(index_elements=["receipt_id"])
                .returning(_table(Receipt).c.receipt_id),
                [_receipt_values(r) for r in first_of_each.values()],
            )
            inserted = {row[0] for row in result}

        receipted = {delivery_id: done for delivery_id, (_, done) in state.items()}
        seen: set[uuid.UUID] = set()
        marks: list[dict[str, object]] = []
        outcomes: list[ReceiptOutcome] = []
        for receipt in receipts:
            known = state.get(receipt.delivery_id)
            if known is None:
                outcomes.append(ReceiptOutcome.UNKNOWN_DELIVERY)
            elif known[0] != receipt.unit:
                outcomes.append(ReceiptOutcome.WRONG_RECIPIENT)
            elif receipt.receipt_id in seen or receipt.receipt_id not in inserted:
                outcomes.append(ReceiptOutcome.DUPLICATE)  # stored before, or earlier here
            else:
                seen.add(receipt.receipt_id)
                if receipted[receipt.delivery_id]:
                    outcomes.append(ReceiptOutcome.DUPLICATE)  # kept for audit only
                else:
                    receipted[receipt.delivery_id] = True
                    outcomes.append(ReceiptOutcome.NEW)
                    marks.append(
                        {
                            "target_id": receipt.delivery_id,
                            "first_at": require_aware(receipt.receipted_at, "receipted_at"),
                            "first_receipt_id": receipt.receipt_id,
                        }
                    )
        if marks:
            await session.execute(
                update(deliveries)
                .where(
                    deliveries.c.delivery_id == bindparam("target_id"),
                    deliveries.c.receipted_at.is_(None),
                )
                .values(
                    receipted_at=bindparam("first_at"), receipt_id=bindparam("first_receipt_id")
                ),
                marks,
            )
        return outcomes

    # --- the escalation scan ----------------------------------------------------------------

    async def open_deliveries_due_before(
        self,
        now: datetime,
        limit: int = 1000,
        *,
        after: tuple[datetime, uuid.UUID] | None = None,
        below_level: int | None = None,
    ) -> list[OpenDelivery]:
        """Unreceipted, unacknowledged deliveries with ``due_at <= now``, by due time, paged.

        Reads only the partial index ``ix_deliveries_open_due``, so its cost follows the open
        deliveries, never the receipted history. For the next page pass the last row's
        ``(due_at, delivery_id)`` as ``after``. ``below_level`` leaves out deliveries whose
        ``highest_level_sent`` is already at or above it (the top of the ladder).
        """
        now = require_aware(now, "now")
        _check_limit(limit)
        conditions = [
            Delivery.receipted_at.is_(None),
            Delivery.acknowledged_at.is_(None),
            Delivery.due_at <= now,
        ]
        if after is not None:
            after_due = require_aware(after[0], "after[0]")
            conditions += [
                Delivery.due_at >= after_due,
                or_(
                    Delivery.due_at > after_due,
                    and_(Delivery.due_at == after_due, Delivery.delivery_id > after[1]),
                ),
            ]
        if below_level is not None:
            conditions.append(Delivery.highest_level_sent < below_level)
        stmt = (
            select(
                Delivery.delivery_id,
                Delivery.recipient,
                Delivery.routed_at,
                Delivery.due_at,
                Delivery.highest_level_sent,
            )
            .where(*conditions)
            .order_by(Delivery.due_at, Delivery.delivery_id)
            .limit(limit)
        )
        async with self._read() as session:
            rows = (await session.execute(stmt)).all()
        return [
            OpenDelivery(
                delivery_id=row.delivery_id,
                recipient=row.recipient,
                routed_at=row.routed_at,
                due_at=row.due_at,
                highest_level_sent=row.highest_level_sent,
            )
            for row in rows
        ]

    async def deliveries_due_for_next_level(
        self, cutoffs: Mapping[int, datetime]
    ) -> list[PendingDelivery]:
        """Open deliveries that reach their next escalation level: the escalation scan's read.

        ``cutoffs`` maps a ``highest_level_sent`` to the latest ``due_at`` at which a delivery
        with that level sent has reached the next one (``hub.escalation.next_level_cutoffs``,
        where the rule lives). Only unreceipted, unacknowledged deliveries with
        ``due_at <= cutoffs[highest_level_sent]`` come back, in no particular order (the ladder
        sorts), as the ladder's :class:`~hub.escalation.PendingDelivery`.

        Served by the partial indexes ``ix_deliveries_open_level_{h}_due`` (the open deliveries
        with level ``h`` sent, by due time), one index range per level: the cost follows the
        deliveries that need a digest now, never the open backlog that has had its level nor
        the receipted history. A scan with nothing new to send reads no row. ``h`` must be 0
        to 2 (below the top of any ladder), else ``ValueError``.
        """
        if not cutoffs:
            return []
        # One SELECT per level, glued by UNION ALL, rather than one WHERE with an OR per level:
        # each branch is then a range search of its level's partial index on both databases
        # (with the OR, SQLite walks a whole index, i.e. every open delivery). The level is a
        # literal, not a bound parameter: only then can a planner prove the index applies.
        # SQLite's planner cannot tell the small index of a level from the index of every open
        # delivery (ix_deliveries_open_due) by its statistics, so it is named (INDEXED BY,
        # SQLite's own syntax, hence text); PostgreSQL's picks it unaided.
        branches: list[str] = []
        params: list[BindParameter[datetime]] = []
        for level, cutoff in sorted(cutoffs.items()):
            if level not in range(_MAX_LEVEL_SENT + 1):
                msg = f"cutoffs: a level sent must be between 0 and {_MAX_LEVEL_SENT}"
                raise ValueError(msg)
            index = f"ix_deliveries_open_level_{level}_due"
            indexed_by = f" INDEXED BY {index}" if self._backend == "sqlite" else ""
            # The index name and the level are ours; the cutoff is bound.
            branches.append(
                "SELECT delivery_id, recipient, routed_at, due_at, highest_level_sent "  # noqa: S608
                f"FROM deliveries{indexed_by} "
                "WHERE receipted_at IS NULL AND acknowledged_at IS NULL "
                f"AND highest_level_sent = {int(level)} AND due_at <= :cutoff_{level}"
            )
            params.append(
                bindparam(
                    f"cutoff_{level}",
                    require_aware(cutoff, f"cutoffs[{level}]"),
                    type_=UtcDateTime(),
                )
            )
        stmt = (
            text(" UNION ALL ".join(branches))
            .bindparams(*params)
            .columns(
                delivery_id=Uuid(),
                recipient=String(),
                routed_at=UtcDateTime(),
                due_at=UtcDateTime(),
                highest_level_sent=Integer(),
            )
        )
        async with self._read() as session:
            if self._backend == "postgresql":
                # Right after a scan moved many deliveries up a level, the statistics still say
                # they wait at the lower one, and PostgreSQL may then read the whole table
                # (history included) rather than the now nearly empty index of that level,
                # until autovacuum analyzes again. This read is only ever an index range. The
                # same stale estimate would also make it compile the query (JIT) for nothing.
                await session.execute(text("SET LOCAL enable_seqscan = off"))
                await session.execute(text("SET LOCAL jit = off"))
            rows = (await session.execute(stmt)).all()
        return [
            PendingDelivery(
                delivery_id=delivery_id,
                unit=recipient,
                arrived_at=routed_at,
                due_at=due_at,
                highest_level_sent=level,
            )
            for delivery_id, recipient, routed_at, due_at, level in rows
        ]

    async def count_open(self, *, due_before: datetime | None = None) -> int:
        """How many deliveries are unreceipted and unacknowledged (optionally: and due)."""
        conditions: list[ColumnElement[bool]] = [
            Delivery.receipted_at.is_(None),
            Delivery.acknowledged_at.is_(None),
        ]
        if due_before is not None:
            conditions.append(Delivery.due_at <= require_aware(due_before, "due_before"))
        async with self._read() as session:
            count = await session.scalar(
                select(func.count()).select_from(Delivery).where(*conditions)
            )
        return int(count or 0)

    async def record_escalation(
        self,
        escalation: NewEscalation,
        delivery_ids: Iterable[uuid.UUID],
        *,
        skipped: Iterable[SkippedLevel] = (),
    ) -> EscalationRecorded:
        """Record a digest and its deliveries' level, in one transaction.

        Inserts the escalation (by its digest id), one ``escalation_deliveries`` row per
        delivery at ``escalation.level`` and one per skipped lower level (``skipped=True``),
        each ``ON CONFLICT DO NOTHING`` on (delivery, level): a level is never recorded twice
        for a delivery. Raises ``highest_level_sent`` to the level where it was lower. A digest
        id recorded before changes nothing (``new=False``). The deliveries must exist.

        Outbox: the row keeps ``payload_json`` with ``published_at`` empty; publish it, then
        :meth:`mark_escalations_published`. A crash in between republishes the same id, which
        the notifier drops.

        Set-based: the per-delivery rows and the level raise are one statement each, however
        many deliveries the digest covers (a digest after a long outage may cover a million).
        """
        checked = _checked_digest(escalation, delivery_ids, skipped)
        async with self._write() as session:
            return await self._record_digest(session, *checked)

    async def record_escalations(
        self, digests: Iterable[tuple[NewEscalation, Iterable[uuid.UUID], Iterable[SkippedLevel]]]
    ) -> list[EscalationRecorded]:
        """Record several digests, each as :meth:`record_escalation` does, in one transaction.

        ``digests`` are ``(escalation, delivery_ids, skipped)``; the results come in the same
        order. One commit for many digests: on SQLite a commit writes every page it changed
        (and syncs), so a scan's small digests cost one commit rather than one each.
        """
        checked = [_checked_digest(*digest) for digest in digests]
        if not checked:
            return []
        async with self._write() as session:
            return [await self._record_digest(session, *digest) for digest in checked]

    async def _record_digest(
        self,
        session: AsyncSession,
        escalation: NewEscalation,
        ids: Sequence[uuid.UUID],
        skipped_rows: Sequence[SkippedLevel],
    ) -> EscalationRecorded:
        level = escalation.level
        new = await session.scalar(
            self._insert(Escalation)
            .values(
                escalation_id=escalation.escalation_id,
                unit=escalation.unit,
                level=level,
                target=escalation.target,
                scanned_at=escalation.scanned_at,
                delivery_count=escalation.delivery_count,
                oldest_due_at=escalation.oldest_due_at,
                payload_json=escalation.payload_json,
            )
            .on_conflict_do_nothing(index_elements=["escalation_id"])
            .returning(Escalation.escalation_id)
        )
        if new is None:
            return EscalationRecorded(new=False, claimed=())
        rows: list[tuple[uuid.UUID, int, bool]] = [
            (delivery_id, level, False) for delivery_id in ids
        ]
        rows += [(item.delivery_id, item.level, True) for item in skipped_rows]
        # Set-based, so a digest of a million deliveries is two statements, not a million
        # parameter sets: the rows travel as one array (PostgreSQL) or one JSON document
        # (SQLite) and the database unpacks them.
        result = await session.execute(
            self._level_rows_insert(),
            self._level_rows_params(escalation.escalation_id, rows),
        )
        claimed = [row.delivery_id for row in result if not row.skipped]
        await session.execute(
            self._update_deliveries(
                "highest_level_sent = :level", "highest_level_sent < :level", returning=False
            ),
            {**self._delivery_ids_param(ids), "level": level},
        )
        return EscalationRecorded(new=True, claimed=tuple(sorted(claimed, key=_UUID_ORDER)))

    async def unpublished_escalations(self, limit: int = 100) -> list[StoredEscalation]:
        """Recorded digests not yet marked published, oldest scan first."""
        _check_limit(limit)
        stmt = (
            select(Escalation)
            .where(Escalation.published_at.is_(None))
            .order_by(Escalation.scanned_at, Escalation.escalation_id)
            .limit(limit)
        )
        async with self._read() as session:
            return [_stored_escalation(row) for row in (await session.scalars(stmt)).all()]

    async def mark_escalation_published(self, escalation_id: uuid.UUID, at: datetime) -> bool:
        """Mark a digest published; False if unknown or already marked."""
        at = require_aware(at, "at")
        async with self._write() as session:
            changed = await session.scalar(
                update(Escalation)
                .where(Escalation.escalation_id == escalation_id, Escalation.published_at.is_(None))
                .values(published_at=at)
                .returning(Escalation.escalation_id)
                .execution_options(synchronize_session=False)
            )
        return changed is not None

    async def mark_escalations_published(
        self, escalation_ids: Iterable[uuid.UUID], at: datetime
    ) -> int:
        """Mark digests published, one ``UPDATE ... IN`` per :data:`BATCH_SIZE` ids.

        Returns how many were newly marked; unknown or already marked ids are skipped.
        """
        at = require_aware(at, "at")
        ids = sorted(set(escalation_ids))
        if not ids:
            return 0
        marked = 0
        async with self._write() as session:
            for chunk in _chunks(ids, BATCH_SIZE):
                result = await session.execute(
                    update(Escalation)
                    .where(Escalation.escalation_id.in_(chunk), Escalation.published_at.is_(None))
                    .values(published_at=at)
                    .returning(Escalation.escalation_id)
                    .execution_options(synchronize_session=False)
                )
                marked += len(result.all())
        return marked

    async def escalation(self, escalation_id: uuid.UUID) -> StoredEscalation | None:
        """One recorded digest by id, or ``None``."""
        async with self._read() as session:
            row = await session.get(Escalation, escalation_id)
            return None if row is None else _stored_escalation(row)

    async def acknowledge(self, escalation_id: uuid.UUID, at: datetime) -> int:
        """On-call staff acknowledged a digest: stop the ladder of its unreceipted deliveries.

        Sets ``acknowledged_at`` on the digest's deliveries that are neither receipted nor
        acknowledged yet, and returns how many that was (0 for an unknown digest or a repeat).
        Covers every delivery of the digest (its ``escalation_deliveries`` rows), also when
        the published message carried only some of their ids.
        """
        at = require_aware(at, "at")
        async with self._write() as session:
            # The ids first, by the digest's index, then one update driven by that list: a
            # single UPDATE ... IN (subquery) lets PostgreSQL, with statistics not yet caught
            # up after a large scan, probe the subquery once per open delivery (quadratic).
            ids = list(
                (
                    await session.scalars(
                        select(EscalationDelivery.delivery_id).where(
                            EscalationDelivery.escalation_id == escalation_id
                        )
                    )
                ).all()
            )
            if not ids:
                return 0
            result = await session.execute(
                self._update_deliveries(
                    "acknowledged_at = :at",
                    "acknowledged_at IS NULL AND receipted_at IS NULL",
                    returning=True,
                    binds=[bindparam("at", at, type_=UtcDateTime())],
                ),
                self._delivery_ids_param(ids),
            )
            return len(result.all())

    # --- notifications ----------------------------------------------------------------------

    async def upsert_notification(self, notification: NewNotification) -> bool:
        """Store a notification to send, if new; an existing one (any status) is left alone."""
        async with self._write() as session:
            new = await session.scalar(
                self._insert(Notification)
                .values(
                    notification_id=notification.notification_id,
                    escalation_id=notification.escalation_id,
                    channel=notification.channel.value,
                    recipient=notification.recipient,
                    status=NotificationStatus.PENDING.value,
                    attempts=0,
                    created_at=notification.created_at,
                )
                .on_conflict_do_nothing(index_elements=["notification_id"])
                .returning(Notification.notification_id)
            )
        return new is not None

    async def record_attempt(
        self,
        notification_id: uuid.UUID,
        *,
        attempted_at: datetime,
        outcome: AttemptOutcome,
        duration_ms: int,
        error: str | None = None,
    ) -> int:
        """Log one send attempt and count it; returns the attempts so far.

        ``error`` must be a short reason without patient data (it is cut to 500 characters and
        personnummer are masked again). The status does not change: call :meth:`mark_sent` or
        :meth:`mark_failed`. ``LookupError`` for an unknown notification.
        """
        attempted_at = require_aware(attempted_at, "attempted_at")
        outcome = AttemptOutcome(outcome)
        safe_error = _safe_error(error)
        async with self._write() as session:
            attempts = await session.scalar(
                update(Notification)
                .where(Notification.notification_id == notification_id)
                .values(
                    attempts=Notification.attempts + 1,
                    last_error=safe_error if outcome is AttemptOutcome.FAILED else None,
                )
                .returning(Notification.attempts)
                .execution_options(synchronize_session=False)
            )
            if attempts is None:
                msg = "notification_id: no such notification"
                raise LookupError(msg)
            session.add(
                NotificationAttempt(
                    notification_id=notification_id,
                    attempted_at=attempted_at,
                    outcome=outcome.value,
                    error=safe_error,
                    duration_ms=duration_ms,
                )
            )
        return int(attempts)

    async def mark_sent(self, notification_id: uuid.UUID, sent_at: datetime) -> bool:
        """Pending → sent; False if unknown or no longer pending."""
        return await self._finish(
            notification_id, NotificationStatus.SENT, sent_at=require_aware(sent_at, "sent_at")
        )

    async def mark_failed(self, notification_id: uuid.UUID, error: str) -> bool:
        """Pending → failed (given up); False if unknown or no longer pending."""
        return await self._finish(
            notification_id, NotificationStatus.FAILED, last_error=_safe_error(error)
        )

    async def _finish(
        self, notification_id: uuid.UUID, status: NotificationStatus, **values: object
    ) -> bool:
        async with self._write() as session:
            changed = await session.scalar(
                update(Notification)
                .where(
                    Notification.notification_id == notification_id,
                    Notification.status == NotificationStatus.PENDING.value,
                )
                .values(status=status.value, **values)
                .returning(Notification.notification_id)
                .execution_options(synchronize_session=False)
            )
        return changed is not None

    async def pending_notifications(self, limit: int = 100) -> list[NotificationRecord]:
        """Notifications still to send, oldest first."""
        _check_limit(limit)
        stmt = (
            select(Notification)
            .where(Notification.status == NotificationStatus.PENDING.value)
            .order_by(Notification.created_at, Notification.notification_id)
            .limit(limit)
        )
        async with self._read() as session:
            return [_notification(row) for row in (await session.scalars(stmt)).all()]

    async def notification(self, notification_id: uuid.UUID) -> NotificationRecord | None:
        """One notification by id, or ``None``."""
        async with self._read() as session:
            row = await session.get(Notification, notification_id)
            return None if row is None else _notification(row)

    # --- leases -----------------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` until ``now + ttl``; whether ``holder`` has it now.

        One atomic upsert: it succeeds when nobody holds the lease, when ``holder`` already
        holds it (a renewal), or when the current lease has expired (``expires_at <= now``).
        Safe across processes on both databases. Holders should renew well before ``ttl``
        runs out; the processes' clocks must agree to well within ``ttl``.
        """
        now = require_aware(now, "now")
        if ttl <= timedelta(0):
            msg = "ttl: must be positive"
            raise ValueError(msg)
        stmt = self._insert(Lease).values(name=name, holder=holder, expires_at=now + ttl)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
            where=or_(Lease.holder == stmt.excluded.holder, Lease.expires_at <= now),
        ).returning(Lease.holder)
        async with self._write() as session:
            got: str | None = await session.scalar(stmt)
        return got == holder

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up at shutdown (only its holder can); False if not held by it."""
        async with self._write() as session:
            result = await session.execute(
                update(Lease)
                .where(Lease.name == name, Lease.holder == holder)
                .values(expires_at=_EPOCH)
                .returning(Lease.name)
                .execution_options(synchronize_session=False)
            )
            return result.first() is not None

    # --- router state -----------------------------------------------------------------------

    async def load_episode_state(self, episode_id: str) -> str | None:
        """The router's stored ``EpisodeState`` JSON for an episode, or ``None``."""
        async with self._read() as session:
            return await session.scalar(
                select(RouterEpisode.state_json).where(RouterEpisode.episode_id == episode_id)
            )

    async def save_episode_state(self, episode_id: str, state_json: str, now: datetime) -> None:
        """Store (insert or replace) the router's ``EpisodeState`` JSON for an episode."""
        now = require_aware(now, "now")
        stmt = self._insert(RouterEpisode).values(
            episode_id=episode_id, state_json=state_json, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["episode_id"],
            set_={"state_json": stmt.excluded.state_json, "updated_at": stmt.excluded.updated_at},
        )
        async with self._write() as session:
            await session.execute(stmt)

    async def load_episode_states(self, episode_ids: Iterable[str]) -> dict[str, str]:
        """The router's stored JSON for many episodes at once (missing ones are left out)."""
        ids = sorted(set(episode_ids))
        found: dict[str, str] = {}
        async with self._read() as session:
            for chunk in _chunks(ids, BATCH_SIZE):
                rows = await session.execute(
                    select(RouterEpisode.episode_id, RouterEpisode.state_json).where(
                        RouterEpisode.episode_id.in_(chunk)
                    )
                )
                found.update({row.episode_id: row.state_json for row in rows})
        return found

    async def save_episode_states(self, states: Mapping[str, str], now: datetime) -> None:
        """Store (insert or replace) many episodes' router JSON in one transaction."""
        now = require_aware(now, "now")
        rows = [
            {"episode_id": episode_id, "state_json": text, "updated_at": now}
            for episode_id, text in sorted(states.items())
        ]
        if not rows:
            return
        # One statement executed for many rows (executemany): compiled once and cached, where a
        # multi-row VALUES clause would be a new statement for every batch length.
        stmt = self._insert(_table(RouterEpisode))
        stmt = stmt.on_conflict_do_update(
            index_elements=["episode_id"],
            set_={"state_json": stmt.excluded.state_json, "updated_at": stmt.excluded.updated_at},
        )
        async with self._write() as session:
            await session.execute(stmt, rows)

    # --- liability --------------------------------------------------------------------------

    async def add_episode_fact(
        self, episode_id: str, message_id: uuid.UUID, kind: str, at: datetime
    ) -> bool:
        """Store one liability fact (``hub.liability.FactKind`` value) of an episode, if new."""
        rows = _episode_fact_rows([(episode_id, message_id, kind, at)])
        async with self._write() as session:
            return await self._insert_episode_facts(session, rows) == 1

    async def add_episode_facts(self, facts: Iterable[tuple[str, uuid.UUID, str, datetime]]) -> int:
        """Store many (episode id, message id, kind, at) facts in one transaction; new count.

        A fact already stored (same episode and message), also earlier in the batch, is left
        as it is: the first one counts.
        """
        rows = _episode_fact_rows(facts)
        if not rows:
            return 0
        async with self._write() as session:
            return await self._insert_episode_facts(session, rows)

    async def _insert_episode_facts(
        self, session: AsyncSession, rows: Sequence[dict[str, object]]
    ) -> int:
        # One cached statement for every batch, executemany (see add_deliveries): a literal
        # multi-row .values() was compiled afresh per batch, 69 ms a batch in the profile.
        facts = _table(EpisodeFact)
        result = await session.execute(
            self._insert(facts)
            .on_conflict_do_nothing(index_elements=["episode_id", "message_id"])
            .returning(facts.c.message_id),
            list(rows),
        )
        return len(result.all())

    async def episode_facts(self, episode_id: str) -> list[EpisodeFactRecord]:
        """An episode's facts in time order (then by message id)."""
        stmt = (
            select(EpisodeFact)
            .where(EpisodeFact.episode_id == episode_id)
            .order_by(EpisodeFact.at, EpisodeFact.message_id)
        )
        async with self._read() as session:
            return [
                EpisodeFactRecord(message_id=row.message_id, kind=row.kind, at=row.at)
                for row in (await session.scalars(stmt)).all()
            ]

    # --- dashboard and reports --------------------------------------------------------------

    async def totals(self) -> Totals:
        """Whole-store counts for summaries: deliveries, receipted, open, digests per level."""
        async with self._read() as session:
            deliveries = await session.scalar(select(func.count()).select_from(Delivery))
            receipted = await session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.receipted_at.is_not(None))
            )
            acknowledged = await session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.acknowledged_at.is_not(None))
            )
            levels = await session.execute(
                select(Escalation.level, func.count()).group_by(Escalation.level)
            )
            sent = await session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status == NotificationStatus.SENT)
            )
        by_level = {int(level): int(n) for level, n in levels.all()}
        return Totals(
            deliveries=int(deliveries or 0),
            receipted=int(receipted or 0),
            acknowledged=int(acknowledged or 0),
            escalations_by_level=by_level,
            notifications_sent=int(sent or 0),
        )

    async def unreceipted_by_unit(self, now: datetime) -> list[UnitBacklog]:
        """Per unit with unreceipted deliveries: the count and the oldest arrival, by unit.

        Acknowledged deliveries count: acknowledging stops the ladder, not the need to receipt.
        """
        now = require_aware(now, "now")
        stmt = (
            select(
                Delivery.recipient,
                func.count().label("unreceipted"),
                func.min(Delivery.routed_at).label("oldest"),
            )
            .where(Delivery.receipted_at.is_(None))
            .group_by(Delivery.recipient)
            .order_by(Delivery.recipient)
        )
        async with self._read() as session:
            rows = (await session.execute(stmt)).all()
        return [
            UnitBacklog(
                unit=row.recipient,
                count=int(row.unreceipted),
                oldest_routed_at=row.oldest,
                oldest_age=now - row.oldest,
            )
            for row in rows
        ]

    async def unreceipted_arrivals(self, unit: str | None = None) -> list[UnreceiptedArrival]:
        """Arrival times of unreceipted deliveries (of one unit, or all), by unit and time.

        Feed them to :func:`count_by_arrival_day_kind` for the weekday/weekend split.
        """
        stmt = select(Delivery.delivery_id, Delivery.recipient, Delivery.routed_at).where(
            Delivery.receipted_at.is_(None)
        )
        if unit is not None:
            stmt = stmt.where(Delivery.recipient == unit)
        stmt = stmt.order_by(Delivery.recipient, Delivery.routed_at, Delivery.delivery_id)
        async with self._read() as session:
            rows = (await session.execute(stmt)).all()
        return [
            UnreceiptedArrival(
                delivery_id=row.delivery_id, unit=row.recipient, routed_at=row.routed_at
            )
            for row in rows
        ]

    # --- ops alerts -------------------------------------------------------------------------

    async def raise_alert(self, alert: OpsAlert) -> bool:
        """Store an ops alert, if its id is new (raising the same alert again is a no-op)."""
        async with self._write() as session:
            new = await session.scalar(
                self._insert(OpsAlertRow)
                .values(
                    alert_id=alert.alert_id,
                    kind=alert.kind,
                    severity=alert.severity.value,
                    summary=alert.summary,
                    details_json=json.dumps(dict(alert.details), sort_keys=True),
                    raised_at=alert.raised_at,
                )
                .on_conflict_do_nothing(index_elements=["alert_id"])
                .returning(OpsAlertRow.alert_id)
            )
        return new is not None

    async def resolve_alert(self, alert_id: uuid.UUID, at: datetime) -> bool:
        """Close an open alert; False if unknown or already resolved."""
        at = require_aware(at, "at")
        async with self._write() as session:
            changed = await session.scalar(
                update(OpsAlertRow)
                .where(OpsAlertRow.alert_id == alert_id, OpsAlertRow.resolved_at.is_(None))
                .values(resolved_at=at)
                .returning(OpsAlertRow.alert_id)
                .execution_options(synchronize_session=False)
            )
        return changed is not None

    async def open_alerts(self) -> list[OpsAlertRecord]:
        """Unresolved alerts, oldest first."""
        stmt = (
            select(OpsAlertRow)
            .where(OpsAlertRow.resolved_at.is_(None))
            .order_by(OpsAlertRow.raised_at, OpsAlertRow.alert_id)
        )
        async with self._read() as session:
            return [_alert(row) for row in (await session.scalars(stmt)).all()]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

_EPOCH: Final = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def _checked_digest(
    escalation: NewEscalation,
    delivery_ids: Iterable[uuid.UUID],
    skipped: Iterable[SkippedLevel],
) -> tuple[NewEscalation, list[uuid.UUID], list[SkippedLevel]]:
    """A digest to record, its ids and skipped levels sorted and unique, or ``ValueError``."""
    ids = sorted(set(delivery_ids), key=_UUID_ORDER)  # UUID order, compared in C
    if not ids:
        msg = "delivery_ids: must not be empty"
        raise ValueError(msg)
    skipped_rows = sorted(set(skipped))
    for index, item in enumerate(skipped_rows):
        if not 1 <= item.level < escalation.level:
            msg = f"skipped[{index}].level: must be between 1 and the digest's level - 1"
            raise ValueError(msg)
    return escalation, ids, skipped_rows


def _table(model: type[Base]) -> Table:
    """The Core table of a model: Core executemany keeps statements cached (no ORM bulk path)."""
    return cast("Table", model.__table__)


def _chunks(items: Sequence[_T], size: int) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_limit(limit: int) -> None:
    if limit < 1:
        msg = "limit: must be at least 1"
        raise ValueError(msg)


def _safe_error(error: str | None) -> str | None:
    if error is None:
        return None
    return mask_identity_numbers(error)[:_ERROR_MAX]


def _delivery_values(row: NewDelivery) -> dict[str, object]:
    return {
        "delivery_id": row.delivery_id,
        "message_id": row.message_id,
        "message_type": row.message_type,
        "episode_id": row.episode_id,
        "recipient": row.recipient,
        "recipient_kind": row.recipient_kind,
        "role": row.role,
        "routed_at": row.routed_at,
        "due_at": row.due_at,
        "directory_version": row.directory_version,
        "envelope_json": row.envelope_json,
        "highest_level_sent": 0,
    }


def _receipt_values(receipt: ReceiptMessage) -> dict[str, object]:
    return {
        "receipt_id": receipt.receipt_id,
        "delivery_id": receipt.delivery_id,
        "unit": receipt.unit,
        "receipted_at": require_aware(receipt.receipted_at, "receipted_at"),
        "receipted_by": receipt.receipted_by,
        "channel": receipt.channel.value,
    }


def _episode_fact_rows(
    facts: Iterable[tuple[str, uuid.UUID, str, datetime]],
) -> list[dict[str, object]]:
    """Insert parameters of facts, the first of each (episode id, message id) only."""
    first_of_each: dict[tuple[str, uuid.UUID], dict[str, object]] = {}
    for episode_id, message_id, kind, at in facts:
        row = {
            "episode_id": episode_id,
            "message_id": message_id,
            "kind": str(kind),
            "at": require_aware(at, "at"),
        }
        first_of_each.setdefault((episode_id, message_id), row)
    return list(first_of_each.values())


def _stored_delivery(row: Delivery) -> StoredDelivery:
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
        receipted_at=row.receipted_at,
        receipt_id=row.receipt_id,
        highest_level_sent=row.highest_level_sent,
        acknowledged_at=row.acknowledged_at,
    )


def _stored_escalation(row: Escalation) -> StoredEscalation:
    return StoredEscalation(
        escalation_id=row.escalation_id,
        unit=row.unit,
        level=row.level,
        target=row.target,
        scanned_at=row.scanned_at,
        delivery_count=row.delivery_count,
        oldest_due_at=row.oldest_due_at,
        payload_json=row.payload_json,
        published_at=row.published_at,
    )


def _notification(row: Notification) -> NotificationRecord:
    return NotificationRecord(
        notification_id=row.notification_id,
        escalation_id=row.escalation_id,
        channel=NotificationChannel(row.channel),
        recipient=row.recipient,
        status=NotificationStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


def _alert(row: OpsAlertRow) -> OpsAlertRecord:
    details = json.loads(row.details_json)
    return OpsAlertRecord(
        alert_id=row.alert_id,
        kind=row.kind,
        severity=row.severity,
        summary=row.summary,
        details={str(k): str(v) for k, v in details.items()},
        raised_at=row.raised_at,
        resolved_at=row.resolved_at,
    )
