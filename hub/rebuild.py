"""Rebuild the SQL store from the topics (`hub store rebuild`): Kafka is the source of truth.

Reads each topic from the beginning with a throw-away consumer (no group, nothing committed),
in this order, applying the same pure steps the consumers use:

1. care-episode events → the router's episode records (`hub.deliveries.plan`, nothing published;
   the current directory is used, so a directory changed since routing can give other records),
   saved `BATCH` episodes a transaction;
2. deliveries → `deliveries` rows with their due time and the episodes' liability facts, a
   batch of `BATCH` records at a time (two transactions, as the tracker stores them);
3. receipts → `receipts`, marking deliveries receipted, `BATCH` receipts a transaction
   (`Store.record_receipts`: the same outcomes as one at a time, in order).

Inserts are idempotent, so a rebuild over a partly filled store is safe. Records that do not
decode are counted and skipped (they are already in the dead-letter topic from the first pass),
and so are receipts for an unknown delivery or from a unit that was not the recipient.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hub.calendar import CalendarPolicy
from hub.deliveries import EpisodeRecord, plan
from hub.directory import Directory
from hub.errors import HubError
from hub.settings import Settings
from hub.store.repository import NewDelivery, ReceiptOutcome, Store
from hub.tracking import delivery_due_at, episode_fact
from topics.codec import decode, decode_delivery
from topics.messages import Envelope, Receipt
from topics.topics import TopicName

BATCH = 500
#: Receipts the live tracker would dead-letter: counted as refused, not applied.
_REFUSED_RECEIPTS = frozenset({ReceiptOutcome.UNKNOWN_DELIVERY, ReceiptOutcome.WRONG_RECIPIENT})
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
    await _replay_episodes(settings, store, directory, now, progress, report)
    await _replay_deliveries(settings, store, calendar, progress, report)
    await _replay_receipts(settings, store, progress, report)
    return report


def _count(kind: dict[str, int], topic: str, n: int = 1) -> None:
    kind[topic] = kind.get(topic, 0) + n


async def _replay_episodes(
    settings: Settings,
    store: Store,
    directory: Directory,
    now: datetime,
    progress: Progress | None,
    report: RebuildReport,
) -> None:
    topic = settings.topic(TopicName.CARE_EPISODE_EVENTS)
    episodes: dict[str, EpisodeRecord] = {}
    async for body, headers in _records(settings, TopicName.CARE_EPISODE_EVENTS, progress):
        _count(report.read, topic)
        try:
            envelope = decode(Envelope, body, headers)
            if envelope.episode_id is None:
                continue
            result = plan(envelope, episodes.get(envelope.episode_id), directory)
        except HubError:
            _count(report.refused, topic)
            continue
        if result.record is not None:
            episodes[envelope.episode_id] = result.record
            _count(report.applied, topic)
    states = sorted(episodes.items())
    for start in range(0, len(states), BATCH):
        chunk = states[start : start + BATCH]
        await store.save_episode_states({e: record.to_json() for e, record in chunk}, now)


async def _replay_deliveries(
    settings: Settings,
    store: Store,
    calendar: CalendarPolicy,
    progress: Progress | None,
    report: RebuildReport,
) -> None:
    topic = settings.topic(TopicName.DELIVERIES)
    rows: list[NewDelivery] = []
    facts: list[tuple[str, UUID, str, datetime]] = []

    async def flush() -> None:
        _count(report.applied, topic, await store.add_deliveries(rows))
        await store.add_episode_facts(facts)
        rows.clear()
        facts.clear()

    async for body, headers in _records(settings, TopicName.DELIVERIES, progress):
        _count(report.read, topic)
        try:
            delivery, envelope_json = decode_delivery(body, headers)
        except HubError:
            _count(report.refused, topic)
            continue
        due_at = delivery_due_at(delivery, calendar)
        rows.append(NewDelivery.from_message(delivery, due_at, envelope_json))
        fact = episode_fact(delivery)
        if fact is not None and delivery.message.episode_id is not None:
            facts.append(
                (delivery.message.episode_id, delivery.message.message_id, fact.kind, fact.at)
            )
        if len(rows) >= BATCH:
            await flush()
    if rows:
        await flush()


async def _replay_receipts(
    settings: Settings, store: Store, progress: Progress | None, report: RebuildReport
) -> None:
    topic = settings.topic(TopicName.RECEIPTS)
    receipts: list[Receipt] = []

    async def flush() -> None:
        for outcome in await store.record_receipts(receipts):
            _count(report.refused if outcome in _REFUSED_RECEIPTS else report.applied, topic)
        receipts.clear()

    async for body, headers in _records(settings, TopicName.RECEIPTS, progress):
        _count(report.read, topic)
        try:
            receipts.append(decode(Receipt, body, headers))
        except HubError:
            _count(report.refused, topic)
            continue
        if len(receipts) >= BATCH:
            await flush()
    if receipts:
        await flush()
