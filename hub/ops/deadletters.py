"""How many records the dead-letter topic holds, for ``/metrics``.

The dead-letter topic keeps records for ever (``retention.ms = -1``), so the sum over its
partitions of (end offset - beginning offset) is the number of refused messages still held.
Read from the broker at scrape time with a short-lived client and a bound on the wait, rather
than from a counter in some process, so the figure is the same whichever replica is scraped
and survives restarts. The count says nothing about whether someone has looked at them: that
is what the open ``dead_letter.*`` ops alerts are for.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from hub.logs import get_logger
from hub.settings import Settings
from topics.topics import TopicName

__all__ = ["DeadLetterCounter", "KafkaDeadLetterCounter"]

log = get_logger(__name__)


class DeadLetterCounter(Protocol):
    """Something that knows how many dead letters are held (None: cannot tell right now)."""

    async def count(self) -> int | None: ...


class KafkaDeadLetterCounter:
    """Counts the records on this environment's dead-letter topic via its offsets."""

    def __init__(self, settings: Settings, timeout_s: float = 3.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s

    async def count(self) -> int | None:
        """The number of records held, or None when the broker did not answer in time."""
        topic = self._settings.topic(TopicName.DEAD_LETTER)
        common = {
            "bootstrap_servers": self._settings.kafka.bootstrap_servers,
            "client_id": f"{self._settings.kafka.client_id}-ops-metrics",
            "request_timeout_ms": int(self._timeout_s * 1000) + 1000,
        }
        admin = AIOKafkaAdminClient(**common)
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **common)
        try:
            async with asyncio.timeout(self._timeout_s):
                # The admin client asks the broker for the partitions; a bare consumer's
                # metadata would not know the topic until it subscribed.
                await admin.start()
                described = await admin.describe_topics([topic])
                found = described[0]["partitions"] if described else []
                if not found:
                    return 0
                await consumer.start()
                assigned = [TopicPartition(topic, int(p["partition"])) for p in found]
                first = await consumer.beginning_offsets(assigned)
                end = await consumer.end_offsets(assigned)
                return sum(int(end[tp]) - int(first[tp]) for tp in assigned)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("ops.dead_letter_count_failed", error_class=type(exc).__name__)
            return None
        finally:
            await consumer.stop()
            await admin.close()
