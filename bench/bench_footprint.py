"""Footprint: resident memory of each hub process at start and after a run under simulator load.

The four parts run as production runs them, one `hub run --only <part>` process each (router,
tracker, notifier, scanner), on one broker, one SQLite store and the aiosmtpd sink. Once the
router and tracker have carried a warm-up message into the store and every process has idled
for `--settle` seconds, VmRSS is read from /proc/<pid>/status ("at start"). Then seeded
simulator traffic (envelopes through the SDK, the simulator's receipts onto the receipts topic,
in stream order) runs at `--rate` events a second for `--duration` seconds, and VmRSS and the
high-water mark VmHWM are read again ("after"). The broker's JVM is listed for scale.

    python -m bench.bench_footprint --duration 600
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import tempfile
import time
from pathlib import Path

from bench.common import local_kafka, print_table
from bench.support import (
    HubProcess,
    SmtpSink,
    describe,
    fresh_copy,
    load_average,
    planned_deliveries,
    proc_status_kib,
    run_environment,
    simulated_traffic,
    sqlite_url,
    wait_until,
)
from deploy.kafka.launcher import KafkaCluster
from hub.broker import build_broker
from hub.directory import load_directory
from hub.logs import configure_logging
from hub.ops.receipts import receipt_for
from hub.provision import ensure_topics
from hub.publishing import Outbox, Outgoing
from hub.settings import KafkaSettings, Settings, SmtpSettings
from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import Store, Totals
from producers.sdk import HubClient
from producers.simulator import SimEvent
from topics.ids import delivery_id_for
from topics.messages import ReceiptChannel
from topics.topics import TopicName

PARTS = ("router", "tracker", "notifier", "scanner")


def mib(kib: int | None) -> str:
    return "–" if kib is None else f"{kib / 1024:,.1f}"


async def play(events: list[SimEvent], rate: float, client: HubClient, outbox: Outbox) -> int:
    """Hand the events over in stream order, one every 1/rate seconds; returns how many."""
    origin = time.perf_counter()
    for index, event in enumerate(events):
        delay = origin + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if event.kind == "publish" and event.envelope is not None:
            await client.publish(event.envelope)
        elif event.unit is not None:
            delivery_id = delivery_id_for(event.message_id, event.unit)
            receipt = receipt_for(
                delivery_id, event.unit, ReceiptChannel.KAFKA, event.unit, event.at
            )
            await outbox.send_many([Outgoing(TopicName.RECEIPTS, receipt, event.unit)])
    return len(events)


BROKER = "kafka broker (JVM)"


async def sample(
    hubs: dict[str, HubProcess],
    kafka: KafkaCluster,
    every_s: float,
    into: list[tuple[float, dict[str, int | None]]],
) -> None:
    """Append (seconds into the load, memory) every ``every_s`` until cancelled."""
    started = time.perf_counter()
    while True:
        await asyncio.sleep(every_s)
        into.append((time.perf_counter() - started, memory(hubs, kafka)))


def memory(hubs: dict[str, HubProcess], kafka: KafkaCluster) -> dict[str, int | None]:
    """VmRSS of every hub process and of the broker, in KiB."""
    for hub in hubs.values():
        hub.check_alive()
    return {**{part: hub.rss_kib() for part, hub in hubs.items()}, BROKER: _broker_rss(kafka)}


async def measure(
    args: argparse.Namespace, kafka: KafkaCluster, scratch: Path, sink: SmtpSink
) -> tuple[
    dict[str, dict[str, int | None]], int, Totals, list[tuple[float, dict[str, int | None]]]
]:
    """Start the parts, warm up, read memory, play the load, read memory again."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap, topic_prefix="fp."),
        smtp=SmtpSettings(port=sink.port),
        database_url=sqlite_url(scratch / "hub.sqlite3"),
    )
    directory = load_directory(settings.directory_file)
    total = math.ceil(args.rate * args.duration)
    events = simulated_traffic(directory, total, seed=args.seed)[:total]
    await upgrade(settings.database_url)
    await ensure_topics(settings)
    hubs = {part: HubProcess([part], settings, scratch) for part in PARTS}
    engine = create_engine(settings.database_url)
    store = Store(engine)
    broker = build_broker(settings)
    try:
        async with broker:
            await broker.connect()
            client = HubClient(settings, broker=broker)
            first = next(e.envelope for e in events if e.envelope is not None)
            warm = fresh_copy(first, "footprint")
            expected = len(planned_deliveries([warm], directory)[0])
            await client.publish(warm)

            async def stored() -> bool:
                memory(hubs, kafka)  # fails early if a part died
                return (await store.totals()).deliveries >= expected

            await wait_until(stored, 120, "the warm-up message in the store", 0.1)
            await asyncio.sleep(args.settle)
            start = memory(hubs, kafka)
            samples: list[tuple[float, dict[str, int | None]]] = []
            sampler = asyncio.create_task(
                sample(hubs, kafka, args.duration / args.samples, samples)
            )
            try:
                played = await play(events, args.rate, client, Outbox(broker, settings))
            finally:
                sampler.cancel()
            await asyncio.sleep(args.settle)  # let the last records through
            after = memory(hubs, kafka)
            peak: dict[str, int | None] = {part: hub.peak_kib() for part, hub in hubs.items()}
            totals = await store.totals()
    finally:
        for hub in hubs.values():
            hub.stop()
        await engine.dispose()
    return {"start": start, "after": after, "peak": peak}, played, totals, samples


