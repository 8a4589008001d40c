"""The notifier consumer on the real broker: digests from the topic to e-mails in a real SMTP sink.

Duplicated digests send one e-mail; a poison record is dead-lettered; the SMTP server down for a
while and then back delivers exactly once (the consume guard retries the digest).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from consumers.notifier import build_app, build_notifier
from hub.clock import SystemClock
from hub.notify.breaker import CircuitBreaker
from hub.notify.service import AttemptOutcome, MemoryNotificationLog, SendRetryPolicy
from hub.provision import ensure_topics
from hub.settings import KafkaSettings, Settings, SmtpSettings
from tests.support.kafka import read_topic
from tests.support.notify import SmtpSink, free_port, make_escalation, port_open
from tests.support.wait import eventually
from topics.codec import decode, encode
from topics.deadletter import DeadLetterReason
from topics.messages import DeadLetter, Escalation
from topics.topics import TopicName

pytestmark = pytest.mark.kafka

UNIT = "SE2120000000-SYN2580BIS"


async def publish(settings: Settings, *records: Escalation | bytes) -> None:
    """Put digests (or raw bytes with escalation headers) on the escalations topic by unit."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for record in records:
            if isinstance(record, bytes):
                body, headers = record, {"schema-version": "1", "message-type": "escalation"}
            else:
                body, headers = encode(record)
            await producer.send_and_wait(
                settings.topic(TopicName.ESCALATIONS),
                body,
                key=UNIT.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
    finally:
        await producer.stop()


async def start_sink(sink: SmtpSink) -> None:
    sink.start()
    await eventually(lambda: port_open(sink.port), bool, timeout_s=20, what="sink listening")


def digest(name: str, recipient: str) -> Escalation:
    return make_escalation(
        escalation_id=uuid.uuid5(uuid.NAMESPACE_URL, name), recipients=(recipient,)
    )


async def test_digests_from_the_topic_become_one_email_each(
    bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A, A again, poison, B: e-mails to A's and B's recipients once each, one dead letter."""
    sink = SmtpSink(free_port(), tmp_path / "mail", tmp_path / "sink.log")
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        smtp=SmtpSettings(port=sink.port),
    )
    await ensure_topics(settings)
    first, second = digest("a", "jour@example.org"), digest("b", "chef@example.org")
    await publish(settings, first, first, b'{"escalation_id": ', second)
    await start_sink(sink)
    try:
        _, broker = build_app(settings, MemoryNotificationLog())
        async with broker:
            await broker.start()
            # B is last on the unit's partition: once its e-mail is in, A's repeat was handled.
            messages = await eventually(
                sink.messages_now,
                lambda seen: any(m["To"] == "chef@example.org" for m in seen),
                what="B's e-mail",
            )
            letters = await read_topic(bootstrap, settings.topic(TopicName.DEAD_LETTER), expected=1)
    finally:
        sink.stop()
    assert [m["To"] for m in messages] == ["jour@example.org", "chef@example.org"]
    dead = [decode(DeadLetter, r.value, dict(r.headers)) for r in letters]
    assert [(d.reason, d.stage) for d in dead] == [(DeadLetterReason.UNDECODABLE, "notifier")]


async def test_smtp_down_then_back_delivers_once(
    bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The sink starts only after the notifier has failed to connect: the digest is retried by
    the notifier and the consume guard, and exactly one e-mail arrives."""
    sink = SmtpSink(free_port(), tmp_path / "mail", tmp_path / "sink.log")
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        smtp=SmtpSettings(port=sink.port, timeout_s=2),
    )
    await ensure_topics(settings)
    log = MemoryNotificationLog()
    clock = SystemClock()
    notifier = build_notifier(
        settings,
        log,
        clock,
        retry=SendRetryPolicy(max_attempts=20, base_delay_s=0.1, max_delay_s=0.3, budget_s=20),
        breaker_factory=lambda: CircuitBreaker(5, timedelta(seconds=1)),
    )
    escalation = digest("down", "jour@example.org")
    await publish(settings, escalation)
    _, broker = build_app(settings, log, clock, notifier=notifier)
    try:
        async with broker:
            await broker.start()

            async def failed_attempts() -> int:
                return sum(a.outcome is AttemptOutcome.FAILED for a in log.attempts)

            await eventually(failed_attempts, lambda n: n >= 2, what="failed attempts")
            await start_sink(sink)
            await eventually(lambda: _sent(log), bool, what="the notification marked sent")
    finally:
        sink.stop()
    assert [m["To"] for m in sink.messages()] == ["jour@example.org"]
    outcomes = [(a.outcome, a.error) for a in log.attempts]
    assert outcomes[-1] == (AttemptOutcome.SENT, None)
    assert set(outcomes[:-1]) == {(AttemptOutcome.FAILED, "SMTPConnectError")}


async def _sent(log: MemoryNotificationLog) -> bool:
    return bool(log.sent_at)
