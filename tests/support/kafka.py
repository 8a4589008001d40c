"""Small helpers over raw aiokafka for integration tests: create topics, read a topic back."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topic(
    bootstrap: str,
    name: str,
    *,
    partitions: int = 1,
    replication: int = 1,
    configs: dict[str, str] | None = None,
) -> None:
    """Create one topic and wait until its partitions have leaders."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, replication, topic_configs=configs or {})]
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = await admin.describe_topics([name])
            parts = described[0]["partitions"] if described else []
            if len(parts) == partitions and all(p["leader"] >= 0 for p in parts):
                return
            await asyncio.sleep(0.1)
        msg = f"topic {name} has no leaders after 30 s"
        raise AssertionError(msg)
    finally:
        await admin.close()


async def partition_leader(
    bootstrap: str, topic: str, partition: int = 0, *, exclude: int | None = None
) -> int:
    """The node id leading one partition (other than ``exclude``), once metadata names one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    seen: object = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            described = await admin.describe_topics([topic])
            seen = described
            for part in described[0].get("partitions", []) if described else []:
                leader = int(part["leader"])
                if part["partition"] == partition and leader >= 0 and leader != exclude:
                    return leader
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    msg = f"{topic}[{partition}] has no leader (other than {exclude}); last metadata: {seen!r}"
    raise AssertionError(msg)


async def read_topic(
    bootstrap: str, topic: str, *, expected: int, timeout_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning until ``expected`` records (or the deadline) arrive."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def group_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per partition with records: how far the group's committed offset is behind the end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    await consumer.start()
    try:
        (described,) = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await consumer.stop()
        await admin.close()
    behind: dict[int, int] = {}
    for partition, end in ends.items():
        done = committed.get(partition)
        offset = done.offset if done is not None and done.offset >= 0 else 0
        if end > offset:
            behind[partition.partition] = end - offset
    return behind
