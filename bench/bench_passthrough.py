"""Routed throughput: the hub's router against a raw aiokafka consume → produce loop.

Both variants read the same pre-published envelopes (whole episodes: admission notice, planning
document, ready for discharge, discharge notice) from the same broker, with the same topic
settings, and are timed the same way: a watcher polls the group's committed offsets every 50 ms,
and the rate is the records committed after the first commit it saw, divided by the time from that
commit to the last (so a consumer's start-up and group join are not counted, for any variant).
The raw loop forwards each record once (1:1) and, as a second baseline of the same output volume
as the router, three times (1:3). The hub is measured in this process (as `hub run --only router`
runs it) and as ``--processes`` separate `hub run --only router` processes in one consumer group.

    python -m bench.bench_passthrough --messages 200000 --rounds 3 --processes 2
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
from bench.support import HubProcess
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


class CommitWatch:
    """Polls a group's committed offsets until ``total``; the rate after its first commit."""

    def __init__(self, bootstrap: str, group: str, total: int, timeout_s: float) -> None:
        self.bootstrap, self.group, self.total, self.timeout_s = bootstrap, group, total, timeout_s
        self.first: tuple[float, int] | None = None
        self.done_at: float | None = None

    async def run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            count = await committed(self.bootstrap, self.group)
            now = time.perf_counter()
            if count > 0 and self.first is None:
                self.first = (now, count)
            if count >= self.total:
                self.done_at = now
                return
            if time.monotonic() > deadline:
                msg = f"group {self.group} did not commit {self.total} records in {self.timeout_s}s"
                raise TimeoutError(msg)
            await asyncio.sleep(0.05)

    @property
    def rate(self) -> float:
        if self.first is None or self.done_at is None:
            msg = "the watch has not finished"
            raise RuntimeError(msg)
        started, already = self.first
        if self.done_at <= started:  # everything in the first commit seen: no window to time
            return float("nan")
        return (self.total - already) / (self.done_at - started)


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
    watch = CommitWatch(bootstrap, group, total, 600.0)
    watcher = asyncio.create_task(watch.run())
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
        await watcher
        return watch.rate
    finally:
        watcher.cancel()
        await consumer.stop()
        await producer.stop()


async def hub_router(settings: Settings, total: int, timeout_s: float) -> float:
    """Routed msg/s of the hub's router in this process (store-backed episode state)."""
    hub = await Hub.open(settings, SystemClock(), parts={Part.ROUTER})
    stop = asyncio.Event()
    watch = CommitWatch(
        settings.kafka.bootstrap_servers, settings.group("hub-router"), total, timeout_s
    )
    runner = asyncio.create_task(hub.run(stop))
    try:
        await watch.run()
        return watch.rate
    finally:
        stop.set()
        await runner


async def hub_processes(
    settings: Settings, total: int, timeout_s: float, processes: int, log_dir: Path
) -> float:
    """Routed msg/s of ``processes`` `hub run --only router` processes in one consumer group."""
    children = [HubProcess(["router"], settings, log_dir) for _ in range(processes)]
    watch = CommitWatch(
        settings.kafka.bootstrap_servers, settings.group("hub-router"), total, timeout_s
    )
    try:
        await watch.run()
        for child in children:
            child.check_alive()
        return watch.rate
    finally:
        for child in children:
            child.stop()


async def main_async(messages: int, rounds: int, timeout_s: float, processes: int) -> None:
    env = environment()
    multi = f"hub router, {processes} processes"
    rows: dict[str, list[float]] = {"raw 1:1": [], "raw 1:3": [], "hub router": []}
    if processes:
        rows[multi] = []
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
            rates = {"raw 1:1": raw1, "raw 1:3": raw3, "hub router": routed}
            if processes:
                # Their own topics, group and store: the processes route the same records afresh.
                again = Settings(
                    kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"{prefix}p."),
                    database_url=settings.database_url.replace(".sqlite3", "-p.sqlite3"),
                )
                admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
                await admin.start()
                await admin.create_topics(
                    [NewTopic(again.topic(TopicName.CARE_EPISODE_EVENTS), 6, 1)]
                )
                await admin.close()
                await publish(bootstrap, again.topic(TopicName.CARE_EPISODE_EVENTS), items[:count])
                rates[multi] = await hub_processes(
                    again, count, timeout_s, processes, Path(scratch)
                )
            if round_no:
                for name, rate in rates.items():
                    rows[name].append(rate)
            print(
                f"round {round_no}: " + ", ".join(f"{k} {v:,.0f} msg/s" for k, v in rates.items())
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
    parser.add_argument(
        "--processes", type=int, default=2, help="router processes of the multi-process variant"
    )
    args = parser.parse_args()
    asyncio.run(main_async(args.messages, args.rounds, args.timeout, args.processes))


if __name__ == "__main__":
    main()
