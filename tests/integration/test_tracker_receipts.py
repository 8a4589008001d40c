"""The tracker's batched receipts on a real broker and a real store (SQLite and PostgreSQL).

One batch of receipts mixes a first receipt, its repeat, a receipt by the wrong unit, one for a
delivery that never comes and one for a delivery routed only after the receipt was read. Each
is handled as the per-record consume guard handled it: applied, dead-lettered at once as
``wrong_recipient``, retried and then dead-lettered as ``unknown_delivery``, or applied once
its delivery arrived; and every offset is committed.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from consumers.tracker import RECEIPTS_GROUP
from hub.app import Hub, Part
from hub.calendar import STOCKHOLM
from hub.clock import FixedClock
from hub.publishing import Outgoing
from hub.settings import KafkaSettings, Settings
from tests.support.envelopes import make_envelope
from tests.support.kafka import read_topic
from tests.support.wait import eventually
from topics.catalogue import MessageType
from topics.codec import decode, encode
from topics.deadletter import DeadLetterReason
from topics.ids import delivery_id_for
from topics.messages import DeadLetter, OpsAlert, Receipt, ReceiptChannel
from topics.topics import TopicName

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_BIS = "SE2120000000-SYN2580BIS"
STAFF = "SE2321000230-SYNSTAFF01"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


def receipt_of(delivery_id: uuid.UUID, unit: str, at: datetime) -> Receipt:
    return Receipt(
        receipt_id=uuid.uuid4(),
        delivery_id=delivery_id,
        unit=unit,
        receipted_at=at,
        receipted_by=STAFF,
        channel=ReceiptChannel.KAFKA,
    )


async def committed_behind(settings: Settings, group: str, topic: str) -> int:
    """How many records of ``topic`` the consumer group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata partitions_for_topic reads
        ids = consumer.partitions_for_topic(topic) or set()
        partitions = [TopicPartition(topic, p) for p in sorted(ids)]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group)
        return sum(
            end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
        )
    finally:
        await consumer.stop()
        await admin.close()


async def test_a_batch_of_receipts_is_applied_refused_and_retried_per_record(
    bootstrap: str, topic_prefix: str, store_url: str
) -> None:
    """First receipt applied, its repeat a no-op, wrong unit dead-lettered at once, unknown
    delivery dead-lettered after the guard's retries, a late delivery's receipt applied, and
    the receipts group committed every record."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        database_url=store_url,
    )
    clock = FixedClock(local("2027-01-15T16:00:00"))  # a Friday
    hub = await Hub.open(settings, clock, parts={Part.ROUTER, Part.TRACKER})
    first = make_envelope(MessageType.ADMISSION_NOTICE, episode_id="sunderby:first")
    late = make_envelope(MessageType.ADMISSION_NOTICE, episode_id="sunderby:late")
    at = clock.now() + timedelta(minutes=5)
    good = receipt_of(delivery_id_for(first.message_id, HERTSO), HERTSO, at)
    wrong = receipt_of(delivery_id_for(first.message_id, LULEA_BIS), HERTSO, at)
    unknown = receipt_of(uuid.uuid4(), HERTSO, at)
    for_late = receipt_of(delivery_id_for(late.message_id, HERTSO), HERTSO, at)
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, hub.broker.running), bool, what="broker up")
        await hub.outbox.send(TopicName.CARE_EPISODE_EVENTS, first, "sunderby:first")
        await eventually(hub.store.count_open, lambda n: n == 3, what="3 open deliveries")
        await hub.outbox.send_many(
            [
                Outgoing(TopicName.RECEIPTS, r, HERTSO)
                for r in (good, good, wrong, unknown, for_late)
            ]
        )
        await eventually(hub.store.count_open, lambda n: n == 2, what="first receipt applied")
        # The late delivery's receipt has been read (with the first) and waits for it.
        await hub.outbox.send(TopicName.CARE_EPISODE_EVENTS, late, "sunderby:late")
        stored = await eventually(
            lambda: hub.store.delivery(for_late.delivery_id),
            lambda d: d is not None and d.receipt_id is not None,
            what="the late delivery receipted",
        )
        letters = await read_topic(
            bootstrap, settings.topic(TopicName.DEAD_LETTER), expected=2, timeout_s=30
        )
        await eventually(
            lambda: committed_behind(
                settings, settings.group(RECEIPTS_GROUP), settings.topic(TopicName.RECEIPTS)
            ),
            lambda n: n == 0,
            what="every receipt committed",
        )
        alerts = await read_topic(bootstrap, settings.topic(TopicName.OPS_ALERTS), expected=1)
        receipted = await hub.store.delivery(good.delivery_id)
        still_open = await hub.store.delivery(wrong.delivery_id)
    finally:
        stop.set()
        await runner

    assert stored is not None
    assert stored.receipt_id == for_late.receipt_id
    assert receipted is not None
    assert (receipted.receipt_id, receipted.receipted_at) == (good.receipt_id, good.receipted_at)
    assert still_open is not None
    assert still_open.receipt_id is None
    dead = sorted(
        (decode(DeadLetter, r.value or b"", dict(r.headers)) for r in letters),
        key=lambda d: d.reason,
    )
    assert [(d.reason, d.attempts, d.stage) for d in dead] == [
        (DeadLetterReason.UNKNOWN_DELIVERY, 5, "tracker.receipts"),
        (DeadLetterReason.WRONG_RECIPIENT, 1, "tracker.receipts"),
    ]
    assert [d.original_value for d in dead] == [encode(unknown)[0], encode(wrong)[0]]
    assert [decode(OpsAlert, r.value or b"", dict(r.headers)).kind for r in alerts] == [
        "dead_letter.wrong_recipient"
    ]
