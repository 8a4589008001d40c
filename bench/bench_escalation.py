"""Escalation: from the on-call step's due time to the e-mail accepted by a local SMTP server.

The hub's scanner and notifier run in this process (`Hub.open(parts={notifier})`, as a one-process
`hub run` does) on a real broker, a SQLite store and the aiosmtpd sink in its own process
(`python -m hub.notify.smtp_sink`). Each round:

1. seeds `--per-unit` deliveries for every recipient unit of the directory, routed two hours
   and due one hour before now, so the on-call level (due + 60 min) is reached exactly now;
2. runs one scan at now (`Scanner.scan(now)`: reads the deliveries due for a level, plans one
   level-2 digest per unit, records them, publishes them to the escalations topic);
3. waits until the sink has written one .eml per digest (the notifier consumed each digest,
   resolved the on-call person and sent over SMTP).

A sample is one digest's e-mail: from the start of the scan to the file's modification time
(the sink writes it before answering 250). With the scanner on its schedule, add up to one scan
interval (`hub run`: 60 s) on top: a level is noticed by the first scan at or after its instant.

    python -m bench.bench_escalation --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import local_kafka, print_table
from bench.support import (
    SmtpSink,
    describe,
    load_average,
    ms,
    percentile,
    run_environment,
    settle,
    sqlite_url,
)
from hub.app import Hub, Part
from hub.clock import SystemClock
from hub.directory import Unit
from hub.logs import configure_logging
from hub.ops.views import RECIPIENT_KINDS
from hub.settings import KafkaSettings, Settings, SmtpSettings
from hub.store.repository import NewDelivery
from topics.catalogue import MessageType
from topics.examples import load_example
from topics.messages import DeliveryRole


@dataclass(frozen=True, slots=True)
class Round:
    """One scan and the e-mails it caused."""

    digests: int
    scan_s: float
    latencies: list[float]


def seed_rows(units: list[Unit], per_unit: int, now: datetime) -> list[NewDelivery]:
    """Deliveries whose on-call level (due + 60 min) is reached at ``now``."""
    envelope = load_example(MessageType.ADMISSION_NOTICE)
    rows = []
    for unit in units:
        for _ in range(per_unit):
            copy = envelope.model_copy(update={"message_id": uuid.uuid4()})
            rows.append(
                NewDelivery(
                    delivery_id=uuid.uuid4(),
                    message_id=copy.message_id,
                    message_type=copy.message_type.value,
                    episode_id=copy.episode_id,
                    recipient=unit.hsa_id,
                    recipient_kind=unit.kind.value,
                    role=DeliveryRole.RECIPIENT.value,
                    routed_at=now - timedelta(hours=2),
                    due_at=now - timedelta(minutes=60),
                    directory_version=1,
                    envelope_json=copy.model_dump_json(),
                )
            )
    return rows


def mail_files(outdir: Path) -> list[Path]:
    return list(outdir.glob("*.eml"))


async def one_round(hub: Hub, units: list[Unit], per_unit: int, outdir: Path) -> Round:
    before = {p.name for p in mail_files(outdir)}
    now = datetime.now(UTC)
    await hub.store.add_deliveries(seed_rows(units, per_unit, now))
    started_wall = time.time()
    started = time.perf_counter()
    result = await hub.scanner.scan(datetime.now(UTC))
    scan_s = time.perf_counter() - started
    if not await settle(lambda: len(mail_files(outdir)) - len(before) >= result.digests, 120):
        msg = f"only {len(mail_files(outdir)) - len(before)} of {result.digests} e-mails arrived"
        raise TimeoutError(msg)
    new = [p for p in mail_files(outdir) if p.name not in before]
    return Round(result.digests, scan_s, [p.stat().st_mtime - started_wall for p in new])


async def main_async(args: argparse.Namespace) -> None:
    env = run_environment(rounds=args.rounds, per_unit=args.per_unit, store="sqlite")
    with (
        local_kafka() as kafka,
        tempfile.TemporaryDirectory(prefix="bench-esc-") as scratch_dir,
    ):
        scratch = Path(scratch_dir)
        log = (scratch / "hub.log").open("w", encoding="utf-8")
        configure_logging("json", "INFO", stream=log)
        sink = SmtpSink(scratch / "mail", scratch)
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap, topic_prefix="esc."),
            smtp=SmtpSettings(port=sink.port),
            database_url=sqlite_url(scratch / "hub.sqlite3"),
        )
        rounds: list[Round] = []
        try:
            async with asyncio.timeout(args.max_wall):
                hub = await Hub.open(settings, SystemClock(), parts={Part.NOTIFIER})
                units = sorted(
                    (
                        u
                        for u in hub.directory.current.units
                        if u.active and u.kind in RECIPIENT_KINDS
                    ),
                    key=lambda u: u.hsa_id,
                )
                stop = asyncio.Event()
                runner = asyncio.create_task(hub.run(stop))
                try:
                    if not await settle(lambda: bool(hub.broker.running), 60):
                        msg = "the hub's broker did not start within 60 s"
                        raise TimeoutError(msg)
                    # Round 0 warms up: the notifier's consumer joins its group, SMTP connects.
                    await one_round(hub, units[:1], 1, sink.outdir)
                    for number in range(1, args.rounds + 1):
                        done = await one_round(hub, units, args.per_unit, sink.outdir)
                        rounds.append(done)
                        print(
                            f"round {number}: {done.digests} digests, scan {ms(done.scan_s)} ms,"
                            f" last e-mail {ms(max(done.latencies))} ms after the scan started"
                        )
                finally:
                    stop.set()
                    await runner
        finally:
            sink.stop()
            logging.shutdown()
            log.close()
    latencies = [x for r in rounds for x in r.latencies]
    scans = [r.scan_s for r in rounds]
    print_table(
        "Escalation, on-call step due → e-mail accepted by the SMTP sink (ms)",
        ["digests", "units × rounds", "scan p50", "e-mail p50", "p95", "p99", "max"],
        [
            [
                f"{len(latencies):,}",
                f"{len(units)} × {len(rounds)}",
                ms(percentile(scans, 50)),
                ms(percentile(latencies, 50)),
                ms(percentile(latencies, 95)),
                ms(percentile(latencies, 99)),
                ms(max(latencies, default=float("nan"))),
            ]
        ],
    )
    print(describe({**env, "load avg at end": load_average()}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10, help="scans, each one digest per unit")
    parser.add_argument("--per-unit", type=int, default=3, help="due deliveries per unit and scan")
    parser.add_argument("--max-wall", type=float, default=600.0, help="whole run, seconds")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