async def main_async(args: argparse.Namespace) -> None:
    env = run_environment(duration_s=args.duration, rate=args.rate, store="sqlite")
    with tempfile.TemporaryDirectory(prefix="bench-fp-") as scratch_dir, local_kafka() as kafka:
        scratch = Path(scratch_dir)
        log = (scratch / "bench.log").open("w", encoding="utf-8")
        configure_logging("json", "WARNING", stream=log)
        sink = SmtpSink(scratch / "mail", scratch)
        try:
            async with asyncio.timeout(args.max_wall):
                readings, played, totals, samples = await measure(args, kafka, scratch, sink)
        finally:
            sink.stop()
            logging.shutdown()
            log.close()
    start, after, peak = readings["start"], readings["after"], readings["peak"]
    rows = [
        [
            part,
            mib(start.get(part)),
            mib(after.get(part)),
            mib(peak.get(part)),
            _change(start.get(part), after.get(part)),
        ]
        for part in [*PARTS, BROKER]
    ]
    print_table(
        f"Footprint, RSS in MiB, {played:,} simulator events over {args.duration:.0f} s",
        ["process", "at start", f"after {args.duration:.0f} s", "peak (VmHWM)", "change"],
        rows,
    )
    print_table(
        "Footprint over the run, RSS in MiB",
        ["seconds into the load", *PARTS, BROKER],
        [[f"{at:.0f}", *(mib(m.get(p)) for p in [*PARTS, BROKER])] for at, m in samples],
    )
    print(
        f"store after the run: {totals.deliveries:,} deliveries, {totals.receipted:,} receipted,"
        f" {totals.notifications_sent:,} notifications sent"
    )
    print(describe({**env, "load avg at end": load_average()}))


def _broker_rss(kafka: KafkaCluster) -> int | None:
    pid = kafka.nodes[0].pid
    return proc_status_kib(pid, "VmRSS") if pid else None


def _change(before: int | None, now: int | None) -> str:
    if before is None or now is None:
        return "–"
    return f"{(now - before) / 1024:+,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=20.0, help="simulator events per second")
    parser.add_argument("--settle", type=float, default=5.0, help="idle seconds before reading")
    parser.add_argument("--samples", type=int, default=5, help="readings during the load")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-wall", type=float, default=1200.0, help="whole run, seconds")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
