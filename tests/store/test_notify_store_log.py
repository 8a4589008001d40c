"""The notifier's log over the SQL store, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hub.notify.service import AttemptOutcome
from hub.notify.store_log import StoreNotificationLog
from hub.store.models import NotificationChannel, NotificationStatus
from hub.store.repository import NotificationRecord, Store

NOW = datetime(2026, 12, 26, 12, 0, tzinfo=UTC)
ESCALATION = uuid.UUID("22222222-2222-4222-8222-222222222222")


async def test_attempts_create_the_notification_and_sent_is_recorded(store: Store) -> None:
    """The first attempt creates the row (pending); attempts are counted; sent ends it."""
    log = StoreNotificationLog(store)
    notification_id = uuid.uuid4()
    assert await log.status(notification_id) is None
    for at, outcome, error in (
        (NOW, AttemptOutcome.FAILED, "SMTPConnectError"),
        (NOW + timedelta(seconds=2), AttemptOutcome.SENT, None),
    ):
        await log.record_attempt(
            notification_id,
            escalation_id=ESCALATION,
            channel="email",
            recipient="jour@example.org",
            outcome=outcome,
            error=error,
            duration_ms=12,
            at=at,
        )
        if outcome is AttemptOutcome.FAILED:
            assert await log.status(notification_id) == "pending"
    await log.mark_sent(notification_id, NOW + timedelta(seconds=2))
    assert await store.notification(notification_id) == NotificationRecord(
        notification_id=notification_id,
        escalation_id=ESCALATION,
        channel=NotificationChannel.EMAIL,
        recipient="jour@example.org",
        status=NotificationStatus.SENT,
        attempts=2,
        last_error=None,
        created_at=NOW,
        sent_at=NOW + timedelta(seconds=2),
    )
    assert await log.status(notification_id) == "sent"


async def test_a_refusal_is_recorded_as_failed_with_its_reason(store: Store) -> None:
    """A permanent refusal leaves the notification failed, with the error class and code."""
    log = StoreNotificationLog(store)
    notification_id = uuid.uuid4()
    await log.record_attempt(
        notification_id,
        escalation_id=ESCALATION,
        channel="webhook",
        recipient="https://sms.example.org/hook",
        outcome=AttemptOutcome.FAILED,
        error="HTTP 404",
        duration_ms=3,
        at=NOW,
    )
    await log.mark_failed(notification_id, "HTTP 404")
    record = await store.notification(notification_id)
    assert record is not None
    assert (record.status, record.attempts, record.last_error) == (
        NotificationStatus.FAILED,
        1,
        "HTTP 404",
    )
