"""The store's tables as SQLAlchemy 2 declarative models (the schema; queries are in repository).

Conventions:

* Every instant is a :class:`UtcDateTime`: aware datetimes in, aware UTC datetimes out, on both
  databases. Naive datetimes are refused (``ValueError``), never guessed at.
* Ids are the hub's deterministic UUIDs (``topics.ids``), so replaying a topic re-inserts the
  same keys and ``ON CONFLICT DO NOTHING`` drops the duplicates.
* JSON travels as text (``*_json`` columns): the owner of each document (router, scanner)
  serialises it with its pydantic model; the store never looks inside.
* Foreign keys only where the writer of both rows is the same process and order is guaranteed
  (receipts and escalations point at deliveries). ``deliveries.receipt_id``,
  ``deliveries.episode_id`` and ``notifications.escalation_id`` have none: those rows are written
  by different consumers reading different topics, which may run in either order.
* Partial indexes keep the hot queries proportional to the open work, not to history: the
  escalation scan reads only the unreceipted, unacknowledged deliveries that reach their next
  level (``ix_deliveries_open_level_{0,1,2}_due``), the ops views page the open ones by due time
  (``ix_deliveries_open_due``), the unit backlog only unreceipted ones
  (``ix_deliveries_unreceipted``).

The Alembic migrations in ``hub/store/migrations`` must produce exactly this schema; a test
compares them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "HSA_ID_LENGTH",
    "AttemptOutcome",
    "Base",
    "Delivery",
    "EpisodeFact",
    "Escalation",
    "EscalationDelivery",
    "Lease",
    "Notification",
    "NotificationAttempt",
    "NotificationChannel",
    "NotificationStatus",
    "OpsAlertRow",
    "Receipt",
    "RouterEpisode",
    "UtcDateTime",
]

#: ``SE`` + 10 digits + ``-`` + up to 31 characters is 44; room to spare.
HSA_ID_LENGTH: Final = 64
_EPISODE_ID_LENGTH: Final = 64
_ERROR_LENGTH: Final = 500
_SQLITE_TEXT_FORMAT_LENGTH: Final = len("2027-03-28T01:00:00.000000Z")
_OPEN: Final = "receipted_at IS NULL AND acknowledged_at IS NULL"
#: The scan's per-level indexes cover highest_level_sent 0 to 2: below the top of any ladder
#: (``hub.escalation.MAX_LEVELS`` is 3), so every delivery that can still climb is in one.
_MAX_LEVEL_SENT_INDEXED: Final = 2


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, stored in UTC.

    PostgreSQL: ``TIMESTAMP WITH TIME ZONE``. SQLite has no date type, so the instant is stored
    as fixed-width ISO-8601 UTC text, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Fixed width, one zone and
    a four-digit year make the text order the time order, so ``<``, ``ORDER BY``, ``MIN`` and
    index range scans in SQL are correct; a bound parameter is converted the same way. Compare
    only with bound values (the hub passes ``now``), never with SQLite's own time functions,
    whose text has another format.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(_SQLITE_TEXT_FORMAT_LENGTH))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            msg = "timestamp: must be a datetime"
            raise TypeError(msg)
        if value.tzinfo is None or value.utcoffset() is None:
            msg = "timestamp: must be a timezone-aware datetime (UTC)"
            raise ValueError(msg)
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(parsed, datetime):
            msg = "timestamp: the database returned a value that is not a date-time"
            raise TypeError(msg)
        if parsed.tzinfo is None:  # only ever written as UTC
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


class NotificationChannel(StrEnum):
    """How a digest leaves the hub."""

    EMAIL = "email"
    WEBHOOK = "webhook"


class NotificationStatus(StrEnum):
    """Where a notification stands: waiting (and retried), delivered, or given up on."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class AttemptOutcome(StrEnum):
    """What one send attempt of a notification did."""

    SENT = "sent"
    FAILED = "failed"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so constraints have stable, known names."""

    metadata: ClassVar[MetaData] = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class RouterEpisode(Base):
    """The router's state of one inpatient stay (*vårdtillfälle*): ``EpisodeState`` as JSON."""

    __tablename__ = "router_episodes"

    episode_id: Mapped[str] = mapped_column(String(_EPISODE_ID_LENGTH), primary_key=True)
    state_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Delivery(Base):
    """One message routed to one recipient unit: the thing that must be receipted.

    ``routed_at`` is when it reached the unit (the ladder's "arrived"); ``due_at`` the end of
    the first reading round after that. ``envelope_json`` is the secure-side copy of the
    message, shown only to its recipient unit. ``highest_level_sent`` is 0 until a first
    escalation level is recorded, and only ever rises.
    """

    __tablename__ = "deliveries"

    delivery_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    message_id: Mapped[uuid.UUID]
    message_type: Mapped[str] = mapped_column(String(40))
    episode_id: Mapped[str | None] = mapped_column(String(_EPISODE_ID_LENGTH))
    recipient: Mapped[str] = mapped_column(String(HSA_ID_LENGTH))
    recipient_kind: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    routed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    directory_version: Mapped[int] = mapped_column(Integer)
    envelope_json: Mapped[str] = mapped_column(Text)
    receipted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    receipt_id: Mapped[uuid.UUID | None]
    highest_level_sent: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("highest_level_sent >= 0", name="level_not_negative"),
        # The escalation scan: open deliveries by due time. Receipted or acknowledged rows are
        # not in the index at all, so the scan's cost follows the open work, not the history.
        Index(
            "ix_deliveries_open_due",
            "due_at",
            sqlite_where=text("receipted_at IS NULL AND acknowledged_at IS NULL"),
            postgresql_where=text("receipted_at IS NULL AND acknowledged_at IS NULL"),
        ),
        # The escalation scan proper: one small partial index per level sent below the top,
        # by due time. A scan asks, per level h, for highest_level_sent = h AND due_at <=
        # now - offset(h + 1), with h written as a literal so both databases can prove the
        # index applies. The index of a level then holds only the open deliveries waiting at
        # it: a scan with nothing new reads (and PostgreSQL's planner expects) next to nothing.
        # One composite index (highest_level_sent, due_at) would do for SQLite, but there
        # PostgreSQL misjudges "highest_level_sent = 0" (true of all the history) and walks
        # ix_deliveries_open_due instead, i.e. every open delivery.
        *(
            Index(
                f"ix_deliveries_open_level_{level}_due",
                "due_at",
                sqlite_where=text(f"{_OPEN} AND highest_level_sent = {level}"),
                postgresql_where=text(f"{_OPEN} AND highest_level_sent = {level}"),
            )
            for level in range(_MAX_LEVEL_SENT_INDEXED + 1)
        ),
        # The unit inbox pull: a unit's deliveries in arrival order, keyset-paged.
        Index("ix_deliveries_recipient_routed", "recipient", "routed_at", "delivery_id"),
        # The backlog per unit (count and oldest arrival of the unreceipted).
        Index(
            "ix_deliveries_unreceipted",
            "recipient",
            "routed_at",
            sqlite_where=text("receipted_at IS NULL"),
            postgresql_where=text("receipted_at IS NULL"),
        ),
    )


