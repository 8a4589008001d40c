"""The escalation scan's indexes: open deliveries waiting at each level sent, by due time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

The scan asks only for the open deliveries that reach their next level
(``highest_level_sent = h AND due_at <= now - offset(h + 1)``, one range per level, ``h`` a
literal), so a scan with nothing new to send reads no row however large the backlog. One partial
index per level sent (0, 1, 2: below the top of any ladder) rather than one on
``(highest_level_sent, due_at)``: each holds only the deliveries waiting at its level, so
PostgreSQL's planner, which takes ``highest_level_sent = 0`` for nearly every row (the history),
still sees it is the cheap one. Written out by hand and
independent of ``hub.store.models``, like ``0001_initial.py``.

The indexes cover open deliveries only, so building them costs seconds even under a large history.
It is built inside the migration's transaction (``CREATE INDEX CONCURRENTLY`` cannot be): on
PostgreSQL, writes to ``deliveries`` wait for that long.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_OPEN = "receipted_at IS NULL AND acknowledged_at IS NULL"


_LEVELS_SENT = (0, 1, 2)


def upgrade() -> None:
    for level in _LEVELS_SENT:
        where = sa.text(f"{_OPEN} AND highest_level_sent = {level}")
        op.create_index(
            f"ix_deliveries_open_level_{level}_due",
            "deliveries",
            ["due_at"],
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    for level in _LEVELS_SENT:
        op.drop_index(f"ix_deliveries_open_level_{level}_due", table_name="deliveries")
