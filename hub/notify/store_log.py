"""The notifier's ``NotificationLog`` over the SQL store (``notifications`` and
``notification_attempts``, via ``hub.store.repository.Store``).

Each call is one or two of the store's transactions, committed before it returns, so what the
notifier recorded survives a crash: an attempt first makes sure the notification row exists
(``upsert_notification`` is ``INSERT ... ON CONFLICT DO NOTHING``), then logs the attempt.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from hub.notify.service import AttemptOutcome
from hub.store.models import AttemptOutcome as StoredOutcome
from hub.store.models import NotificationChannel
from hub.store.repository import NewNotification, Store

__all__ = ["StoreNotificationLog"]


class StoreNotificationLog:
    """Records notifications and attempts in the hub's SQL store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def status(self, notification_id: UUID) -> str | None:
        """The stored status (``pending``, ``sent``, ``failed``), or ``None``."""
        record = await self._store.notification(notification_id)
        return None if record is None else record.status.value

    async def record_attempt(
        self,
        notification_id: UUID,
        *,
        escalation_id: UUID,
        channel: str,
        recipient: str,
        outcome: AttemptOutcome,
        error: str | None,
        duration_ms: int,
        at: datetime,
    ) -> None:
        """Create the notification (pending) if new, then log the attempt."""
        await self._store.upsert_notification(
            NewNotification(
                notification_id=notification_id,
                escalation_id=escalation_id,
                channel=NotificationChannel(channel),
                recipient=recipient,
                created_at=at,
            )
        )
        await self._store.record_attempt(
            notification_id,
            attempted_at=at,
            outcome=StoredOutcome(outcome.value),
            duration_ms=duration_ms,
            error=error,
        )

    async def mark_sent(self, notification_id: UUID, at: datetime) -> None:
        """Pending → sent. (The store leaves a ``failed`` row failed, even when a replay of the
        digest later got it through: its attempts show the final ``sent``.)"""
        await self._store.mark_sent(notification_id, at)

    async def mark_failed(self, notification_id: UUID, error: str) -> None:
        """Pending → failed (refused for good)."""
        await self._store.mark_failed(notification_id, error)
