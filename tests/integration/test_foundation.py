"""Proof that the foundation stands on a real broker: safe producers, commit-after-effect
consumers, at-least-once across a consumer crash, and no loss when a partition leader dies."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from faststream.kafka import KafkaBroker, KafkaMessage

from deploy.kafka.launcher import KafkaCluster
from hub.broker import build_broker, subscriber_options
from hub.settings import KafkaSettings, Settings
from tests.support.kafka import create_topic, partition_leader, read_topic
from tests.support.wait import eventually

pytestmark = pytest.mark.kafka


def _settings(bootstrap: str) -> Settings:
    return Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap))


def _aiokafka_producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The aiokafka producer FastStream built (its private path, read only by this test)."""
    state = broker.config.broker_config.producer._producer  # type: ignore[attr-defined]
    return state.producer  # type: ignore[no-any-return]


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    meta = offsets.get(TopicPartition(topic, 0))
    return -1 if meta is None else meta.offset


async def test_publisher_is_acks_all_and_idempotent(bootstrap: str, topic_prefix: str) -> None:
    """The hub's broker factory gives an acks=all, idempotent producer that really publishes."""
    topic = f"{topic_prefix}safe"
    await create_topic(bootstrap, topic)
    broker = build_broker(_settings(bootstrap))
    async with broker:
        await broker.connect()
        producer = _aiokafka_producer(broker)
        assert producer._sender._acks == -1  # "all"
        assert producer._txn_manager is not None  # idempotence on: a producer id and sequences
        for i in range(5):
            await broker.publish(f"m{i}".encode(), topic, key=b"k")
    records = await read_topic(bootstrap, topic, expected=5)
    assert [r.value for r in records] == [f"m{i}".encode() for i in range(5)]


async def test_offset_committed_only_after_handler_succeeds(
    bootstrap: str, topic_prefix: str
) -> None:
    """A failing handler leaves the offset uncommitted and sees the message again."""
    topic, group = f"{topic_prefix}commit", f"{topic_prefix}group"
    await create_topic(bootstrap, topic)
    broker = build_broker(_settings(bootstrap))
    seen: list[bytes] = []
    committed_during_failure: list[int] = []
    done = asyncio.Event()

    @broker.subscriber(topic, **subscriber_options(group))
    async def handle(message: KafkaMessage) -> None:
        body = message.body
        seen.append(body)
        if body == b"poison-once" and seen.count(body) == 1:
            committed_during_failure.append(await _committed(bootstrap, group, topic))
            msg = "transient failure"
            raise RuntimeError(msg)
        if body == b"last":
            done.set()

    async with broker:
        await broker.start()
        for body in (b"first", b"poison-once", b"last"):
            await broker.publish(body, topic)
        async with asyncio.timeout(30):
            await done.wait()
        final = await eventually(
            lambda: _committed(bootstrap, group, topic), lambda v: v == 3, what="commit of 3"
        )
    assert seen == [b"first", b"poison-once", b"poison-once", b"last"]
    assert committed_during_failure == [1]  # only "first" was committed while "poison" failed
    assert final == 3


@pytest.mark.slow
async def test_consumer_sigkilled_midstream_loses_nothing(
    bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """SIGKILL a consumer process mid-stream, restart it: every message handled at least once."""
    topic, group = f"{topic_prefix}crash", f"{topic_prefix}group"
    total = 3000
    await create_topic(bootstrap, topic, partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, str(i).encode(), key=str(i % 7).encode())
            for i in range(total)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    outfile = tmp_path / "handled.txt"
    outfile.touch()
    cmd = [
        sys.executable,
        "-m",
        "tests.support.at_least_once_worker",
        bootstrap,
        topic,
        group,
        str(outfile),
    ]

    def handled() -> list[str]:
        return outfile.read_text(encoding="utf-8").split()

    async def count() -> int:
        return len(handled())

    worker = await asyncio.create_subprocess_exec(*cmd)
    try:
        await eventually(
            count, lambda n: n >= 300, timeout_s=60, what="300 handled before the kill"
        )
        worker.send_signal(signal.SIGKILL)
        await asyncio.wait_for(worker.wait(), 10)
        before_restart = set(handled())
        assert len(before_restart) < total, "the worker finished before it could be killed"
        worker = await asyncio.create_subprocess_exec(*cmd)
        await eventually(
            lambda: asyncio.sleep(0, len(set(handled()))),
            lambda n: n == total,
            timeout_s=90,
            what="every message handled",
        )
    finally:
        if worker.returncode is None:
            worker.terminate()
            await asyncio.wait_for(worker.wait(), 20)
    assert set(handled()) == {str(i) for i in range(total)}


@pytest.mark.cluster
@pytest.mark.slow
async def test_leader_sigkilled_while_producing_loses_nothing(kafka_cluster: KafkaCluster) -> None:
    """RF 3, min.insync 2, acks=all: SIGKILL the leader mid-production; all 10,000 read back."""
    bootstrap = kafka_cluster.bootstrap
    topic = f"leader-kill-{uuid.uuid4().hex[:8]}"
    total = 10_000
    await create_topic(bootstrap, topic, replication=3, configs={"min.insync.replicas": "2"})
    leader = await partition_leader(bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=60_000,
        retry_backoff_ms=200,
    )
    await producer.start()
    killed = False
    try:
        futures = []
        for i in range(total):
            futures.append(await producer.send(topic, str(i).encode()))
            if i == total // 3:
                await asyncio.gather(*futures)  # a third is surely on the old leader
                kafka_cluster.kill(leader)
                killed = True
        results = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert killed
    assert len(results) == total
    new_leader = await partition_leader(bootstrap, topic, exclude=leader)
    assert new_leader != leader
    records = await read_topic(bootstrap, topic, expected=total, timeout_s=120)
    values = [r.value.decode() for r in records if r.value is not None]
    assert len(values) == total, f"read {len(values)} of {total}"
    assert sorted(values, key=int) == [str(i) for i in range(total)]  # none lost, none twice
    kafka_cluster.restart(leader)
