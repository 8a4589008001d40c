"""The one place that builds Kafka clients, so every producer and consumer is safe by default.

aiokafka's defaults are not: an unset ``acks`` becomes 1 and idempotence is off, and FastStream
subscribers default to ``AckPolicy.ACK_FIRST`` (auto-commit before the handler ran). Here every
producer is ``acks="all"`` with idempotence, and every subscriber commits only after its handler
returned (``NACK_ON_ERROR``: on an exception the partition is rewound to the message, so it is
processed again instead of skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

from aiokafka.partitioner import murmur2
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from hub.settings import Settings


@lru_cache(maxsize=65_536)
def _key_index(key: bytes, partitions: int) -> int:
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def keyed_partitioner(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """aiokafka's default partitioner (murmur2, as the Java client), with the hash cached.

    aiokafka's murmur2 is pure Python (about 30 µs a key on this hardware); the hub's keys repeat
    (a recipient unit, an episode), so each is hashed once per partition count. Every hub record
    has a key; a keyless one gets the first available partition.
    """
    if key is None:
        return (available or all_partitions)[0]
    return all_partitions[_key_index(key, len(all_partitions))]


PRODUCER_OPTIONS: Final[dict[str, Any]] = {
    "acks": "all",
    "enable_idempotence": True,
    # Batch a little: throughput at no cost to the guarantee (the send still awaits the ack).
    "linger_ms": 1,
    "max_batch_size": 256 * 1024,
    "compression_type": None,
    "partitioner": keyed_partitioner,
}

SUBSCRIBER_OPTIONS: Final[dict[str, Any]] = {
    "ack_policy": AckPolicy.NACK_ON_ERROR,
    "auto_offset_reset": "earliest",
    # A handler's bounded retries must finish well inside this, or the group evicts the member.
    "max_poll_interval_ms": 300_000,
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 3_000,
}


def build_broker(settings: Settings, **overrides: Any) -> KafkaBroker:
    """A FastStream Kafka broker with the hub's safe producer settings."""
    options: dict[str, Any] = {
        **PRODUCER_OPTIONS,
        "client_id": settings.kafka.client_id,
        "request_timeout_ms": settings.kafka.request_timeout_ms,
        "graceful_timeout": 15.0,
        # FastStream logs every record at INFO ("Received", "Processed"): debug noise here.
        "log_level": logging.DEBUG,
        # Through the stdlib, so `hub.logs` renders (and redacts) FastStream's records too.
        "logger": logging.getLogger("faststream"),
        **overrides,
    }
    return KafkaBroker(settings.kafka.bootstrap_servers, **options)


async def undecoded(message: StreamMessage[Any]) -> Any:
    """A subscriber ``decoder`` that leaves the body as bytes (a list of bytes for a batch).

    The hub's handlers decode records themselves with ``topics.codec`` (which refuses what
    FastStream's default would guess at); the default batch decoder would also parse every
    record again and try each body as JSON, for nothing.
    """
    return message.body


def subscriber_options(group_id: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``broker.subscriber``: a consumer group, commit after effect."""
    return {**SUBSCRIBER_OPTIONS, "group_id": group_id, **overrides}
