"""Scan cost: one escalation scan (`Scanner.scan(now)`) against the open work and the history.

Three stores per database, each migrated and then seeded fresh by raw SQL, `INSERT ... SELECT`
over rows generated inside the database (SQLite: one transaction, journal and fsync off while
seeding only; PostgreSQL: then VACUUM ANALYZE, as autovacuum would), then opened by the hub's
own `Store`:

* `--small` open deliveries, all due (default 10,000);
* `--large` open deliveries, all due (default 100,000; the issue's figure is 1,000,000);
* `--small` open deliveries plus `--history` receipted ones (default 1,000,000; the issue's
  figure is 10,000,000), older, as a year of traffic leaves them.

Open deliveries are spread evenly over the directory's recipient units, routed 1-2 h ago and due
0-30 min ago (so level 1, the unit's mailbox, is reached and level 2 is not). Rows carry a real
envelope (539 bytes of JSON), as the tracker stores them. History ids are sequential (fast to
insert); open ones are random, as the hub's are.

For each store the table gives the **first scan** (everything is newly due: one level-1 digest
per unit is recorded, a level per delivery, and published to a real broker) and the time of its
read alone (`Store.deliveries_due_for_next_level` before that scan: every open delivery comes
back), then the median of `--rounds` **repeat scans** at the same instant (nothing new to send:
the steady cost of every scan while that much work is open) and the time of their read (no row
comes back). On PostgreSQL also the median repeat scan after a `VACUUM ANALYZE` (what autovacuum
does soon after a scan moved many rows): until then the index of the level the deliveries left
still holds their dead entries. Ratios are against the small store of the same database. The
query plan of the scan's read in the large store is printed for each database.

    python -m bench.bench_scan --large 1000000 --history 10000000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sqlite3
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from sqlalchemy import event

from bench.common import local_kafka, print_table
from bench.support import (
    describe,
    load_average,
    local_postgres,
    run_environment,
    sqlite_url,
)
from hub.broker import build_broker
from hub.directory import DirectoryHistory, load_directory
from hub.escalation import EscalationPolicy, next_level_cutoffs
from hub.logs import configure_logging
from hub.oncall import load_oncall_config
from hub.ops.views import RECIPIENT_KINDS
from hub.provision import ensure_topics
from hub.publishing import Outbox
from hub.scanner import Scanner
from hub.settings import KafkaSettings, Settings
from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import Store
from topics.catalogue import MessageType
from topics.examples import load_example

COLUMNS = (
    "delivery_id",
    "message_id",
    "message_type",
    "episode_id",
    "recipient",
    "recipient_kind",
    "role",
    "routed_at",
    "due_at",
    "directory_version",
    "envelope_json",
    "receipted_at",
    "receipt_id",
    "highest_level_sent",
    "acknowledged_at",
)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    pending: int
    history: int


@dataclass(frozen=True, slots=True)
class Measured:
    case: Case
    seed_s: float
    first_s: float
    first_digests: int
    first_read_s: float
    repeat_s: float
    read_s: float
    vacuumed_s: float | None


# --- seeding ----------------------------------------------------------------------------------
# The rows are generated inside the database (a recursive CTE in SQLite, generate_series in
# PostgreSQL) by one INSERT ... SELECT each: no Python per row, so ten million rows take a minute
# or two rather than most of an hour. History is inserted first and ordered by (unit, time), as a
# year of traffic leaves it; open deliveries follow with random ids, spread evenly over the units.

_SQLITE_INSTANT = "strftime('%Y-%m-%dT%H:%M:%S', {}, 'unixepoch') || '.000000Z'"

_SQLITE_HISTORY = f"""
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :n)
INSERT INTO deliveries ({", ".join(COLUMNS)})
SELECT printf('%s%016x', :prefix, i), printf('%s%016x', :prefix, i + :n),
       'admission_notice', 'hist-' || (i / 3), u.hsa, u.kind, 'recipient',
       {_SQLITE_INSTANT.format(":start + (i % :per_unit) * :step")},
       {_SQLITE_INSTANT.format(":start + (i % :per_unit) * :step + 64800")},
       1, :envelope,
       {_SQLITE_INSTANT.format(":start + (i % :per_unit) * :step + 10800")},
       printf('%s%016x', :prefix, i + 2 * :n), 0, NULL
FROM seq JOIN bench_units u ON u.idx = i / :per_unit
"""  # noqa: S608 - fixed column names, values bound

_SQLITE_OPEN = f"""
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :n)
INSERT INTO deliveries ({", ".join(COLUMNS)})
SELECT lower(hex(randomblob(16))), lower(hex(randomblob(16))),
       'admission_notice', 'bench-' || (i / 3), u.hsa, u.kind, 'recipient',
       {_SQLITE_INSTANT.format(":now - 3600 - (i % 3600)")},
       {_SQLITE_INSTANT.format(":now - (i * 7 % 1800)")},
       1, :envelope, NULL, NULL, 0, NULL
FROM seq JOIN bench_units u ON u.idx = i % :units
"""  # noqa: S608 - fixed column names, values bound

_PG_UNITS = "unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(hsa, kind, ord)"

_PG_HISTORY = f"""
INSERT INTO deliveries ({", ".join(COLUMNS)})
SELECT ($4::text || lpad(to_hex(i), 16, '0'))::uuid, ($4 || lpad(to_hex(i + $1), 16, '0'))::uuid,
       'admission_notice', 'hist-' || (i / 3), u.hsa, u.kind, 'recipient',
       $5::timestamptz + make_interval(secs => (i % $6::bigint) * $7::float8),
       $5::timestamptz + make_interval(secs => (i % $6::bigint) * $7::float8 + 64800),
       1, $8::text,
       $5::timestamptz + make_interval(secs => (i % $6::bigint) * $7::float8 + 10800),
       ($4 || lpad(to_hex(i + 2 * $1), 16, '0'))::uuid, 0, NULL
FROM generate_series(0::bigint, $1::bigint - 1) AS i JOIN {_PG_UNITS} ON u.ord = i / $6 + 1
"""  # noqa: S608 - fixed column names, values bound

_PG_OPEN = f"""
INSERT INTO deliveries ({", ".join(COLUMNS)})
SELECT gen_random_uuid(), gen_random_uuid(),
       'admission_notice', 'bench-' || (i / 3), u.hsa, u.kind, 'recipient',
       $4::timestamptz - make_interval(secs => 3600 + i % 3600),
       $4::timestamptz - make_interval(secs => i * 7 % 1800),
       1, $5::text, NULL, NULL, 0, NULL
