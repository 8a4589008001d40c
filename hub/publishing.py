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

from faststream.kafka import KafkaBroker

from hub.settings import Settings
from topics.codec import WireModel, encode
from topics.topics import TopicName

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import RecordMetadata


def connected_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The broker's started aiokafka producer, or ``None`` (not connected, or a test broker).

    FastStream 0.7 keeps it at ``broker.config.producer._producer.producer``; that path is
    private, so any change in it falls back to ``broker.publish`` instead of failing.
    """
    state: Any = getattr(getattr(broker.config, "producer", None), "_producer", None)
    producer = getattr(state, "producer", None)
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

    async def send(self, topic: TopicName, record: WireModel, key: str) -> RecordMetadata:
        """Publish one record and return once the broker has acknowledged it."""
        (metadata,) = await self.send_many([Outgoing(topic, record, key)])
        return metadata

    async def send_many(self, items: Iterable[Outgoing | Encoded]) -> list[RecordMetadata]:
        """Publish records together; return once every one is acknowledged (in input order)."""
        producer = connected_producer(self._broker)
        futures: list[asyncio.Future[RecordMetadata]] = []
        for item in items:
            body, headers = (
                (item.body, item.headers) if isinstance(item, Encoded) else encode(item.record)
            )
            topic, key = self._settings.topic(item.topic), item.key.encode()
            if producer is not None:
                future = await producer.send(
                    topic, body, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
                )
            else:
                future = await self._broker.publish(
                    body, topic, key=key, headers=headers, no_confirm=True
                )
            futures.append(future)
        if not futures:
            return []
        return list(await asyncio.gather(*futures))
