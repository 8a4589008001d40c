"""The escalation scan on a real broker and a real store (SQLite and PostgreSQL, `store_url`).

What the scan publishes must fit a Kafka record however large the backlog, each digest goes out
as soon as it is recorded, and a digest an interrupted scan left in the outbox goes out with the
next scan.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from hub.app import Hub
from hub.clock import FixedClock
from hub.escalation import MAX_MESSAGE_IDS, SkippedLevel, plan_scan
from hub.scanner import escalation_message
from hub.settings import KafkaSettings, Settings
from hub.store.repository import EscalationRecorded, NewDelivery, NewEscalation, Store
from tests.support.kafka import read_topic
from tests.support.wait import eventually
from topics.codec import decode
from topics.ids import escalation_id_for
from topics.messages import Escalation
from topics.topics import TopicName

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

LULEA_HSV = "SE2120000000-SYN2580HSV"
LULEA_BIS = "SE2120000000-SYN2580BIS"
DUE = datetime(2027, 1, 18, 15, 0, tzinfo=UTC)  # a Monday, end of the 14:00 round (CET)
#: Kafka's default record limit (broker message.max.bytes, producer max_request_size).
KAFKA_RECORD_LIMIT = 1_048_576


def deliveries(unit: str, first: int, count: int) -> list[NewDelivery]:
    return [
        NewDelivery(
            delivery_id=uuid.UUID(int=n),
            message_id=uuid.UUID(int=10**9 + n),
            message_type="admission_notice",
            episode_id=f"ep-{n}",
            recipient=unit,
            recipient_kind="home_health_care",
            role="recipient",
            routed_at=DUE - timedelta(hours=2, seconds=n % 3600),
            due_at=DUE - timedelta(seconds=n % 1800),
            directory_version=1,
            envelope_json=json.dumps({"n": n}),
        )
        for n in range(first, first + count)
    ]


@asynccontextmanager
async def running_hub(bootstrap: str, topic_prefix: str, store_url: str) -> AsyncIterator[Hub]:
    """A hub with no consumers (the test drives the scanner), its broker started."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        database_url=store_url,
    )
    hub = await Hub.open(settings, FixedClock(DUE), parts=set())
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, hub.broker.running), bool, what="broker up")
        yield hub
    finally:
        stop.set()
        await runner


async def escalations_on_topic(hub: Hub, expected: int) -> list[tuple[int, Escalation]]:
    """(record size, message) of the escalations topic, once ``expected`` have arrived."""
    records = await read_topic(
        hub.settings.kafka.bootstrap_servers,
        hub.settings.topic(TopicName.ESCALATIONS),
        expected=expected,
    )
    return [(len(r.value), decode(Escalation, r.value, dict(r.headers))) for r in records]


async def test_a_backlog_of_40000_is_one_bounded_record_and_acknowledged_whole(
    bootstrap: str, topic_prefix: str, store_url: str
) -> None:
    """40,000 overdue deliveries of one unit: the old digest (every id, ~1.6 MB) was over the
    record limit, so the scan failed. Now one record well below it reaches the topic, with the
    exact count and the id of all 40,000; a repeat scan sends nothing; acknowledging the digest
    stops the ladder of all 40,000, not only of the ids the record carried."""
    rows = deliveries(LULEA_HSV, 1, 40_000)
    ids = sorted(row.delivery_id for row in rows)
    async with running_hub(bootstrap, topic_prefix, store_url) as hub:
        assert await hub.store.add_deliveries(rows) == 40_000
        first = await hub.scanner.scan(DUE)
        repeat = await hub.scanner.scan(DUE + timedelta(minutes=1))
        [(size, message)] = await escalations_on_topic(hub, expected=1)
        unpublished = await hub.store.unpublished_escalations()
        acknowledged = await hub.store.acknowledge(message.escalation_id, DUE + timedelta(hours=1))
        later = await hub.scanner.scan(DUE + timedelta(days=2))

    assert (first.open_due, first.digests, first.published) == (40_000, 1, 1)
    assert (repeat.open_due, repeat.digests, repeat.published) == (0, 0, 0)
    assert len(ids) * 39 > KAFKA_RECORD_LIMIT  # what one id costs in JSON: the old record
    assert size < 64 * 1024
    assert (message.unit, message.level, message.count) == (LULEA_HSV, 1, 40_000)
    assert message.escalation_id == escalation_id_for(LULEA_HSV, 1, ids)
    assert message.delivery_ids == tuple(ids[:MAX_MESSAGE_IDS])
    assert message.oldest_due_at == min(row.due_at for row in rows)
    assert unpublished == []
    assert acknowledged == 40_000
    assert (later.open_due, later.digests) == (0, 0)


