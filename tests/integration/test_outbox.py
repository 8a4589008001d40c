"""The outbox on a real broker: all records acked, in order per key, placed as Kafka places them."""

from __future__ import annotations

import pytest

from hub.broker import build_broker, keyed_partitioner
from hub.publishing import Encoded, Outbox, connected_producer
from hub.settings import KafkaSettings, Settings
from tests.support.kafka import create_topic, read_topic
from topics.topics import TopicName

pytestmark = pytest.mark.kafka

PARTITIONS = 6


async def test_batched_send_keeps_order_per_key_and_places_by_key(
    bootstrap: str, topic_prefix: str
) -> None:
    """Records of many keys, with one bigger than a producer batch in the middle, all arrive.

    Per key they arrive in the order given (the router's promise: per episode, per unit), each on
    the partition the default murmur2 partitioner picks, with the headers given.
    """
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix))
    topic = settings.topic(TopicName.DELIVERIES)
    await create_topic(bootstrap, topic, partitions=PARTITIONS)
    keys = [f"SE2321000230-SYN{n}" for n in range(20)]
    items = [
        Encoded(
            TopicName.DELIVERIES,
            (b"x" * 300_000 if n == 250 else f"{n}".encode()),  # 300 kB > max_batch_size
            {"schema-version": "1", "n": str(n)},
            keys[n % len(keys)],
        )
        for n in range(600)
    ]
    broker = build_broker(settings)
    async with broker:
        await broker.connect()
        assert connected_producer(broker) is not None  # the batched path, not broker.publish
        assert await Outbox(broker, settings).send_many(items) == len(items)
    records = await read_topic(bootstrap, topic, expected=len(items))
    assert len(records) == len(items)
    seen: dict[str, list[int]] = {}
    for record in records:
        key = (record.key or b"").decode()
        headers = dict(record.headers)
        assert headers["schema-version"] == b"1"
        assert record.partition == keyed_partitioner(record.key, list(range(PARTITIONS)), [])
        seen.setdefault(key, []).append(int(headers["n"]))
    for index, key in enumerate(keys):
        assert seen[key] == list(range(index, 600, len(keys)))