FROM generate_series(0::bigint, $1::bigint - 1) AS i
JOIN {_PG_UNITS} ON u.ord = i % cardinality($2::text[]) + 1
"""  # noqa: S608 - fixed column names, values bound


@dataclass(frozen=True, slots=True)
class Seed:
    """What to put in a store: how many open and receipted deliveries, for which units."""

    pending: int
    history: int
    units: list[tuple[str, str]]  # (HSA-id, unit kind)
    now: datetime

    @property
    def per_unit(self) -> int:
        return max(1, -(-self.history // len(self.units)))

    @property
    def history_start(self) -> datetime:
        return self.now - timedelta(days=402)

    @property
    def step_s(self) -> float:
        return 400 * 86400 / self.per_unit


def seed_sqlite(path: Path, seed: Seed) -> None:
    """Both INSERTs in one transaction, journal and fsync off (seeding only), then WAL again."""
    envelope = load_example(MessageType.ADMISSION_NOTICE).model_dump_json()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1000000")  # 1 GB of page cache while seeding
        connection.execute("CREATE TEMP TABLE bench_units (idx INTEGER PRIMARY KEY, hsa, kind)")
        connection.executemany(
            "INSERT INTO bench_units VALUES (?, ?, ?)",
            [(i, hsa, kind) for i, (hsa, kind) in enumerate(seed.units)],
        )
        connection.execute("BEGIN")
        if seed.history:
            connection.execute(
                _SQLITE_HISTORY,
                {
                    "n": seed.history,
                    "prefix": uuid.uuid4().hex[:16],
                    "per_unit": seed.per_unit,
                    "start": int(seed.history_start.timestamp()),
                    "step": seed.step_s,
                    "envelope": envelope,
                },
            )
        if seed.pending:
            connection.execute(
                _SQLITE_OPEN,
                {
                    "n": seed.pending,
                    "units": len(seed.units),
                    "now": int(seed.now.timestamp()),
                    "envelope": envelope,
                },
            )
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


async def seed_postgres(url: str, seed: Seed) -> None:
    """Both INSERTs, then VACUUM ANALYZE (what autovacuum does soon after a bulk load)."""
    envelope = load_example(MessageType.ADMISSION_NOTICE).model_dump_json()
    hsas = [hsa for hsa, _ in seed.units]
    kinds = [kind for _, kind in seed.units]
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        if seed.history:
            await connection.execute(
                _PG_HISTORY,
                seed.history,
                hsas,
                kinds,
                uuid.uuid4().hex[:16],
                seed.history_start,
                seed.per_unit,
                seed.step_s,
                envelope,
            )
        if seed.pending:
            await connection.execute(_PG_OPEN, seed.pending, hsas, kinds, seed.now, envelope)
        await connection.execute("VACUUM ANALYZE deliveries")
    finally:
        await connection.close()


# --- measuring --------------------------------------------------------------------------------


async def read_due(store: Store, now: datetime) -> int:
    """What the scanner reads, and nothing else: the deliveries due for their next level."""
    cutoffs = next_level_cutoffs(now, EscalationPolicy())
    return len(await store.deliveries_due_for_next_level(cutoffs))


async def print_plan(store: Store, now: datetime, case: Case) -> None:
    """The database's plan of the scan's read (EXPLAIN QUERY PLAN / EXPLAIN)."""
    captured: list[tuple[str, Any]] = []

    def before(*args: Any) -> None:  # (connection, cursor, statement, parameters, ...)
        captured.append((str(args[2]), args[3]))

    sync_engine = store.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", before)
    try:
        await read_due(store, now)
    finally:
        event.remove(sync_engine, "before_cursor_execute", before)
    statement, parameters = next(c for c in captured if "UNION ALL" in c[0])
    sqlite_db = store.engine.dialect.name == "sqlite"
    explain = "EXPLAIN QUERY PLAN " if sqlite_db else "EXPLAIN "
    async with store.engine.connect() as connection:
        if not sqlite_db:  # as the store reads (Store.deliveries_due_for_next_level)
            await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            await connection.exec_driver_sql("SET LOCAL jit = off")
        plan = (await connection.exec_driver_sql(explain + statement, parameters)).all()
    lines = [str(row[-1]) if sqlite_db else str(row[0]) for row in plan]
    print(f"plan of the scan's read, {store.engine.dialect.name} {case.name}:")
    print("\n".join(f"    {line}" for line in lines))


async def measure(
    case: Case, url: str, seed: float, settings: Settings, outbox: Outbox, args: argparse.Namespace
) -> Measured:
    engine = create_engine(url)
    try:
        store = Store(engine)
        directory = DirectoryHistory(load_directory(settings.directory_file))
        scanner = Scanner(
            store,
            directory,
            load_oncall_config(settings.oncall_file),
            outbox,
            base_url=settings.public_base_url,
        )
        now = args.now
        started = time.perf_counter()
        due = await read_due(store, now)
        first_read_s = time.perf_counter() - started
        if due != case.pending:
            msg = f"{case.name}: read {due} deliveries due for a level, seeded {case.pending}"
            raise RuntimeError(msg)
        profiler = cProfile.Profile() if args.profile and case.pending == args.large else None
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        first = await scanner.scan(now)
        first_s = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
            print(f"profile of the first scan (slowed by the profiler), {case.name}:")
            print(text.getvalue())
        repeats = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            await scanner.scan(now)
            repeats.append(time.perf_counter() - started)
        started = time.perf_counter()
        read = await read_due(store, now)
        read_s = time.perf_counter() - started
        if read != 0:
            msg = f"{case.name}: {read} deliveries still due for a level after the first scan"
            raise RuntimeError(msg)
        if case.pending == args.large:
            await print_plan(store, now, case)
        vacuumed_s = None
        if engine.dialect.name == "postgresql":
            # The first scan moved every delivery up a level: until VACUUM, the index of the
            # level they left still holds an entry per delivery, which the read walks. This is
            # the steady cost once autovacuum has been by.
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql("VACUUM ANALYZE deliveries")
            vacuumed = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                await scanner.scan(now)
                vacuumed.append(time.perf_counter() - started)
            vacuumed_s = statistics.median(vacuumed)
    finally:
        await engine.dispose()
    return Measured(
        case,
        seed,
        first_s,
        first.digests,
        first_read_s,
        statistics.median(repeats),
        read_s,
        vacuumed_s,
    )


async def run_store(
    kind: str,
    cases: list[Case],
    settings: Settings,
    outbox: Outbox,
    args: argparse.Namespace,
    scratch: Path,
) -> list[Measured]:
    directory = load_directory(settings.directory_file)
    units = sorted(
        (u.hsa_id, u.kind.value) for u in directory.units if u.active and u.kind in RECIPIENT_KINDS
    )
    results = []
    if kind == "postgresql":
        with local_postgres() as server:
            for case in cases:
                name = server.create_database("hub_scan")
                url = server.url(name)
                await upgrade(url)
                started = time.perf_counter()
                await seed_postgres(url, Seed(case.pending, case.history, units, args.now))
                seeded = time.perf_counter() - started
                results.append(await measure(case, url, seeded, settings, outbox, args))
                server.drop_database(name)
                _progress(kind, results[-1])
        return results
    for number, case in enumerate(cases):
        path = scratch / f"scan-{number}.sqlite3"
        url = sqlite_url(path)
        await upgrade(url)
        started = time.perf_counter()
        await asyncio.to_thread(
            seed_sqlite, path, Seed(case.pending, case.history, units, args.now)
        )
        seeded = time.perf_counter() - started
        results.append(await measure(case, url, seeded, settings, outbox, args))
        await asyncio.to_thread(_remove, scratch, f"scan-{number}.sqlite3*")
        _progress(kind, results[-1])
    return results


def _remove(folder: Path, pattern: str) -> None:
    for leftover in folder.glob(pattern):
        leftover.unlink()


def _progress(kind: str, m: Measured) -> None:
    print(
        f"{kind} {m.case.name}: seeded in {m.seed_s:.1f} s, first scan {m.first_s:.3f} s"
        f" ({m.first_digests} digests, its read {m.first_read_s:.3f} s),"
        f" repeat {m.repeat_s:.4f} s, its read {m.read_s:.4f} s"
        + ("" if m.vacuumed_s is None else f", repeat after VACUUM {m.vacuumed_s:.4f} s")
    )


async def main_async(args: argparse.Namespace) -> None:
    env = run_environment(rounds=args.rounds)
    cases = [
        Case(f"{args.small:,} open", args.small, 0),
        Case(f"{args.large:,} open", args.large, 0),
        Case(f"{args.small:,} open + {args.history:,} receipted", args.small, args.history),
    ]
    table: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as scratch, local_kafka() as kafka:
        log = (Path(scratch) / "hub.log").open("w", encoding="utf-8")
        configure_logging("json", "WARNING", stream=log)
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap, topic_prefix="scan.")
        )
        await ensure_topics(settings)
        broker = build_broker(settings)
        async with asyncio.timeout(args.max_wall), broker:
            await broker.connect()
            outbox = Outbox(broker, settings)
            for kind in args.stores.split(","):
                results = await run_store(kind, cases, settings, outbox, args, Path(scratch))
                base = results[0]
                table += [
                    [
                        kind,
                        m.case.name,
                        f"{m.seed_s:.0f}",
                        f"{m.first_s:.3f}",
                        f"{m.first_read_s:.3f}",
                        f"{m.repeat_s:.4f}",
                        f"{m.read_s:.4f}",
                        "–" if m.vacuumed_s is None else f"{m.vacuumed_s:.4f}",
                        f"{m.repeat_s / base.repeat_s:.2f}",
                        f"{m.first_s / base.first_s:.2f}",
                    ]
                    for m in results
                ]
        log.close()
    print_table(
        "Escalation scan cost (seconds)",
        [
            "store",
            "deliveries",
            "seeded in",
            "first scan",
            "its read",
            "repeat scan (median)",
            "its read",
            "repeat after VACUUM",
            "repeat ratio",
            "first ratio",
        ],
        table,
    )
    print(describe({**env, "load avg at end": load_average()}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--small", type=int, default=10_000, help="open deliveries, small case")
    parser.add_argument("--large", type=int, default=100_000, help="open deliveries, large case")
    parser.add_argument("--history", type=int, default=1_000_000, help="receipted rows")
    parser.add_argument("--rounds", type=int, default=3, help="repeat scans per store")
    parser.add_argument("--profile", action="store_true", help="cProfile the large first scans")
    parser.add_argument("--max-wall", type=float, default=3600.0, help="whole run, seconds")
    args = parser.parse_args()
    args.now = datetime.now(UTC)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
