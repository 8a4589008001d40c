"""Replay: rebuilding the store from the topics (`hub store rebuild`) against a raw consume.

One broker; the hub's three source-of-truth topics (6 partitions each, as provisioned) are
filled with seeded simulator traffic exactly as the hub would have written it:

* care-episode events: the simulator's envelopes (`topics.codec.encode`), keyed by episode;
* deliveries: what the router makes of them (`hub.deliveries.plan` and the router's own
  `delivery_encoder`), keyed by recipient unit;
* receipts: the simulator's receipts of those deliveries (`topics.messages.Receipt`).

Then, alternating, each round reads the same three topics twice:

* **raw**: a bare aiokafka consumer, no group, assigned every partition from the beginning to the
  end offsets, topic by topic, touching only the bytes: the floor a replay cannot beat;
* **rebuild**: `hub.rebuild.rebuild` into a fresh, migrated store (SQLite by default; PostgreSQL
  with `--stores sqlite,postgresql`, fsync off there), what `hub store rebuild` runs.

Per-topic rebuild times are split where each topic's pass starts, so the router-record saves
after the first topic's records count with that topic.

    python -m bench.bench_replay --stores sqlite,postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import hub.rebuild
from bench.common import local_kafka, print_table
from bench.support import (
    describe,
    envelopes_of,
    load_average,
    local_postgres,
    planned_deliveries,
    run_environment,
    simulated_traffic,
    sqlite_url,
)
from hub.broker import PRODUCER_OPTIONS
from hub.calendar import CalendarPolicy
from hub.directory import Directory, load_directory
from hub.logs import configure_logging
from hub.ops.receipts import receipt_for
from hub.provision import ensure_topics
from hub.rebuild import Progress, rebuild
from hub.settings import KafkaSettings, Settings
from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import Store
from topics.codec import delivery_encoder, encode
from topics.ids import delivery_id_for
from topics.messages import ReceiptChannel
from topics.topics import TopicName

REPLAYED = (TopicName.CARE_EPISODE_EVENTS, TopicName.DELIVERIES, TopicName.RECEIPTS)
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


def topic_records(directory: Directory, messages: int, seed: int) -> dict[TopicName, list[Record]]:
    """The three topics' records for ``messages`` simulated messages."""
    events = simulated_traffic(directory, messages, seed=seed)
    envelopes = envelopes_of(events)
    plans = planned_deliveries(envelopes, directory)
    out: dict[TopicName, list[Record]] = defaultdict(list)
    planned: set[uuid.UUID] = set()
    for envelope, deliveries in zip(envelopes, plans, strict=True):
        body, headers = encode(envelope)
        key = (envelope.episode_id or str(envelope.message_id)).encode()
        out[TopicName.CARE_EPISODE_EVENTS].append((key, body, _headers(headers)))
        # The router stamps its own time; a second after sending is near enough.
        encode_delivery = delivery_encoder(envelope.sent_at + timedelta(seconds=1), 1)
        for d in deliveries:
            body, headers = encode_delivery(
                d.envelope_json, d.delivery_id, d.recipient, d.kind, d.role
            )
            out[TopicName.DELIVERIES].append((d.recipient.encode(), body, _headers(headers)))
            planned.add(d.delivery_id)
    for event in events:
        if event.kind != "receipt" or event.unit is None:
            continue
        delivery_id = delivery_id_for(event.message_id, event.unit)
        if delivery_id not in planned:
            continue
        receipt = receipt_for(delivery_id, event.unit, ReceiptChannel.KAFKA, event.unit, event.at)
        body, headers = encode(receipt)
        out[TopicName.RECEIPTS].append((event.unit.encode(), body, _headers(headers)))
    return out


def _headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in headers.items()]


async def fill(settings: Settings, records: dict[TopicName, list[Record]]) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        **{k: v for k, v in PRODUCER_OPTIONS.items() if k != "compression_type"},
    )
    await producer.start()
    try:
        futures = []
        for name, items in records.items():
            for key, value, headers in items:
                futures.append(
                    await producer.send(settings.topic(name), value, key=key, headers=headers)
                )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume(settings: Settings) -> dict[str, float]:
    """Seconds per topic to read it from the beginning to its end offsets, bytes untouched."""
    seconds: dict[str, float] = {}
    for name in REPLAYED:
        topic = settings.topic(name)
        started = time.perf_counter()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(6)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            remaining = sum(ends.values())
            while remaining > 0:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                remaining -= sum(len(records) for records in batch.values())
        finally:
            await consumer.stop()
        seconds[topic] = time.perf_counter() - started
    return seconds