class GatedStore(Store):
    """The hub's store, except that recording the second batch of digests first waits for the
    first batch's digest on the escalations topic: a scan that publishes only after recording
    every digest never gets past it."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub.engine)
        self.hub = hub
        self.batches = 0

    async def record_escalations(
        self, digests: Iterable[tuple[NewEscalation, Iterable[uuid.UUID], Iterable[SkippedLevel]]]
    ) -> list[EscalationRecorded]:
        self.batches += 1
        if self.batches == 2:  # the second transaction of the scan
            on_topic = await escalations_on_topic(self.hub, expected=1)
            assert len(on_topic) == 1, "the first digest was not published before the second"
        return await super().record_escalations(digests)


async def test_each_digest_is_published_as_soon_as_it_is_recorded(
    bootstrap: str, topic_prefix: str, store_url: str
) -> None:
    """Two units' digests (2 and 3 deliveries) in transactions of at most 3 deliveries: the
    first is on the topic before the second is recorded, and both are marked published."""
    async with running_hub(bootstrap, topic_prefix, store_url) as hub:
        await hub.store.add_deliveries(
            [*deliveries(LULEA_HSV, 1, 3), *deliveries(LULEA_BIS, 101, 2)]
        )
        gated = GatedStore(hub)
        hub.scanner.store = gated
        hub.scanner.record_batch = 3
        result = await hub.scanner.scan(DUE)
        on_topic = await escalations_on_topic(hub, expected=2)
        unpublished = await hub.store.unpublished_escalations()

    assert (result.digests, result.published, gated.batches) == (2, 2, 2)
    assert sorted((m.unit, m.count) for _, m in on_topic) == [(LULEA_BIS, 2), (LULEA_HSV, 3)]
    assert unpublished == []


async def test_a_digest_left_in_the_outbox_goes_out_with_the_next_scan(
    bootstrap: str, topic_prefix: str, store_url: str
) -> None:
    """A scan recorded a digest and stopped before publishing it: the next scan finds nothing
    new to record but publishes that digest and marks it published."""
    rows = deliveries(LULEA_BIS, 1, 2)
    async with running_hub(bootstrap, topic_prefix, store_url) as hub:
        await hub.store.add_deliveries(rows)
        pending = await hub.store.deliveries_due_for_next_level({0: DUE})
        (digest,) = plan_scan(pending, DUE, hub.scanner.policy)
        addressed = escalation_message(
            digest, hub.directory.current, hub.oncall, DUE, hub.settings.public_base_url
        )
        await hub.store.record_escalation(  # what the interrupted scan did
            NewEscalation.from_digest(
                digest, scanned_at=DUE, payload_json=addressed.escalation.model_dump_json()
            ),
            digest.delivery_ids,
        )
        result = await hub.scanner.scan(DUE + timedelta(minutes=1))
        [(_, message)] = await escalations_on_topic(hub, expected=1)
        unpublished = await hub.store.unpublished_escalations()

    assert (result.open_due, result.digests, result.published) == (0, 0, 1)
    assert message == addressed.escalation
    assert unpublished == []
