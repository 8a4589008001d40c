"""Routed throughput: the hub's router against a raw aiokafka consume → produce loop.

Both variants read the same pre-published envelopes (whole episodes: admission notice, planning
document, ready for discharge, discharge notice) from the same broker, with the same topic
settings, and are timed the same way: from starting the consumer until its group has committed
offsets for every input record. The raw loop forwards each record once (1:1) and, as a second
baseline of the same output volume as the router, three times (1:3).

    python -m bench.bench_passthrough --messages 200000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import environment, local_kafka, print_table
from hub.app import Hub, Part
from hub.clock import SystemClock
from hub.settings import KafkaSettings, Settings
from topics.catalogue import MessageType
from topics.codec import encode
from topics.examples import load_example
from topics.messages import Envelope
from topics.topics import TopicName

EPISODE_TYPES = (
    MessageType.ADMISSION_NOTICE,
    MessageType.PLANNING_DOCUMENT,
    MessageType.READY_FOR_DISCHARGE,
    MessageType.DISCHARGE_NOTICE,
)


def envelopes(count: int) -> list[Envelope]:
    """`count` envelopes, whole episodes in order, from the checked-in examples."""
    examples = [load_example(t) for t in EPISODE_TYPES]
    out: list[Envelope] = []
    for n in range(count):
        episode = f"bench:{n // len(examples):08d}"
        out.append(
            examples[n % len(examples)].model_copy(
                update={"message_id": uuid.uuid4(), "episode_id": episode}
            )
        )
    return out


async def publish(bootstrap: str, topic: str, items: list[Envelope]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        futures = []
        for envelope in items:
            body, headers = encode(envelope)
            futures.append(
                await producer.send(
                    topic,
                    body,
                    key=str(envelope.episode_id).encode(),
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(max(0, meta.offset) for meta in offsets.values())


async def wait_committed(bootstrap: str, group: str, total: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while await committed(bootstrap, group) < total:
        if time.monotonic() > deadline:
            msg = f"group {group} did not commit {total} records within {timeout_s}s"
            raise TimeoutError(msg)
        await asyncio.sleep(0.2)


async def raw_passthrough(
    bootstrap: str, source: str, sink: str, group: str, total: int, fanout: int
) -> float:
    """Seconds for a bare aiokafka loop to forward `total` records `fanout` times each."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    await consumer.start()
    started = time.perf_counter()
    done = 0
    try:
        while done < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            futures = []
            for records in batch.values():
                for record in records:
                    for _ in range(fanout):
                        futures.append(
                            await producer.send(
                                sink, record.value, key=record.key, headers=list(record.headers)
                            )
                        )
                    done += 1
            await asyncio.gather(*futures)
            if futures:
                await consumer.commit()
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


async def hub_router(settings: Settings, total: int, timeout_s: float) -> float:
    """Seconds for the hub's router (store-backed episode state) to route `total` envelopes."""
    hub = await Hub.open(settings, SystemClock(), parts={Part.ROUTER})
    stop = asyncio.Event()
    started = time.perf_counter()
    runner = asyncio.create_task(hub.run(stop))
    try:
        await wait_committed(
            settings.kafka.bootstrap_servers, settings.group("hub-router"), total, timeout_s
        )
        return time.perf_counter() - started
    finally:
        stop.set()
        await runner


async def main_async(messages: int, rounds: int, timeout_s: float) -> None:
    env = environment()
    rows: dict[str, list[float]] = {"raw 1:1": [], "raw 1:3": [], "hub router": []}
    with local_kafka() as kafka, tempfile.TemporaryDirectory() as scratch:
        bootstrap = kafka.bootstrap
        items = envelopes(messages)
        for round_no in range(rounds + 1):  # round 0 is the warm-up
            prefix = f"bench{round_no}."
            settings = Settings(
                kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix),
                database_url=f"sqlite+aiosqlite:///{Path(scratch) / f'r{round_no}.sqlite3'}",
            )
            source = settings.topic(TopicName.CARE_EPISODE_EVENTS)
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            await admin.create_topics([NewTopic(source, 6, 1), NewTopic(f"{prefix}raw-out", 6, 1)])
            await admin.close()
            count = messages if round_no else min(messages, 2000)
            await publish(bootstrap, source, items[:count])
            raw1 = await raw_passthrough(
                bootstrap, source, f"{prefix}raw-out", f"{prefix}raw1", count, 1
            )
            raw3 = await raw_passthrough(
                bootstrap, source, f"{prefix}raw-out", f"{prefix}raw3", count, 3
            )
            routed = await hub_router(settings, count, timeout_s)
            if round_no:
                rows["raw 1:1"].append(count / raw1)
                rows["raw 1:3"].append(count / raw3)
                rows["hub router"].append(count / routed)
            print(
                f"round {round_no}: raw 1:1 {count / raw1:,.0f} msg/s, raw 1:3 {count / raw3:,.0f}"
                f" msg/s, hub {count / routed:,.0f} msg/s"
            )
    baseline = statistics.median(rows["raw 1:1"])
    table = [
        [
            name,
            f"{messages:,}",
            f"{statistics.median(rates):,.0f}",
            f"{statistics.median(rates) / baseline:.2f}",
        ]
        for name, rates in rows.items()
    ]
    described = ", ".join(f"{k} {v}" for k, v in env.items())
    print_table(
        f"Routed throughput, median of {rounds} rounds ({described})",
        ["variant", "messages", "msg/s", "ratio to raw 1:1"],
        table,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per hub round, seconds")
    args = parser.parse_args()
    asyncio.run(main_async(args.messages, args.rounds, args.timeout))


if __name__ == "__main__":
    main()
