"""Publishing contract records: encoded by `topics.codec`, keyed, and awaited until acked.

Every publish goes through here, so a record on a hub topic always carries the schema-version
and message-type headers, and a caller never continues (or commits an offset) before the broker
has the record. Many records are sent at once and awaited together: the idempotent producer keeps
their order per partition, and the batch costs one round trip instead of one per record.

Records go straight to the broker's connected ``AIOKafkaProducer`` (the one FastStream built with
the settings of `hub.broker`: acks=all, idempotence). FastStream's ``broker.publish`` adds a
publish command, middleware and codec per record and costs about twice aiokafka's ``send``
(``bench/bench_publish.py``); the hub's records are already encoded, so none of that is needed.
When the broker has no real producer (FastStream's in-memory test broker), the outbox publishes
through ``broker.publish`` as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faststream.exceptions import FastStreamException
from faststream.kafka import KafkaBroker

from hub.broker import keyed_partitioner
from hub.settings import Settings
from topics.codec import WireModel, encode
from topics.topics import TopicName

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer


def connected_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The broker's started aiokafka producer, or ``None`` (not connected, or a test broker).

    FastStream 0.7 keeps it at ``broker.config.producer._producer.producer``; that path is
    private, so any change in it falls back to ``broker.publish`` instead of failing.
    """
    state: Any = getattr(getattr(broker.config, "producer", None), "_producer", None)
    try:
        producer = getattr(state, "producer", None)
    except FastStreamException:  # not connected: ``IncorrectState``
        return None
    if producer is None or getattr(producer, "_closed", True):
        return None
    return producer


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish: where, what, and under which key."""

    topic: TopicName
    record: WireModel
    key: str


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record already encoded by `topics.codec` (for hot paths that splice bytes)."""

    topic: TopicName
    body: bytes
    headers: dict[str, str]
    key: str


class Outbox:
    """The hub's one way to put records on its topics."""

    def __init__(self, broker: KafkaBroker, settings: Settings) -> None:
        self._broker = broker
        self._settings = settings

    def topic(self, name: TopicName) -> str:
        """The full name of a contract topic in this environment."""
        return self._settings.topic(name)

    async def send(self, topic: TopicName, record: WireModel, key: str) -> None:
        """Publish one record and return once the broker has acknowledged it."""
        await self.send_many([Outgoing(topic, record, key)])

    async def send_many(self, items: Iterable[Outgoing | Encoded]) -> int:
        """Publish records together; return (how many) once every one is acknowledged."""
        records = [self._prepared(item) for item in items]
        if not records:
            return 0
        producer = connected_producer(self._broker)
        if producer is None:
            futures = [
                await self._broker.publish(
                    r.body, r.topic, key=r.key, headers=r.headers, no_confirm=True
                )
                for r in records
            ]
        else:
            futures = await _send_in_batches(producer, records)
        await asyncio.gather(*futures)
        return len(records)

    def _prepared(self, item: Outgoing | Encoded) -> _Record:
        body, headers = (
            (item.body, item.headers) if isinstance(item, Encoded) else encode(item.record)
        )
        return _Record(self._settings.topic(item.topic), item.key.encode(), body, headers)


@dataclass(frozen=True, slots=True)
class _Record:
    topic: str
    key: bytes
    body: bytes
    headers: dict[str, str]

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in self.headers.items()]


async def _send_in_batches(
    producer: AIOKafkaProducer, records: list[_Record]
) -> list[asyncio.Future[Any]]:
    """Hand records to the producer one batch per partition; the futures of their acks.

    Records are placed with the producer's own partitioner (`hub.broker.keyed_partitioner`) and
    appended to a ``BatchBuilder`` per partition, in input order: one ``send_batch`` per
    partition instead of one ``send`` per record (each of which awaits, allocates a future and
    re-reads the topic's metadata). A record too big for a batch goes through ``send``, after
    the records before it, so the order per partition is kept.
    """
    by_partition: dict[tuple[str, int], list[_Record]] = {}
    partitions: dict[str, list[int]] = {}
    for record in records:
        known = partitions.get(record.topic)
        if known is None:
            known = partitions[record.topic] = sorted(await producer.partitions_for(record.topic))
        index = keyed_partitioner(record.key, known, known)
        by_partition.setdefault((record.topic, index), []).append(record)
    futures: list[asyncio.Future[Any]] = []
    for (topic, partition), rows in by_partition.items():
        batch = producer.create_batch()
        for record in rows:
            headers = record.kafka_headers()
            if batch.append(key=record.key, value=record.body, timestamp=None, headers=headers):
                continue
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=record.key, value=record.body, timestamp=None, headers=headers):
                    continue
            futures.append(
                await producer.send(
                    topic, record.body, key=record.key, partition=partition, headers=headers
                )
            )
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures
