"""The initial schema of the hub's store.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Written out by hand and independent of ``hub.store.models``: a later model change must not
rewrite history. Types are spelled as stored: instants are ``TIMESTAMP WITH TIME ZONE`` on
PostgreSQL and 27-character ISO-8601 UTC text on SQLite (``hub.store.models.UtcDateTime``);
UUIDs are native on PostgreSQL and 32 hex characters on SQLite.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# The storage form of hub.store.models.UtcDateTime, frozen here as of this revision.
_INSTANT = sa.String(27).with_variant(sa.DateTime(timezone=True), "postgresql")
_UUID = sa.Uuid()
_HSA_ID = sa.String(64)
_EPISODE_ID = sa.String(64)
_ERROR = sa.String(500)
_OPEN = "receipted_at IS NULL AND acknowledged_at IS NULL"


def _partial(where: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}


def upgrade() -> None:
    op.create_table(
        "router_episodes",
        sa.Column("episode_id", _EPISODE_ID, nullable=False),
        sa.Column("state_json", sa.Text(), nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("episode_id", name="pk_router_episodes"),
    )

    op.create_table(
        "deliveries",
        sa.Column("delivery_id", _UUID, nullable=False),
        sa.Column("message_id", _UUID, nullable=False),
        sa.Column("message_type", sa.String(40), nullable=False),
        sa.Column("episode_id", _EPISODE_ID, nullable=True),
        sa.Column("recipient", _HSA_ID, nullable=False),
        sa.Column("recipient_kind", sa.String(32), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("routed_at", _INSTANT, nullable=False),
        sa.Column("due_at", _INSTANT, nullable=False),
        sa.Column("directory_version", sa.Integer(), nullable=False),
        sa.Column("envelope_json", sa.Text(), nullable=False),
        sa.Column("receipted_at", _INSTANT, nullable=True),
        sa.Column("receipt_id", _UUID, nullable=True),
        sa.Column("highest_level_sent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("acknowledged_at", _INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_deliveries"),
        sa.CheckConstraint("highest_level_sent >= 0", name="ck_deliveries_level_not_negative"),
    )
    op.create_index("ix_deliveries_open_due", "deliveries", ["due_at"], **_partial(_OPEN))
    op.create_index(
        "ix_deliveries_recipient_routed", "deliveries", ["recipient", "routed_at", "delivery_id"]
    )
    op.create_index(
        "ix_deliveries_unreceipted",
        "deliveries",
        ["recipient", "routed_at"],
        **_partial("receipted_at IS NULL"),
    )

    op.create_table(
        "receipts",
        sa.Column("receipt_id", _UUID, nullable=False),
        sa.Column("delivery_id", _UUID, nullable=False),
        sa.Column("unit", _HSA_ID, nullable=False),
        sa.Column("receipted_at", _INSTANT, nullable=False),
        sa.Column("receipted_by", _HSA_ID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", name="pk_receipts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.delivery_id"],
            name="fk_receipts_delivery_id_deliveries",
        ),
    )
    op.create_index("ix_receipts_delivery_id", "receipts", ["delivery_id"])

    op.create_table(
        "escalations",
        sa.Column("escalation_id", _UUID, nullable=False),
        sa.Column("unit", _HSA_ID, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("scanned_at", _INSTANT, nullable=False),
        sa.Column("delivery_count", sa.Integer(), nullable=False),
        sa.Column("oldest_due_at", _INSTANT, nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("published_at", _INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("escalation_id", name="pk_escalations"),
        sa.CheckConstraint("level >= 1", name="ck_escalations_level_positive"),
    )
    op.create_index(
        "ix_escalations_unpublished",
        "escalations",
        ["scanned_at"],
        **_partial("published_at IS NULL"),
    )

    op.create_table(
        "escalation_deliveries",
        sa.Column("delivery_id", _UUID, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("escalation_id", _UUID, nullable=False),
        sa.Column("skipped", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", "level", name="pk_escalation_deliveries"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.delivery_id"],
            name="fk_escalation_deliveries_delivery_id_deliveries",
        ),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalations.escalation_id"],
            name="fk_escalation_deliveries_escalation_id_escalations",
        ),
    )
    op.create_index(
        "ix_escalation_deliveries_escalation_id", "escalation_deliveries", ["escalation_id"]
    )

    op.create_table(
        "notifications",
        sa.Column("notification_id", _UUID, nullable=False),
        sa.Column("escalation_id", _UUID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(2048), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", _ERROR, nullable=True),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("sent_at", _INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("notification_id", name="pk_notifications"),
        sa.CheckConstraint(
            "channel IN ('email', 'webhook')", name="ck_notifications_channel_known"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name="ck_notifications_status_known"
        ),
    )
    op.create_index("ix_notifications_escalation_id", "notifications", ["escalation_id"])
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["created_at"],
        **_partial("status = 'pending'"),
    )

    op.create_table(
        "notification_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("notification_id", _UUID, nullable=False),
        sa.Column("attempted_at", _INSTANT, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", _ERROR, nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_attempts"),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.notification_id"],
            name="fk_notification_attempts_notification_id_notifications",
        ),
        sa.CheckConstraint(
            "outcome IN ('sent', 'failed')", name="ck_notification_attempts_outcome_known"
        ),
    )
    op.create_index(
        "ix_notification_attempts_notification_id", "notification_attempts", ["notification_id"]
    )

    op.create_table(
        "episode_facts",
        sa.Column("episode_id", _EPISODE_ID, nullable=False),
        sa.Column("message_id", _UUID, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("episode_id", "message_id", name="pk_episode_facts"),
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )

    op.create_table(
        "ops_alerts",
        sa.Column("alert_id", _UUID, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("details_json", sa.Text(), server_default="{}", nullable=False),
        sa.Column("raised_at", _INSTANT, nullable=False),
        sa.Column("resolved_at", _INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name="pk_ops_alerts"),
    )
    op.create_index(
        "ix_ops_alerts_open", "ops_alerts", ["raised_at"], **_partial("resolved_at IS NULL")
    )


def downgrade() -> None:
    for table in (
        "ops_alerts",
        "leases",
        "episode_facts",
        "notification_attempts",
        "notifications",
        "escalation_deliveries",
        "escalations",
        "receipts",
        "deliveries",
        "router_episodes",
    ):
        op.drop_table(table)
