"""Latency: publish → the delivery visible to its unit, at steady rates, router and tracker running.

Per rate, on one fresh broker, with a fresh SQLite store and topic prefix:

* the router and the tracker run as production runs them, one `hub run --only <part>` process
  each (configured by `HUB_*` variables);
* this process publishes seeded simulator traffic (Norrbotten, all message types, whole episodes
  in order) through the SDK (`HubClient.publish`, acks=all) on an open-loop schedule of `rate`
  messages a second: message i is due at t0 + i/rate, whatever happened to the ones before it,
  with at most `--in-flight` publishes outstanding and one at a time per episode;
* a watcher thread polls the store (`SELECT ... WHERE rowid > last`, every `--poll-ms`) and
  notes when each delivery row appears: that row is what the inbox API reads;
* the inbox API itself (`GET /v1/units/{hsa_id}/deliveries`, `hub.ops.api.build_api` under
  uvicorn on loopback, in a process of its own: `bench.inbox_server`) is polled every
  `--api-poll-ms` for the busiest recipient unit, with that unit's bearer key, at rates up to
  `--api-max-rate` (above that, serialising whole envelopes every few milliseconds would load
  the two cores the hub itself needs).

A sample is one delivery: from just before the `publish` call of its message to the moment the
poll that first returned it finished. Polling adds up to one poll interval. The stage table
splits the store figure at the router's `routed_at` (when it began the batch) and the delivery
record's timestamp (when it produced it; milliseconds), read back from the deliveries topic.
The achieved rate is what the publisher managed; when the hub does not keep up, latency grows
with the run and the figure says so (the drain time and the delivered rate are in the table).

    python -m bench.bench_latency --rates 7,1000 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import local_kafka, print_table
from bench.support import (
    HubProcess,
    describe,
    envelopes_of,
    free_port,
    fresh_copy,
    hub_environment,
    load_average,
    ms,
    percentile,
    planned_deliveries,
    run_environment,
    settle,
    simulated_traffic,
    sqlite_url,
    wait_port,
)
from hub.directory import Directory, load_directory
from hub.ops.keys import new_unit_key
from hub.provision import ensure_topics
from hub.settings import KafkaSettings, Settings
from hub.store.migrate import upgrade
from producers.sdk import HubClient
from topics.messages import Envelope
from topics.topics import TopicName


class StoreWatcher(threading.Thread):
    """Notes when each delivery row becomes visible in the SQLite store (new rowids)."""

    def __init__(self, path: Path, poll_s: float) -> None:
        super().__init__(name="store-watcher", daemon=True)
        self.path = path
        self.poll_s = poll_s
        self.seen: dict[uuid.UUID, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        connection = sqlite3.connect(self.path, check_same_thread=False)
        last = 0
        try:
            while not self._halt.is_set():
                rows = connection.execute(
                    "SELECT rowid, delivery_id FROM deliveries WHERE rowid > ? ORDER BY rowid",
                    (last,),
                ).fetchall()
                now = time.perf_counter()
                for rowid, delivery_id in rows:
                    self.seen.setdefault(uuid.UUID(delivery_id), now)
                    last = rowid
                self._halt.wait(self.poll_s)
        finally:
            connection.close()

    def halt(self) -> None:
        self._halt.set()


class InboxServer:
    """`python -m bench.inbox_server` over the store, with one unit's key; stopped by SIGTERM."""

    def __init__(self, settings: Settings, unit: str, scratch: Path) -> None:
        self.key, entry = new_unit_key(unit, "bench")
        keys = scratch / f"unit-keys-{uuid.uuid4().hex[:8]}.yaml"
        keys.write_text(
            yaml.safe_dump({"units": [entry.model_dump(mode="json", exclude_none=True)]}),
            encoding="utf-8",
        )
        self.port = free_port()
        with (scratch / "inbox-server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.inbox_server",
                    "--port",
                    str(self.port),
                    "--unit-keys",
                    str(keys),
                ],
                env=hub_environment(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class InboxProbe:
    """Polls one unit's inbox over HTTP and notes when each delivery first came back."""

    base_url: str
    unit: str
    key: str
    poll_s: float
    since: datetime
    seen: dict[uuid.UUID, float] = field(default_factory=dict)
    request_s: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        path = f"/v1/units/{self.unit}/deliveries"
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10) as http:
            since = self.since
            while not stop.is_set():
                # `since` is inclusive: rows routed in the same instant as the last one seen but
                # committed later (a tracker batch boundary) still come back; seen ones are kept.
                params: dict[str, str | int] = {"since": since.isoformat(), "limit": 500}
                while True:
                    sent = time.perf_counter()
                    response = await http.get(path, params=params)
                    response.raise_for_status()
                    now = time.perf_counter()
                    self.request_s.append(now - sent)
                    page = response.json()
                    for row in page["deliveries"]:
                        self.seen.setdefault(uuid.UUID(row["delivery_id"]), now)
                        since = max(since, datetime.fromisoformat(row["routed_at"]))
                    if page["next_since"] is None:
                        break
                    params = {
                        "since": page["next_since"],
                        "after": page["next_after"],
                        "limit": 500,
                    }
                await asyncio.sleep(self.poll_s)


