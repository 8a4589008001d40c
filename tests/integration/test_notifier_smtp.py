"""The notifier against a real SMTP server process (aiosmtpd), a real HTTP server and the SQL store.

No Kafka here: the notifier is driven directly. What is proved: one e-mail per recipient with
the Swedish subject; a digest handled twice sends nothing more; SMTP down for a while and then
up delivers exactly once with every attempt recorded; a transient SMTP reply is retried;
STARTTLS with AUTH and implicit TLS work against a real TLS server; webhooks succeed and recover
from a 500.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from hub.clock import SystemClock
from hub.notify.breaker import CircuitBreaker
from hub.notify.channels import EmailChannel, WebhookChannel
from hub.notify.errors import NotificationRefused, NotificationsPending
from hub.notify.service import (
    NotificationState,
    Notifier,
    SendRetryPolicy,
    notifications_for,
)
from hub.notify.store_log import StoreNotificationLog
from hub.settings import SmtpSettings
from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.models import NotificationAttempt
from hub.store.repository import Store
from tests.support.notify import (
    SmtpSink,
    WebhookReceiver,
    free_port,
    make_escalation,
    port_open,
    smtp_sink_process,
)
from tests.support.wait import eventually

JOUR = "jour.lulea@example.org"
CHEF = "chef.lulea@example.org"
SUBJECT = "Jour/beredskap: okvitterade meddelanden hos Biståndsenheten Luleå (3 st)"
QUICK = SendRetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=0.1, budget_s=5)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store in a temporary folder."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()


async def attempts(store: Store) -> list[tuple[str, str | None]]:
    """Every stored attempt as (outcome, error), in order."""
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(NotificationAttempt.outcome, NotificationAttempt.error).order_by(
                NotificationAttempt.id
            )
        )
        return [(row.outcome, row.error) for row in rows]


async def listening(sink: SmtpSink) -> None:
    async def probe() -> tuple[bool, int | None]:
        assert sink.process is not None
        return await port_open(sink.port), sink.process.poll()

    await eventually(
        probe, lambda seen: seen[0] or seen[1] is not None, timeout_s=20, what="sink listening"
    )
    assert sink.process is not None
    assert sink.process.poll() is None, sink.output()


def email_notifier(
    store: Store,
    smtp: SmtpSettings,
    *,
    retry: SendRetryPolicy = QUICK,
    tls_context: ssl.SSLContext | None = None,
) -> Notifier:
    return Notifier(
        [EmailChannel(smtp, tls_context=tls_context)],
        StoreNotificationLog(store),
        SystemClock(),
        retry=retry,
        breaker_factory=lambda: CircuitBreaker(failure_threshold=1000),
    )


async def test_one_email_per_recipient_with_the_swedish_subject(
    tmp_path: Path, store: Store
) -> None:
    """Two addresses: two e-mails, each to its address, Swedish subject, deterministic Message-ID;
    the notifications are stored as sent with one attempt each."""
    escalation = make_escalation(recipients=(JOUR, CHEF))
    with smtp_sink_process(tmp_path) as sink:
        await listening(sink)
        notifier = email_notifier(store, SmtpSettings(port=sink.port))
        await notifier.handle(escalation, datetime.now(UTC))
        messages = await sink.messages_now()

    assert sorted((m["To"], m["Subject"]) for m in messages) == [
        (CHEF, SUBJECT),
        (JOUR, SUBJECT),
    ]
    ids = {n.recipient: n.notification_id for n in notifications_for(escalation)}
    assert sorted(m["Message-ID"] for m in messages) == sorted(
        f"<{ids[address]}@example.se>" for address in (JOUR, CHEF)
    )
    for notification_id in ids.values():
        record = await store.notification(notification_id)
        assert record is not None
        assert (record.status.value, record.attempts, record.last_error) == ("sent", 1, None)
    assert "Biståndsenheten Luleå har 3 okvitterade meddelanden" in sink.output()


async def test_the_same_digest_twice_sends_one_email(tmp_path: Path, store: Store) -> None:
    """A redelivered digest is recognised by its notification ids: still one e-mail."""
    escalation = make_escalation()
    with smtp_sink_process(tmp_path) as sink:
        await listening(sink)
        notifier = email_notifier(store, SmtpSettings(port=sink.port))
        first = await notifier.handle(escalation, datetime.now(UTC))
        # A fresh notifier (a restarted process) sharing only the store.
        again = await email_notifier(store, SmtpSettings(port=sink.port)).handle(
            escalation, datetime.now(UTC)
        )
        messages = await sink.messages_now()
    assert [m["To"] for m in messages] == [JOUR]
    assert (len(first.sent), again.sent, again.skipped) == (1, (), first.sent)
    assert await attempts(store) == [("sent", None)]


async def test_smtp_down_then_up_delivers_once_within_one_handling(
    tmp_path: Path, store: Store
) -> None:
    """The server is down when the digest arrives and comes up while the notifier retries:
    one e-mail, and the attempts read failed (connect error) ... then sent."""
    port = free_port()
    sink = SmtpSink(port, tmp_path / "mail", tmp_path / "sink.log")
    patient = SendRetryPolicy(max_attempts=40, base_delay_s=0.1, max_delay_s=0.3, budget_s=60)
    notifier = email_notifier(store, SmtpSettings(port=port, timeout_s=2), retry=patient)
    escalation = make_escalation()
    handling = asyncio.create_task(notifier.handle(escalation, datetime.now(UTC)))
    try:
        await eventually(
            lambda: attempts(store), lambda seen: len(seen) >= 2, what="two failed attempts"
        )
        sink.start()
        async with asyncio.timeout(60):
            result = await handling
    finally:
        handling.cancel()
        sink.stop()

    assert [m["To"] for m in sink.messages()] == [JOUR]
    recorded = await attempts(store)
    assert recorded[-1] == ("sent", None)
    assert set(recorded[:-1]) == {("failed", "SMTPConnectError")}
    (notification_id,) = result.sent
    record = await store.notification(notification_id)
    assert record is not None
    assert (record.status.value, record.attempts) == ("sent", len(recorded))


async def test_smtp_down_longer_raises_for_the_guard_and_the_retry_sends_once(
    tmp_path: Path, store: Store
) -> None:
    """Down for longer than the in-process budget: ``NotificationsPending`` (the consume guard
    retries), the notification stays pending; the next handling, with the server up, sends it
    exactly once."""
    port = free_port()
    escalation = make_escalation()
    notifier = email_notifier(store, SmtpSettings(port=port, timeout_s=2))
    with pytest.raises(NotificationsPending):
        await notifier.handle(escalation, datetime.now(UTC))
    (notification,) = notifications_for(escalation)
    pending = await store.notification(notification.notification_id)
    assert pending is not None
    assert (pending.status.value, pending.attempts) == ("pending", QUICK.max_attempts)

    with smtp_sink_process(tmp_path, port=port) as sink:
        await listening(sink)
        await notifier.handle(escalation, datetime.now(UTC))
        await notifier.handle(escalation, datetime.now(UTC))  # and a redelivery on top
        messages = await sink.messages_now()
    assert [m["To"] for m in messages] == [JOUR]
    assert await attempts(store) == [("failed", "SMTPConnectError")] * QUICK.max_attempts + [
        ("sent", None)
    ]


async def test_a_transient_smtp_reply_is_retried(tmp_path: Path, store: Store) -> None:
    """The server answers 451 to the first message: retried, one e-mail, the code recorded."""
    with smtp_sink_process(tmp_path, "--reject-first", "1") as sink:
        await listening(sink)
        await email_notifier(store, SmtpSettings(port=sink.port)).handle(
            make_escalation(), datetime.now(UTC)
        )
        messages = await sink.messages_now()
    assert [m["To"] for m in messages] == [JOUR]
    assert await attempts(store) == [("failed", "SMTPDataError 451"), ("sent", None)]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 (openssl from the system)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_tls_and_auth_against_a_real_tls_server(
    tmp_path: Path, store: Store, security: str
) -> None:
    """STARTTLS and implicit TLS, with AUTH, verified against the server's certificate."""
    cert, key = self_signed_certificate(tmp_path)
    args = ("--security", security, "--tls-cert", str(cert), "--tls-key", str(key))
    with smtp_sink_process(tmp_path, *args, "--auth", "hub:s3cret") as sink:
        await listening(sink)
        smtp = SmtpSettings(
            port=sink.port,
            security=security,
            username="hub",
            password=SecretStr("s3cret"),
        )
        context = ssl.create_default_context(cafile=str(cert))
        await email_notifier(store, smtp, tls_context=context).handle(
            make_escalation(), datetime.now(UTC)
        )
        messages = await sink.messages_now()
    assert [(m["To"], m["Subject"]) for m in messages] == [(JOUR, SUBJECT)]


