"""Publish cost: the hub's outbox, FastStream's `broker.publish` and aiokafka's `producer.send`.

All use the hub's producer options (acks=all, idempotence, `hub.broker.PRODUCER_OPTIONS`; the
raw aiokafka producer keeps aiokafka's own partitioner) on the same broker and topic, with
750-byte records (the size of a delivery) and 50 keys; each variant hands over N records without
waiting, then awaits every ack. The outbox gets them in calls of 1,500 (a router batch of 500
messages makes about that many deliveries).

    python -m bench.bench_publish --records 30000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import environment, local_kafka, print_table
from hub.broker import PRODUCER_OPTIONS, build_broker
from hub.publishing import Encoded, Outbox
from hub.settings import KafkaSettings, Settings
from topics.topics import TopicName

BODY = b"x" * 750
PREFIX = "benchpub."
TOPIC = f"{PREFIX}{TopicName.DELIVERIES}"
CALL = 1500


async def outbox_rate(bootstrap: str, records: int) -> float:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=PREFIX))
    broker = build_broker(settings)
    items = [Encoded(TopicName.DELIVERIES, BODY, {"h": "v"}, f"k{i % 50}") for i in range(records)]
    async with broker:
        await broker.connect()
        outbox = Outbox(broker, settings)
        started = time.perf_counter()
        for start in range(0, records, CALL):
            await outbox.send_many(items[start : start + CALL])
        return records / (time.perf_counter() - started)


async def faststream_rate(bootstrap: str, topic: str, records: int) -> float:
    broker = build_broker(Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap)))
    async with broker:
        await broker.connect()
        started = time.perf_counter()
        futures = [
            await broker.publish(
                BODY, topic, key=b"k%d" % (i % 50), headers={"h": "v"}, no_confirm=True
            )
            for i in range(records)
        ]
        await asyncio.gather(*futures)
        return records / (time.perf_counter() - started)


async def aiokafka_rate(bootstrap: str, topic: str, records: int) -> float:
    options = {k: v for k, v in PRODUCER_OPTIONS.items() if k != "partitioner"}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(topic, BODY, key=b"k%d" % (i % 50), headers=[("h", b"v")])
            for i in range(records)
        ]
        await asyncio.gather(*futures)
        return records / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def main_async(records: int, rounds: int) -> None:
    rates: dict[str, list[float]] = {
        "aiokafka send": [],
        "faststream publish": [],
        "hub outbox (batched)": [],
    }
    with local_kafka() as kafka:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, 6, 1)])
        await admin.close()
        for round_no in range(rounds + 1):  # round 0 warms up
            raw = await aiokafka_rate(kafka.bootstrap, TOPIC, records)
            fast = await faststream_rate(kafka.bootstrap, TOPIC, records)
            hub = await outbox_rate(kafka.bootstrap, records)
            if round_no:
                rates["aiokafka send"].append(raw)
                rates["faststream publish"].append(fast)
                rates["hub outbox (batched)"].append(hub)
    baseline = statistics.median(rates["aiokafka send"])
    rows = [
        [
            name,
            f"{records:,}",
            f"{statistics.median(r):,.0f}",
            f"{statistics.median(r) / baseline:.2f}",
        ]
        for name, r in rates.items()
    ]
    described = ", ".join(f"{k} {v}" for k, v in environment().items())
    print_table(
        f"Publish cost, median of {rounds} rounds ({described})",
        ["variant", "records", "records/s", "ratio"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main_async(args.records, args.rounds))


if __name__ == "__main__":
    main()