@dataclass
class Published:
    """When each message's publish call started and when the broker acknowledged it."""

    started: list[float]
    acked: list[float]


async def publish_at_rate(
    client: HubClient, envelopes: list[Envelope], rate: float, in_flight: int
) -> Published:
    """Open-loop schedule: message i at t0 + i/rate; one publish at a time per episode."""
    started = [math.nan] * len(envelopes)
    acked = [math.nan] * len(envelopes)
    slots = asyncio.Semaphore(in_flight)
    tails: dict[str, asyncio.Task[None]] = {}

    async def one(index: int, envelope: Envelope, previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None:
                await previous
            started[index] = time.perf_counter()
            await client.publish(envelope)
            acked[index] = time.perf_counter()
        finally:
            slots.release()

    origin = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index, envelope in enumerate(envelopes):
            delay = origin + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            key = envelope.episode_id or str(envelope.message_id)
            tails[key] = group.create_task(one(index, envelope, tails.get(key)))
    return Published(started, acked)


async def router_marks(settings: Settings, wanted: set[uuid.UUID]) -> dict[uuid.UUID, Stages]:
    """For each delivery on the deliveries topic: when the router started routing its batch
    (``routed_at``, the router's clock) and when it produced the record (the record timestamp,
    milliseconds), both as `time.perf_counter()` readings of this process."""
    offset = time.time() - time.perf_counter()
    topic = settings.topic(TopicName.DELIVERIES)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    marks: dict[uuid.UUID, Stages] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(6)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = sum((await consumer.end_offsets(partitions)).values())
        while remaining > 0:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batch.values():
                remaining -= len(records)
                for record in records:
                    body = json.loads(record.value or b"{}")
                    delivery_id = uuid.UUID(body["delivery_id"])
                    if delivery_id in wanted:
                        routed = datetime.fromisoformat(body["routed_at"]).timestamp()
                        marks[delivery_id] = Stages(
                            routed - offset, record.timestamp / 1000 - offset
                        )
    finally:
        await consumer.stop()
    return marks


@dataclass(frozen=True, slots=True)
class Stages:
    """When the router began the delivery's batch, and when it put the delivery on the topic."""

    routing_started: float
    produced: float


@dataclass(frozen=True, slots=True)
class RateResult:
    """The figures of one rate."""

    offered: float
    messages: int
    achieved: float
    expected: int
    store_latencies: list[float]
    api_unit: str | None
    api_expected: int
    api_latencies: list[float]
    ack_latencies: list[float]
    api_request_s: list[float]
    delivered_rate: float
    drain_s: float
    stages: dict[str, list[float]]


@dataclass(frozen=True, slots=True)
class Traffic:
    """The messages of one rate and the deliveries the router will make of them."""

    envelopes: list[Envelope]
    owner: dict[uuid.UUID, int]  # delivery id -> index of the message it comes from
    recipient: dict[uuid.UUID, str]  # delivery id -> recipient unit

    @classmethod
    def simulated(cls, directory: Directory, count: int, seed: int) -> Traffic:
        envelopes = envelopes_of(simulated_traffic(directory, count, seed=seed))
        plans = planned_deliveries(envelopes, directory)
        return cls(
            envelopes,
            {d.delivery_id: i for i, planned in enumerate(plans) for d in planned},
            {d.delivery_id: d.recipient for planned in plans for d in planned},
        )

    def busiest_unit(self) -> str:
        return Counter(self.recipient.values()).most_common(1)[0][0]

    def of_unit(self, unit: str) -> set[uuid.UUID]:
        return {d for d, u in self.recipient.items() if u == unit}


async def warm_up(
    client: HubClient,
    traffic: Traffic,
    directory: Directory,
    watcher: StoreWatcher,
    hubs: list[HubProcess],
    tag: str,
) -> None:
    """Consumers have joined their groups and the path works end to end."""
    warm = [fresh_copy(e, f"{tag}-{i}") for i, e in enumerate(traffic.envelopes[:3])]
    wanted = {d.delivery_id for p in planned_deliveries(warm, directory) for d in p}
    for envelope in warm:
        await client.publish(envelope)

    def arrived() -> bool:
        for hub in hubs:
            hub.check_alive()
        return wanted <= watcher.seen.keys()

    if not await settle(arrived, 120):
        msg = "warm-up deliveries did not reach the store within 120 s"
        raise TimeoutError(msg)


async def run_rate(
    bootstrap: str, scratch: Path, index: int, rate: float, args: argparse.Namespace
) -> RateResult:
    """One rate on fresh topics and a fresh store (see the module docstring)."""
    db_path = scratch / f"latency-{index}.sqlite3"
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"lat{index}."),
        database_url=sqlite_url(db_path),
    )
    directory = load_directory(settings.directory_file)
    count = max(1, math.ceil(rate * args.duration))
    traffic = Traffic.simulated(directory, count, args.seed)
    api_unit = traffic.busiest_unit()
    probed = rate <= args.api_max_rate
    # Schema and topics first, so the two hub processes do not race to create them.
    await upgrade(settings.database_url)
    await ensure_topics(settings)
    profile_dir = args.profile_dir / f"rate-{rate:g}" if args.profile_dir else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    hubs = [
        HubProcess([part], settings, scratch, profile_dir=profile_dir)
        for part in ("router", "tracker")
    ]
    watcher = StoreWatcher(db_path, args.poll_ms / 1000)
    watcher.start()
    server = InboxServer(settings, api_unit, scratch)
    stop_api = asyncio.Event()
    probe = InboxProbe(
        server.base_url,
        api_unit,
        server.key,
        args.api_poll_ms / 1000,
        since=datetime.now(UTC) - timedelta(seconds=1),
    )
    wanted = traffic.of_unit(api_unit) if probed else set()
    try:
        async with asyncio.TaskGroup() as group, HubClient(settings) as client:
            await asyncio.to_thread(wait_port, server.port, 60)
            await warm_up(client, traffic, directory, watcher, hubs, str(index))
            if probed:
                group.create_task(probe.run(stop_api))
            published = await publish_at_rate(client, traffic.envelopes, rate, args.in_flight)
            last_publish = max(published.started)
            drain_until = time.monotonic() + args.drain
            await settle(lambda: traffic.owner.keys() <= watcher.seen.keys(), args.drain)
            await settle(lambda: wanted <= probe.seen.keys(), drain_until - time.monotonic())
            drain_s = time.perf_counter() - last_publish
            stop_api.set()
    finally:
        stop_api.set()
        watcher.halt()
        await asyncio.to_thread(watcher.join)
        for hub in hubs:
            hub.stop()
        server.stop()

    started = published.started
    seen = {d: t for d, t in watcher.seen.items() if d in traffic.owner}
    marks = await router_marks(settings, set(traffic.owner))
    stages: dict[str, list[float]] = {"to router": [], "routing": [], "to store": []}
    for delivery_id, mark in marks.items():
        if delivery_id in seen:
            stages["to router"].append(mark.routing_started - started[traffic.owner[delivery_id]])
            stages["routing"].append(mark.produced - mark.routing_started)
            stages["to store"].append(seen[delivery_id] - mark.produced)
    first = min(started)
    span = max(seen.values(), default=math.nan) - first
    return RateResult(
        offered=rate,
        messages=count,
        achieved=(count - 1) / (last_publish - first) if count > 1 else math.nan,
        expected=len(traffic.owner),
        store_latencies=[t - started[traffic.owner[d]] for d, t in seen.items()],
        api_unit=api_unit if probed else None,
        api_expected=len(wanted),
        api_latencies=[
            probe.seen[d] - started[traffic.owner[d]] for d in wanted if d in probe.seen
        ],
        ack_latencies=[a - s for s, a in zip(started, published.acked, strict=True)],
        api_request_s=probe.request_s if probed else [],
        delivered_rate=len(seen) / span if span > 0 else math.nan,
        drain_s=drain_s,
        stages=stages,
    )