async def test_wrong_smtp_password_is_a_refusal(tmp_path: Path, store: Store) -> None:
    """535 from the server is permanent: no retries, the notification failed, nothing sent."""
    cert, key = self_signed_certificate(tmp_path)
    args = ("--security", "starttls", "--tls-cert", str(cert), "--tls-key", str(key))
    escalation = make_escalation()
    with smtp_sink_process(tmp_path, *args, "--auth", "hub:s3cret") as sink:
        await listening(sink)
        smtp = SmtpSettings(
            port=sink.port, security="starttls", username="hub", password=SecretStr("wrong")
        )
        context = ssl.create_default_context(cafile=str(cert))
        with pytest.raises(NotificationRefused):
            await email_notifier(store, smtp, tls_context=context).handle(
                escalation, datetime.now(UTC)
            )
        messages = await sink.messages_now()
    assert messages == []
    assert await attempts(store) == [("failed", "SMTPAuthenticationError 535")]
    (notification,) = notifications_for(escalation)
    record = await store.notification(notification.notification_id)
    assert record is not None
    assert record.status.value == NotificationState.FAILED


async def test_webhook_delivery_and_recovery_from_a_server_error(store: Store) -> None:
    """A 2xx is success at once; a 500 is retried and the repeat carries the same key."""
    receiver = WebhookReceiver(statuses=[200, 500, 204])
    await receiver.start()
    try:
        notifier = Notifier(
            [WebhookChannel(5.0)], StoreNotificationLog(store), SystemClock(), retry=QUICK
        )
        first = make_escalation(recipients=(receiver.url("/a"),))
        await notifier.handle(first, datetime.now(UTC))
        second = make_escalation(
            escalation_id=uuid.UUID("33333333-3333-4333-8333-333333333333"),
            recipients=(receiver.url("/b"),),
        )
        await notifier.handle(second, datetime.now(UTC))
    finally:
        await receiver.close()

    assert [(path, body["count"]) for path, _, body in receiver.requests] == [
        ("/a", 3),
        ("/b", 3),
        ("/b", 3),
    ]
    keys = [headers["idempotency-key"] for _, headers, _ in receiver.requests]
    (notification_b,) = notifications_for(second)
    assert keys[1:] == [str(notification_b.notification_id)] * 2
    assert await attempts(store) == [("sent", None), ("failed", "HTTP 500"), ("sent", None)]
