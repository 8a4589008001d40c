"""Publish cost: FastStream's `broker.publish` against aiokafka's `producer.send`, same settings.

Both use the hub's producer options (acks=all, idempotence, linger 5 ms) on the same broker and
topic, with 750-byte records (the size of a delivery) and 50 keys; each variant sends N records
without waiting, then awaits every ack.

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
from hub.settings import KafkaSettings, Settings

BODY = b"x" * 750


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
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_OPTIONS)
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
    rates: dict[str, list[float]] = {"aiokafka send": [], "faststream publish": []}
    with local_kafka() as kafka:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("bench-publish", 6, 1)])
        await admin.close()
        for round_no in range(rounds + 1):  # round 0 warms up
            raw = await aiokafka_rate(kafka.bootstrap, "bench-publish", records)
            fast = await faststream_rate(kafka.bootstrap, "bench-publish", records)
            if round_no:
                rates["aiokafka send"].append(raw)
                rates["faststream publish"].append(fast)
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