async def hub_rebuild(settings: Settings, url: str, directory: Directory) -> dict[str, float]:
    """Seconds per topic for `hub.rebuild.rebuild` into a fresh store at ``url``.

    The split wraps the module's topic reader (`hub.rebuild._records`, private: a benchmark may
    look inside) to note when each topic's pass starts; the router-record saves that follow the
    first topic's records count with that topic.
    """
    await upgrade(url)
    engine = create_engine(url)
    starts: dict[str, float] = {}
    read_topic = hub.rebuild._records

    def timed(
        settings: Settings, name: TopicName, progress: Progress | None
    ) -> AsyncIterator[tuple[bytes, dict[str, str]]]:
        starts[settings.topic(name)] = time.perf_counter()
        return read_topic(settings, name, progress)

    try:
        with patch.object(hub.rebuild, "_records", timed):
            await rebuild(settings, Store(engine), directory, CalendarPolicy(), datetime.now(UTC))
        ended = time.perf_counter()
    finally:
        await engine.dispose()
    topics = [settings.topic(name) for name in REPLAYED]
    bounds = [*(starts[t] for t in topics), ended]
    return {t: bounds[i + 1] - bounds[i] for i, t in enumerate(topics)}


async def main_async(args: argparse.Namespace) -> None:
    env = run_environment(messages=args.messages, rounds=args.rounds, seed=args.seed)
    stores = args.stores.split(",")
    raw_runs: list[dict[str, float]] = []
    rebuild_runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in stores}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as scratch, local_kafka() as kafka:
        log = (Path(scratch) / "hub.log").open("w", encoding="utf-8")
        configure_logging("json", "WARNING", stream=log)
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap, topic_prefix="replay.")
        )
        directory = load_directory(settings.directory_file)
        records = topic_records(directory, args.messages, args.seed)
        counts = {settings.topic(name): len(records[name]) for name in REPLAYED}
        async with asyncio.timeout(args.max_wall):
            await fill(settings, records)
            warm = Settings(
                kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap, topic_prefix="warm.")
            )
            await fill(warm, topic_records(directory, min(args.messages, 300), args.seed + 1))
            await raw_consume(warm)
            await hub_rebuild(warm, sqlite_url(Path(scratch) / "warm.sqlite3"), directory)
            with local_postgres() if "postgresql" in stores else nullcontext() as server:
                for number in range(args.rounds):
                    raw_runs.append(await raw_consume(settings))
                    for kind in stores:
                        if kind == "postgresql" and server is not None:
                            url = server.url(server.create_database("hub_replay"))
                        else:
                            url = sqlite_url(Path(scratch) / f"rebuild-{number}.sqlite3")
                        rebuild_runs[kind].append(await hub_rebuild(settings, url, directory))
                    total = sum(counts.values())
                    rates = [f"raw {total / sum(raw_runs[-1].values()):,.0f}"] + [
                        f"rebuild {k} {total / sum(r[-1].values()):,.0f}"
                        for k, r in rebuild_runs.items()
                    ]
                    print(f"round {number + 1}: {', '.join(rates)} records/s")
        logging.shutdown()
        log.close()

    total = sum(counts.values())
    raw_s = statistics.median(sum(r.values()) for r in raw_runs)
    rows = [["raw aiokafka consume", f"{total:,}", f"{raw_s:.2f}", f"{total / raw_s:,.0f}", "1.00"]]
    for kind, runs in rebuild_runs.items():
        seconds = statistics.median(sum(r.values()) for r in runs)
        rows.append(
            [
                f"hub store rebuild ({kind})",
                f"{total:,}",
                f"{seconds:.2f}",
                f"{total / seconds:,.0f}",
                f"{raw_s / seconds:.3f}",
            ]
        )
    print_table(
        f"Replay, median of {args.rounds} rounds",
        ["variant", "records", "seconds", "records/s", "ratio to raw"],
        rows,
    )
    per_topic = []
    for topic, count in counts.items():
        raw_t = statistics.median(r[topic] for r in raw_runs)
        cells = [topic, f"{count:,}", f"{count / raw_t:,.0f}"]
        cells += [
            f"{count / statistics.median(r[topic] for r in runs):,.0f}"
            for runs in rebuild_runs.values()
        ]
        per_topic.append(cells)
    print_table(
        "Replay per topic (records/s)",
        ["topic", "records", "raw", *(f"rebuild {kind}" for kind in stores)],
        per_topic,
    )
    print(describe({**env, "load avg at end": load_average()}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000, help="simulated messages")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stores", default="sqlite", help="sqlite and/or postgresql")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-wall", type=float, default=1800.0, help="whole run, seconds")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