class Receipt(Base):
    """A unit's confirmation that it received a delivery and started planning (*kvittens*).

    Every accepted receipt is kept, also a second one for an already receipted delivery; only
    the first sets ``deliveries.receipted_at``.
    """

    __tablename__ = "receipts"

    receipt_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.delivery_id"), index=True)
    unit: Mapped[str] = mapped_column(String(HSA_ID_LENGTH))
    receipted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    receipted_by: Mapped[str] = mapped_column(String(HSA_ID_LENGTH))
    channel: Mapped[str] = mapped_column(String(16))


class Escalation(Base):
    """One digest of one unit's overdue deliveries at one level (an outbox row until published).

    ``escalation_id`` is the digest id (``topics.ids.escalation_id_for``); ``payload_json`` the
    ``topics.messages.Escalation`` to publish; ``published_at`` stays empty until it was.
    """

    __tablename__ = "escalations"

    escalation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    unit: Mapped[str] = mapped_column(String(HSA_ID_LENGTH))
    level: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(32))
    scanned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivery_count: Mapped[int] = mapped_column(Integer)
    oldest_due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    payload_json: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("level >= 1", name="level_positive"),
        Index(
            "ix_escalations_unpublished",
            "scanned_at",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
    )


class EscalationDelivery(Base):
    """That level ``level`` was reached for a delivery, and by which digest: never twice.

    ``skipped`` marks a level passed while no scan ran: recorded so it is never sent later,
    though no digest was sent for it (``hub.escalation`` explains why).
    """

    __tablename__ = "escalation_deliveries"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deliveries.delivery_id"), primary_key=True
    )
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    escalation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escalations.escalation_id"), index=True
    )
    skipped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Notification(Base):
    """One digest to one recipient address over one channel, and how sending it went.

    ``last_error`` is a short, patient-free reason (the store masks personnummer again).
    """

    __tablename__ = "notifications"

    notification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    escalation_id: Mapped[uuid.UUID] = mapped_column(index=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(
        String(16), default=NotificationStatus.PENDING.value, server_default="pending"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(String(_ERROR_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(_in("channel", NotificationChannel), name="channel_known"),
        CheckConstraint(_in("status", NotificationStatus), name="status_known"),
        Index(
            "ix_notifications_pending",
            "created_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )


class NotificationAttempt(Base):
    """One try at sending a notification: when, how it went, how long it took."""

    __tablename__ = "notification_attempts"

    # BIGINT on PostgreSQL; SQLite's rowid alias must be spelled INTEGER.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.notification_id"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(_ERROR_LENGTH))
    duration_ms: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint(_in("outcome", AttemptOutcome), name="outcome_known"),)


class EpisodeFact(Base):
    """One liability-relevant event of an episode (``hub.liability.FactKind``), one per message."""

    __tablename__ = "episode_facts"

    episode_id: Mapped[str] = mapped_column(String(_EPISODE_ID_LENGTH), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class Lease(Base):
    """A named, time-limited exclusive right (e.g. "the escalation scanner"), held by one holder."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OpsAlertRow(Base):
    """An ops alert (``topics.messages.OpsAlert``): open until ``resolved_at`` is set."""

    __tablename__ = "ops_alerts"

    alert_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(String(_ERROR_LENGTH))
    details_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index(
            "ix_ops_alerts_open",
            "raised_at",
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )
