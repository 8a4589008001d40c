"""What several benchmarks share beyond `bench.common`: hub processes, stores, data, figures.

* `run_environment()` adds the load average (2 shared cores: other work shows in the figures)
  and the SQLite version to `bench.common.environment()`.
* `HubProcess` runs one part of the hub as production does (`hub run --only router`), as a
  child process configured only by `HUB_*` variables, and reads its memory from /proc.
* `SmtpSink` runs the aiosmtpd sink (`python -m hub.notify.smtp_sink`) in its own process.
* `local_postgres()` starts a throw-away PostgreSQL (the test suite's `PostgresServer`).
* `simulated_traffic()` draws seeded Norrbotten traffic from the simulator, and
  `planned_deliveries()` the delivery ids the router will make of it (the same pure step).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from bench.common import environment
from deploy.kafka.launcher import free_port, wait_port
from hub.calendar import STOCKHOLM
from hub.deliveries import EpisodeRecord, PlannedDelivery, plan
from hub.directory import Directory
from hub.errors import HubError
from hub.settings import Settings
from producers.simulator import SimEvent, simulate
from tests.support.postgres import MISSING_SERVER, PostgresServer, find_bin_dir
from topics.messages import Envelope

T = TypeVar("T")

#: Simulated traffic starts here: a Monday, long enough before "now" that nothing is in the future.
SIM_START = datetime(2026, 1, 5, 0, 0, tzinfo=STOCKHOLM)
SEED = 2026


# --- environment and figures ------------------------------------------------------------------


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine shows here)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_environment(**parameters: object) -> dict[str, str]:
    """`bench.common.environment()` plus load average, SQLite version and the parameters."""
    return {
        **environment(),
        "sqlite": sqlite3.sqlite_version,
        "load avg (1/5/15 min)": load_average(),
        **{name: str(value) for name, value in parameters.items()},
    }


def describe(env: dict[str, str]) -> str:
    """The environment as one line under a table."""
    return "; ".join(f"{k} {v}" for k, v in env.items())


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    """Seconds as milliseconds for a table cell."""
    if math.isnan(seconds):
        return "–"
    return f"{seconds * 1000:,.1f}" if seconds < 10 else f"{seconds * 1000:,.0f}"


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.05
) -> None:
    """Poll ``check`` until it is true; ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            msg = f"{what}: not reached within {timeout_s:.0f} s"
            raise TimeoutError(msg)
        await asyncio.sleep(interval_s)


async def settle(done: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``done`` until it is true (True) or ``timeout_s`` passed (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if done():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)


def proc_status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (``VmRSS``, ``VmHWM``); None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def hub_environment(settings: Settings) -> dict[str, str]:
    """The ``HUB_*`` variables that give a child `hub` process ``settings``' broker and store."""
    return {
        **os.environ,
        "HUB_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "HUB_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_SMTP__PORT": str(settings.smtp.port),
        "HUB_LOG_FORMAT": "json",
    }


def _hub_command() -> list[str]:
    script = Path(sys.executable).with_name("hub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]


class HubProcess:
    """One `hub run --only <part> ...` child process, logging to a file, stopped with SIGTERM."""

    def __init__(
        self,
        parts: Sequence[str],
        settings: Settings,
        log_dir: Path,
        *,
        profile_dir: Path | None = None,
    ) -> None:
        """Start it; with ``profile_dir``, under cProfile (``<part>.prof`` written at exit)."""
        self.name = "+".join(parts)
        self.log_path = log_dir / f"hub-{self.name}.log"
        command = (
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(profile_dir / f"{self.name}.prof"),
                "-m",
                "hub.cli",
            ]
            if profile_dir is not None
            else _hub_command()
        )
        argv = [*command, "run"]
        for part in parts:
            argv += ["--only", part]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv, env=hub_environment(settings), stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int | None:
        """Resident memory now."""
        return proc_status_kib(self.pid, "VmRSS")

    def peak_kib(self) -> int | None:
        """The most resident memory so far (the high-water mark)."""
        return proc_status_kib(self.pid, "VmHWM")

    def check_alive(self) -> None:
        """Raise, with the tail of its log, if the process has exited."""
        code = self.process.poll()
        if code is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            msg = f"hub {self.name} exited with {code}; log tail:\n{tail}"
            raise RuntimeError(msg)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (the hub shuts down in order), SIGKILL if it has not exited in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class SmtpSink:
    """The aiosmtpd sink in its own process: every accepted message becomes one .eml file."""

    def __init__(self, outdir: Path, log_dir: Path) -> None:
        self.port = free_port()
        self.outdir = outdir
        outdir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "smtp-sink.log").open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hub.notify.smtp_sink",
                    "--port",
                    str(self.port),
                    "--outdir",
                    str(outdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_port(self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def local_postgres() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL server on loopback (the test lane's: fsync and sync commit off)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit(MISSING_SERVER)
    server = PostgresServer(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


# --- data -------------------------------------------------------------------------------------


def simulated_traffic(
    directory: Directory, messages: int, *, seed: int = SEED, start: datetime = SIM_START
) -> list[SimEvent]:
    """The first ``messages`` publish events of seeded Norrbotten traffic, and the receipt events
    among them (in stream order).

    The envelopes carry simulated instants in 2026 (``sent_at``); the hub stamps its own
    ``routed_at``, so the simulated dates only shape the traffic (types, episodes, units).
    """
    events: list[SimEvent] = []
    published = 0
    for event in simulate(directory, start, 3650, seed=seed, episodes_per_year=9000):
        if event.kind == "publish":
            if published == messages:
                break
            published += 1
        events.append(event)
    return events


def envelopes_of(events: Sequence[SimEvent]) -> list[Envelope]:
    """The envelopes of the publish events."""
    return [e.envelope for e in events if e.kind == "publish" and e.envelope is not None]


def planned_deliveries(
    envelopes: Sequence[Envelope], directory: Directory
) -> list[tuple[PlannedDelivery, ...]]:
    """Per envelope, the deliveries the router makes of it (``hub.deliveries.plan``, in order)."""
    episodes: dict[str, EpisodeRecord] = {}
    out: list[tuple[PlannedDelivery, ...]] = []
    for envelope in envelopes:
        try:
            result = plan(envelope, episodes.get(envelope.episode_id or ""), directory)
        except HubError:
            out.append(())
            continue
        if result.record is not None and envelope.episode_id is not None:
            episodes[envelope.episode_id] = result.record
        out.append(result.deliveries)
    return out


def fresh_copy(envelope: Envelope, tag: str) -> Envelope:
    """The envelope with a new message id and its own episode (for warm-up traffic)."""
    return envelope.model_copy(update={"message_id": uuid.uuid4(), "episode_id": f"warm-{tag}"})


@dataclass(frozen=True, slots=True)
class Timed:
    """How long something took, in seconds, and how many items it handled."""

    seconds: float
    items: int

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else math.nan
