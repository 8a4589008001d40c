"""The reference inbox consumer on a real broker: one unit's deliveries, receipted over Kafka.

The hub's router and tracker run as in production; the inbox of Hertsö health centre runs as
its own FastStream app (``consumers.inbox.build_app``). An admission notice makes three
deliveries; only Hertsö's may be receipted, once, with the inbox's deterministic receipt id,
and the inbox's log lines carry no personnummer.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from consumers.inbox import build_app
from hub.app import Hub, Part
from hub.calendar import STOCKHOLM
from hub.clock import FixedClock
from hub.ops.receipts import receipt_id_for
from hub.settings import KafkaSettings, Settings
from tests.support.envelopes import make_envelope
from tests.support.kafka import read_topic
from tests.support.wait import eventually
from topics.catalogue import MessageType
from topics.codec import decode
from topics.identifiers import contains_identity_number
from topics.ids import delivery_id_for
from topics.messages import Receipt, ReceiptChannel
from topics.topics import TopicName

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_HSV = "SE2120000000-SYN2580HSV"
LULEA_BIS = "SE2120000000-SYN2580BIS"
NURSE = "SE2321000230-SYNNURSE7"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_inbox_receipts_only_its_own_deliveries(
    bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Hertsö's inbox receipts Hertsö's delivery, once, and leaves the other units' alone."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
    )
    clock = FixedClock(local("2027-01-15T16:00:00"))
    hub = await Hub.open(settings, clock, parts={Part.ROUTER, Part.TRACKER})
    inbox_app, inbox_broker = build_app(settings, HERTSO, NURSE, clock)
    episode = f"sunderby:{uuid.uuid4().hex[:8]}"
    admission = make_envelope(MessageType.ADMISSION_NOTICE, episode_id=episode)
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    with capture_logs() as logs:
        try:
            async with inbox_broker:
                await inbox_broker.start()
                await eventually(lambda: asyncio.sleep(0, hub.broker.running), bool, what="up")
                await hub.outbox.send(TopicName.CARE_EPISODE_EVENTS, admission, episode)
                await eventually(
                    hub.store.count_open, lambda n: n == 2, what="Hertsö receipted, 2 open"
                )
                records = await read_topic(
                    bootstrap, settings.topic(TopicName.RECEIPTS), expected=2, timeout_s=5.0
                )
                stored = {
                    unit: await hub.store.delivery(delivery_id_for(admission.message_id, unit))
                    for unit in (HERTSO, LULEA_HSV, LULEA_BIS)
                }
        finally:
            stop.set()
            await runner
    assert inbox_app.broker is inbox_broker

    delivery = delivery_id_for(admission.message_id, HERTSO)
    expected = Receipt(
        receipt_id=receipt_id_for(delivery, ReceiptChannel.KAFKA),
        delivery_id=delivery,
        unit=HERTSO,
        receipted_at=local("2027-01-15T16:00:00"),
        receipted_by=NURSE,
        channel=ReceiptChannel.KAFKA,
    )
    assert [decode(Receipt, r.value, dict(r.headers)) for r in records] == [expected]
    receipted = {unit: row.receipted_at if row else None for unit, row in stored.items()}
    assert receipted == {HERTSO: expected.receipted_at, LULEA_HSV: None, LULEA_BIS: None}
    inbox_lines = [e for e in logs if str(e["event"]).startswith("inbox.")]
    assert [(e["event"], e["delivery_id"]) for e in inbox_lines] == [
        ("inbox.delivery", str(delivery)),
        ("inbox.receipted", str(delivery)),
    ]
    assert inbox_lines[0]["message_type"] == "admission_notice"
    assert inbox_lines[0]["due_at"] == "2027-01-16T10:00:00+00:00"
    assert not any(contains_identity_number(repr(e)) for e in inbox_lines)
