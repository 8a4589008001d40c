"""Publishing contract records: encoded by `topics.codec`, keyed, and awaited until acked.

Every publish goes through here, so a record on a hub topic always carries the schema-version
and message-type headers, and a caller never continues (or commits an offset) before the broker
has the record. Many records are sent at once and awaited together: the idempotent producer keeps
their order per partition, and the batch costs one round trip instead of one per record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from hub.settings import Settings
from topics.codec import WireModel, encode
from topics.topics import TopicName

if TYPE_CHECKING:
    from aiokafka.structs import RecordMetadata


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
        futures: list[asyncio.Future[RecordMetadata]] = []
        for item in items:
            body, headers = (
                (item.body, item.headers) if isinstance(item, Encoded) else encode(item.record)
            )
            future = await self._broker.publish(
                body,
                self._settings.topic(item.topic),
                key=item.key.encode(),
                headers=headers,
                no_confirm=True,
            )
            futures.append(future)
        if not futures:
            return []
        return list(await asyncio.gather(*futures))
