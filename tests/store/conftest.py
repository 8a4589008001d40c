"""Fixtures of the store tests: every test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server starts once per run, the first time a ``postgres`` test asks for it, and
stops at the end. If Debian's server binaries are missing, or the server does not start, those
tests fail saying why (and how to install it); they never skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import Store
from tests.support.postgres import (
    MISSING_SERVER,
    PostgresServer,
    PostgresUnavailable,
    find_bin_dir,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1 for the whole run (Debian's package)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.fail(MISSING_SERVER, pytrace=False)
    try:
        server = PostgresServer(bin_dir)
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
    except PostgresUnavailable as exc:
        server.stop()
        pytest.fail(f"PostgreSQL test server did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store' / 'hub.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A :class:`Store` on a freshly migrated database; its engine is disposed afterwards."""
    await upgrade(store_url)
    engine = create_engine(store_url)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()
