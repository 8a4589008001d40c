"""`make demo`: the whole hub on this machine, over Christmas 2026 in accelerated time.

One command starts a local Kafka broker, an SMTP sink (aiosmtpd, in its own process), the hub
(router, tracker, escalation scanner and notifier, in this process) and the Norrbotten simulator,
which publishes through the SDK exactly as a journal system would. Simulated time runs from
Wednesday 23 December 2026 12:00 to Sunday 27 December 24:00 at 3,600× (one simulated hour per
second): Christmas Eve, Christmas Day and Boxing Day are holidays with one reading round a day.
Luleå's assessment unit (*biståndsenheten*) does not receipt from 24 to 27 December — the
Christmas backlog the project leads used to count by hand — so its deliveries climb the ladder:
reminder to the unit, the municipality's on-call staff (*jour*), the unit manager.

The terminal shows the traffic, the ladder and every e-mail as it arrives, then a summary.
Everything the demo writes is under `.run/demo/` (hub log, SQLite store, e-mails as .eml).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from rich.console import Console
from rich.table import Table

from deploy.kafka.launcher import KafkaCluster, ensure_jars, free_port, free_port_pairs, wait_port
from hub.app import Hub
from hub.calendar import STOCKHOLM, holiday_name
from hub.clock import AcceleratedClock
from hub.directory import Directory
from hub.logs import configure_logging
from hub.notify.smtp_sink import read_messages
from hub.ops.receipts import receipt_for
from hub.ops.settings import OpsSettings
from hub.publishing import Outgoing
from hub.settings import KafkaSettings, Settings, SmtpSettings
from hub.store.engine import create_engine
from hub.store.repository import Store
from producers.sdk import HubClient
from producers.simulator import christmas_backlog, simulate
from producers.simulator.runner import run as run_simulation
from topics.ids import delivery_id_for
from topics.messages import Envelope, ReceiptChannel
from topics.topics import TopicName

console = Console(highlight=False, width=120)

RUN_DIR = Path(".run/demo")
SIM_START = datetime(2026, 12, 23, 12, 0, tzinfo=STOCKHOLM)
SIM_END = datetime(2026, 12, 28, 0, 0, tzinfo=STOCKHOLM)
SPEED = 3600.0  # one simulated hour per wall-clock second
BACKLOG_MUNICIPALITY = "2580"  # Luleå: the largest assessment unit, so the backlog shows
SEED = 2026


def _local(instant: datetime) -> str:
    local = instant.astimezone(STOCKHOLM)
    day = holiday_name(local.date())
    tag = f" ({day})" if day else ""
    return f"{local:%a %d %b %H:%M}{tag}"


def _start_smtp_sink(port: int, outdir: Path) -> subprocess.Popen[bytes]:
    outdir.mkdir(parents=True, exist_ok=True)
    log = (RUN_DIR / "smtp-sink.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.notify.smtp_sink",
            "--port",
            str(port),
            "--outdir",
            str(outdir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


class Narrator:
    """Prints what the hub does as it happens: totals, ladder steps and arriving e-mails."""

    def __init__(self, hub: Hub, clock: AcceleratedClock, mail_dir: Path) -> None:
        self.hub = hub
        self.clock = clock
        self.mail_dir = mail_dir
        self.seen_mail = 0
        self.levels: dict[int, int] = {}
        self.last_line = 0.0
        self.mail: list[EmailMessage] = []

    async def tick(self) -> None:
        totals = await self.hub.store.totals()
        for level, count in sorted(totals.escalations_by_level.items()):
            if count > self.levels.get(level, 0):
                label = {1: "påminnelse till enheten", 2: "jour/beredskap", 3: "enhetschef"}[level]
                console.print(
                    f"[yellow]{_local(self.clock.now())}  eskalering nivå {level} ({label}):"
                    f" {count - self.levels.get(level, 0)} nya sammanställningar[/yellow]"
                )
                self.levels[level] = count
        self.mail = read_messages(self.mail_dir)
        for message in self.mail[self.seen_mail :]:
            subject = " ".join(str(message["Subject"]).split())
            console.print(f"[cyan]{_local(self.clock.now())}  ✉ {message['To']}: {subject}[/cyan]")
        self.seen_mail = len(self.mail)
        if time.monotonic() - self.last_line > 6:
            self.last_line = time.monotonic()
            console.print(
                f"{_local(self.clock.now())}  levererat {totals.deliveries}, kvitterat"
                f" {totals.receipted}, okvitterat {totals.open}"
            )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            await asyncio.sleep(0.5)


async def _demo(bootstrap: str, smtp_port: int) -> None:
    ops_port = free_port()
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="demo."),
        smtp=SmtpSettings(port=smtp_port),
        ops=OpsSettings(port=ops_port, dashboard_poll_s=1.0),
        public_base_url=f"http://127.0.0.1:{ops_port}",
        database_url=f"sqlite+aiosqlite:///{(RUN_DIR / 'hub.sqlite3').resolve()}",
        log_format="json",
    )
    clock = AcceleratedClock(SIM_START, SPEED)
    hub = await Hub.open(settings, clock)
    directory = hub.directory.current
    behaviour = christmas_backlog(2026, municipality_code=BACKLOG_MUNICIPALITY)
    events = simulate(
        directory,
        SIM_START,
        (SIM_END - SIM_START).days,
        seed=SEED,
        episodes_per_year=12_000,
        behaviour=behaviour,
    )
    events_in_window = [e for e in events if e.at < SIM_END]
    stop = asyncio.Event()
    narrator = Narrator(hub, clock, RUN_DIR / "mail")
    published: Counter[str] = Counter()

    async with HubClient(settings) as client:

        async def publish(envelope: Envelope) -> None:
            await client.publish(envelope)
            published[envelope.message_type.value] += 1

        async def receipt(message_id: uuid.UUID, unit: str, at: datetime) -> None:
            delivery_id = delivery_id_for(message_id, unit)
            record = receipt_for(delivery_id, unit, ReceiptChannel.KAFKA, unit, at)
            await hub.outbox.send_many([Outgoing(TopicName.RECEIPTS, record, unit)])

        runner = asyncio.create_task(hub.run(stop, scan_interval_s=1.0))
        narration = asyncio.create_task(narrator.run(stop))
        console.print(f"Översikt (dashboard) under körningen: http://127.0.0.1:{ops_port}/")
        console.print(
            f"Simulerad tid {_local(SIM_START)} – {_local(SIM_END - timedelta(minutes=1))},"
            f" {SPEED:.0f}× snabbare; {len(events_in_window)} händelser."
        )
        try:
            await run_simulation(
                events_in_window,
                publish,
                receipt,
                clock_mode="accelerated",
                speed=SPEED,
                sim_start=SIM_START,
                start_wall=asyncio.get_running_loop().time()
                - (clock.now() - SIM_START).total_seconds() / SPEED,
            )
            # Let the last events through the pipeline and one more scan run.
            await asyncio.sleep(4)
            await narrator.tick()
        finally:
            stop.set()
            await runner
            narration.cancel()
    await _summary(hub, narrator, published, directory)


async def _summary(
    hub: Hub, narrator: Narrator, published: Counter[str], directory: Directory
) -> None:
    engine = create_engine(hub.settings.database_url)
    store = Store(engine)
    try:
        totals = await store.totals()
        backlog = await store.unreceipted_by_unit(SIM_END)
    finally:
        await engine.dispose()
    narrator.mail = read_messages(narrator.mail_dir)  # what arrived while stopping too
    console.rule("Sammanfattning")
    table = Table("meddelandetyp", "publicerade")
    for kind, count in sorted(published.items()):
        table.add_row(kind, str(count))
    console.print(table)
    console.print(
        f"Leveranser {totals.deliveries}, kvitterade {totals.receipted}, okvitterade {totals.open};"
        f" eskaleringar per nivå {dict(sorted(totals.escalations_by_level.items()))};"
        f" e-post skickade {totals.notifications_sent},"
        f" mottagna av SMTP-sänkan {len(narrator.mail)}."
    )
    units = Table("enhet", "okvitterade", "äldsta väntat")
    for row in sorted(backlog, key=lambda b: -b.count)[:8]:
        unit = directory.unit(row.unit)
        name = unit.name if unit else row.unit
        hours = row.oldest_age.total_seconds() / 3600
        units.add_row(name, str(row.count), f"{hours:.0f} tim")
    console.print(units)
    backlog_unit = directory.municipal_units(BACKLOG_MUNICIPALITY)
    if backlog_unit is not None:
        stuck = next((b.count for b in backlog if b.unit == backlog_unit.assessment_unit.hsa_id), 0)
        console.print(
            f"{backlog_unit.assessment_unit.name} kvitterade inget 24–27 december: {stuck}"
            " okvitterade vid periodens slut; jour och enhetschef fick sammanställningar, inga"
            " patientuppgifter."
        )
    console.print(f"Loggar, databas och e-post: {RUN_DIR}/")


def main() -> None:
    """Start Kafka and the SMTP sink, run the hub and the simulator, print, stop."""
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    configure_logging("json", "INFO", stream=(RUN_DIR / "hub.log").open("w", encoding="utf-8"))
    console.rule("Samordnad utskrivning – demo")
    t0 = time.monotonic()
    with console.status("Hämtar Kafka (första gången) och startar en lokal broker…"):
        ensure_jars()
        cluster = KafkaCluster(run_dir=RUN_DIR / "kafka", nodes_count=1, ports=free_port_pairs(1))
        cluster.start()
    console.print(f"Kafka redo på {cluster.bootstrap} efter {time.monotonic() - t0:.1f} s")
    smtp_port = free_port()
    sink = _start_smtp_sink(smtp_port, RUN_DIR / "mail")
    try:
        wait_port(smtp_port, what="the SMTP sink")
        console.print(f"SMTP-sänka (aiosmtpd) på 127.0.0.1:{smtp_port}")
        asyncio.run(_demo(cluster.bootstrap, smtp_port))
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)
        cluster.stop()
        console.print("Kafka och SMTP-sänkan stoppade.")


if __name__ == "__main__":
    main()