def _row(result: RateResult, view: str, latencies: list[float], expected: int) -> list[str]:
    return [
        f"{result.offered:,.0f}",
        f"{result.achieved:,.1f}",
        f"{result.messages:,}",
        view,
        f"{len(latencies):,} / {expected:,}",
        ms(percentile(latencies, 50)),
        ms(percentile(latencies, 95)),
        ms(percentile(latencies, 99)),
        ms(max(latencies, default=math.nan)),
    ]


async def main_async(args: argparse.Namespace) -> None:
    rates = [float(r) for r in args.rates.split(",")]
    env = run_environment(
        duration_s=args.duration, poll_ms=args.poll_ms, api_poll_ms=args.api_poll_ms, store="sqlite"
    )
    results: list[RateResult] = []
    async with asyncio.timeout(args.max_wall):
        with local_kafka() as kafka, tempfile.TemporaryDirectory(prefix="bench-lat-") as scratch:
            for index, rate in enumerate(rates):
                result = await run_rate(kafka.bootstrap, Path(scratch), index, rate, args)
                results.append(result)
                print(
                    f"rate {rate:g}: achieved {result.achieved:,.1f} msg/s, store p99"
                    f" {ms(percentile(result.store_latencies, 99))} ms, drained"
                    f" {result.drain_s:.1f} s after the last publish"
                )
    rows: list[list[str]] = []
    for result in results:
        rows.append(_row(result, "store row", result.store_latencies, result.expected))
        if result.api_unit:
            rows.append(
                _row(
                    result,
                    f"inbox API ({result.api_unit})",
                    result.api_latencies,
                    result.api_expected,
                )
            )
    print_table(
        "Latency, publish → delivery visible (ms)",
        [
            "offered msg/s",
            "achieved msg/s",
            "messages",
            "visible in",
            "deliveries",
            "p50",
            "p95",
            "p99",
            "max",
        ],
        rows,
    )
    extra = [
        [
            f"{r.offered:,.0f}",
            ms(percentile(r.ack_latencies, 50)),
            ms(percentile(r.ack_latencies, 99)),
            ms(percentile(r.api_request_s, 50)),
            f"{r.delivered_rate:,.0f}",
            f"{r.drain_s:.1f}",
        ]
        for r in results
    ]
    print_table(
        "Latency context",
        [
            "offered msg/s",
            "publish ack p50 (ms)",
            "publish ack p99 (ms)",
            "inbox API request p50 (ms)",
            "deliveries stored /s",
            "drain after last publish (s)",
        ],
        extra,
    )
    print_table(
        "Latency by stage, p50 / p99 (ms): publish → router batch starts → delivery on its topic"
        " → store row",
        ["offered msg/s", "to the router", "routing the batch", "to the store"],
        [
            [
                f"{r.offered:,.0f}",
                *(
                    f"{ms(percentile(r.stages[k], 50))} / {ms(percentile(r.stages[k], 99))}"
                    for k in ("to router", "routing", "to store")
                ),
            ]
            for r in results
        ],
    )
    print(describe({**env, "load avg at end": load_average()}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="7,1000", help="messages per second, comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of traffic per rate")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="store watcher interval")
    parser.add_argument("--api-poll-ms", type=float, default=10.0, help="inbox API poll interval")
    parser.add_argument(
        "--api-max-rate",
        type=float,
        default=100.0,
        help="probe the inbox API only at rates up to this",
    )
    parser.add_argument("--in-flight", type=int, default=1000, help="publishes outstanding at most")
    parser.add_argument(
        "--drain",
        type=float,
        default=180.0,
        help="seconds to wait for the last deliveries after the last publish",
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="run router and tracker under cProfile: rate-<rate>/<part>.prof in this folder",
    )
    parser.add_argument("--max-wall", type=float, default=1500.0, help="whole run, seconds")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
