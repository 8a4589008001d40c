"""Rebuild the SQL store from the topics (`hub store rebuild`): Kafka is the source of truth.

Reads each topic from the beginning with a throw-away consumer (no group, nothing committed),
in this order, applying the same pure steps the consumers use:

1. care-episode events → the router's episode records (`hub.deliveries.plan`, nothing published;
   the current directory is used, so a directory changed since routing can give other records);
2. deliveries → `deliveries` rows with their due time and the episodes' liability facts;
3. receipts → `receipts`, marking deliveries receipted.

Inserts are idempotent, so a rebuild over a partly filled store is safe. Records that do not
decode are counted and skipped (they are already in the dead-letter topic from the first pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hub.calendar import CalendarPolicy
from hub.deliveries import EpisodeRecord, plan
from hub.directory import Directory
from hub.errors import HubError
from hub.settings import Settings
from hub.store.repository import NewDelivery, Store
from hub.tracking import delivery_due_at, episode_fact
from topics.codec import decode
from topics.messages import Delivery, Envelope, Receipt
from topics.topics import TopicName

BATCH = 500
Progress = Callable[[str, int, int], None]  # (topic, done, total)


@dataclass
class RebuildReport:
    """Counts per topic: records read, applied, and refused (undecodable or unroutable)."""

    read: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)


async def _records(
    settings: Settings, name: TopicName, progress: Progress | None
) -> AsyncIterator[tuple[bytes, dict[str, str]]]:
    topic = settings.topic(name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    # Let aiokafka's no-group coordinator task start: cancelling it before its first step (an
    # early stop) raises CancelledError out of consumer.stop().
    await asyncio.sleep(0)
    try:
        partitions = [TopicPartition(topic, p) for p in await _partition_ids(settings, topic)]
        if not partitions:
            return
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(ends.values())
        done = 0
        while await _behind(consumer, ends):
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            for records in batch.values():
                for record in records:
                    done += 1
                    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers}
                    yield record.value or b"", headers
            if progress is not None:
                progress(topic, done, total)
    finally:
        await consumer.stop()


async def _partition_ids(settings: Settings, topic: str) -> list[int]:
    # A consumer without a subscription has no metadata for the topic: ask an admin client.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(int(p["partition"]) for t in described for p in t.get("partitions", []))


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether any partition's position is still before the end offset taken at the start."""
    for tp, end in ends.items():
        if int(await consumer.position(tp)) < end:
            return True
    return False


async def rebuild(
    settings: Settings,
    store: Store,
    directory: Directory,
    calendar: CalendarPolicy,
    now: datetime,
    progress: Progress | None = None,
) -> RebuildReport:
    """Replay the hub's topics into ``store`` (see the module docstring)."""
    report = RebuildReport()

    def count(kind: dict[str, int], name: TopicName) -> None:
        topic = settings.topic(name)
        kind[topic] = kind.get(topic, 0) + 1

    episodes: dict[str, EpisodeRecord] = {}
    async for body, headers in _records(settings, TopicName.CARE_EPISODE_EVENTS, progress):
        count(report.read, TopicName.CARE_EPISODE_EVENTS)
        try:
            envelope = decode(Envelope, body, headers)
            if envelope.episode_id is None:
                continue
            result = plan(envelope, episodes.get(envelope.episode_id), directory)
        except HubError:
            count(report.refused, TopicName.CARE_EPISODE_EVENTS)
            continue
        if result.record is not None:
            episodes[envelope.episode_id] = result.record
            count(report.applied, TopicName.CARE_EPISODE_EVENTS)
    for episode_id, record in episodes.items():
        await store.save_episode_state(episode_id, record.to_json(), now)

    rows: list[NewDelivery] = []
    deliveries = settings.topic(TopicName.DELIVERIES)
    async for body, headers in _records(settings, TopicName.DELIVERIES, progress):
        count(report.read, TopicName.DELIVERIES)
        try:
            delivery = decode(Delivery, body, headers)
        except HubError:
            count(report.refused, TopicName.DELIVERIES)
            continue
        rows.append(NewDelivery.from_message(delivery, delivery_due_at(delivery, calendar)))
        fact = episode_fact(delivery)
        if fact is not None and delivery.message.episode_id is not None:
            await store.add_episode_fact(
                delivery.message.episode_id, delivery.message.message_id, fact.kind, fact.at
            )
        if len(rows) >= BATCH:
            new = await store.add_deliveries(rows)
            report.applied[deliveries] = report.applied.get(deliveries, 0) + new
            rows = []
    if rows:
        new = await store.add_deliveries(rows)
        report.applied[deliveries] = report.applied.get(deliveries, 0) + new

    async for body, headers in _records(settings, TopicName.RECEIPTS, progress):
        count(report.read, TopicName.RECEIPTS)
        try:
            receipt = decode(Receipt, body, headers)
        except HubError:
            count(report.refused, TopicName.RECEIPTS)
            continue
        await store.record_receipt(receipt)
        count(report.applied, TopicName.RECEIPTS)
    return report
