"""Engines for the hub's SQL store: SQLite (the embedded default) and PostgreSQL.

SQLite is shared by several processes at once (router, tracker, scanner, ops API), so every
connection is set up for that:

* ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers.
* ``synchronous=FULL``: a committed transaction survives a power cut. Kafka offsets are committed
  only after the store's effect is durable, so "committed" must mean "on disk".
* ``busy_timeout``: a writer waits for another process's write lock instead of failing at once.
* ``foreign_keys=ON``: SQLite leaves them off unless asked, per connection.

The ``sqlite3`` driver (Python < 3.12) does not emit ``BEGIN`` before a ``SELECT``, so a
read-then-write transaction could read outside any transaction. The engine therefore takes over
transaction control and emits its own ``BEGIN``. A transaction that will write should start with
``BEGIN IMMEDIATE`` (execution option :data:`SQLITE_BEGIN`, see :data:`WRITE`): it takes the write
lock up front, waiting up to ``busy_timeout``. A deferred transaction that reads first and
writes later cannot wait: if another process wrote in between, SQLite fails it at once with
"database is locked" (its snapshot is stale), whatever the busy timeout.

PostgreSQL runs through asyncpg with a sized pool (``pool_size`` + ``max_overflow`` connections
at most per process): the hub's concurrency is bounded, and so is its share of the server's
``max_connections``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from hub.errors import ConfigurationError

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "READ",
    "SQLITE_BEGIN",
    "WRITE",
    "Backend",
    "backend_of",
    "create_engine",
    "session_factory",
]

#: Execution option naming the SQLite ``BEGIN`` mode of a transaction (ignored by PostgreSQL).
SQLITE_BEGIN: Final = "hub_sqlite_begin"
#: Execution options of a transaction that writes: ``BEGIN IMMEDIATE`` on SQLite.
WRITE: Final[dict[str, Any]] = {SQLITE_BEGIN: "IMMEDIATE"}
#: Execution options of a read-only transaction: ``BEGIN DEFERRED`` on SQLite (no write lock).
READ: Final[dict[str, Any]] = {SQLITE_BEGIN: "DEFERRED"}

#: How long a SQLite writer waits for another process's write lock before failing.
DEFAULT_BUSY_TIMEOUT_MS: Final = 30_000

_BEGIN_MODES: Final = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
_SQLITE_DRIVERS: Final = frozenset({"sqlite", "sqlite+aiosqlite"})
_POSTGRES_DRIVERS: Final = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})

Backend = Literal["sqlite", "postgresql"]


def backend_of(engine: AsyncEngine) -> Backend:
    """Which of the two supported databases ``engine`` talks to."""
    name = engine.dialect.name
    if name == "sqlite":
        return "sqlite"
    if name == "postgresql":
        return "postgresql"
    msg = f"database_url: unsupported dialect {name!r} (use sqlite or postgresql)"
    raise ConfigurationError(msg)


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout_s: float = 30.0,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    echo: bool = False,
) -> AsyncEngine:
    """An async engine for ``url`` (``Settings.database_url``), set up as the module says.

    ``sqlite://`` and ``postgresql://`` URLs are given their async driver (aiosqlite, asyncpg);
    any other database or driver is a ``ConfigurationError`` naming ``database_url``. For a
    SQLite file the parent folders are created. The caller owns the engine and must
    ``await engine.dispose()`` at shutdown (the last step, after the consumers stopped).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        msg = "database_url: not a database URL (e.g. sqlite+aiosqlite:///./.run/hub.sqlite3)"
        raise ConfigurationError(msg) from exc
    if parsed.drivername in _SQLITE_DRIVERS:
        return _sqlite_engine(parsed, busy_timeout_ms=busy_timeout_ms, echo=echo)
    if parsed.drivername in _POSTGRES_DRIVERS:
        return _create_async_engine(
            parsed.set(drivername="postgresql+asyncpg"),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_s,
            # A server restart or an idle-timeout on a proxy leaves dead connections in the
            # pool; ping on checkout rather than fail the next transaction.
            pool_pre_ping=True,
            echo=echo,
        )
    msg = (
        f"database_url: unsupported driver {parsed.drivername!r} "
        "(use sqlite+aiosqlite:// or postgresql+asyncpg://)"
    )
    raise ConfigurationError(msg)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine`` that keep loaded values after commit (no lazy reload in async)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _sqlite_engine(url: URL, *, busy_timeout_ms: int, echo: bool) -> AsyncEngine:
    if busy_timeout_ms < 0:
        msg = "busy_timeout_ms: must not be negative"
        raise ConfigurationError(msg)
    url = url.set(drivername="sqlite+aiosqlite")
    database = url.database or ""
    if database not in {"", ":memory:"} and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = _create_async_engine(
        url,
        echo=echo,
        connect_args={
            # None: the driver emits no BEGIN of its own; the "begin" hook below does.
            "isolation_level": None,
            # sqlite3's own busy handler, in seconds; the PRAGMA below says the same.
            "timeout": busy_timeout_ms / 1000,
        },
    )
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = str(connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")).upper()
        if mode not in _BEGIN_MODES:
            msg = f"{SQLITE_BEGIN}: must be one of {sorted(_BEGIN_MODES)}"
            raise ConfigurationError(msg)
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
