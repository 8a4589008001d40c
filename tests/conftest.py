"""Session-wide real components: the Kafka broker(s). Everything else is function-scoped.

The single-node broker starts lazily, the first time a test asks for it, and stops at the end
of the run. If it cannot start, every test that needs it fails with the launcher's reason: it
never skips. The three-node cluster starts only for tests marked `cluster`.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from deploy.kafka.launcher import KafkaCluster, free_port_pairs
from tests.support.postgres import (
    MISSING_SERVER,
    PostgresServer,
    PostgresUnavailable,
    find_bin_dir,
)


@pytest.fixture(scope="session")
def kafka_run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh scratch folder for this run's brokers (no stale KRaft state)."""
    return tmp_path_factory.mktemp("kafka")


@pytest.fixture(scope="session")
def kafka(kafka_run_root: Path) -> Iterator[KafkaCluster]:
    """A real single-node KRaft broker on a free loopback port, for the whole run."""
    cluster = KafkaCluster(
        run_dir=kafka_run_root / "single", nodes_count=1, ports=free_port_pairs(1)
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kafka_cluster(kafka_run_root: Path) -> Iterator[KafkaCluster]:
    """A real three-node KRaft cluster (each node broker and controller), for fault tests."""
    cluster = KafkaCluster(
        run_dir=kafka_run_root / "three", nodes_count=3, ports=free_port_pairs(3)
    )
    cluster.start(timeout_s=180)
    try:
        yield cluster
    finally:
        cluster.stop(timeout_s=15)


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
def bootstrap(kafka: KafkaCluster) -> str:
    """Bootstrap servers of the single-node broker."""
    return kafka.bootstrap


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A per-test prefix, so every test gets fresh topics and consumer groups."""
    name = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:40].strip("-")
    return f"t-{name}-{uuid.uuid4().hex[:8]}."


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Every test starts with structlog's defaults and an empty context."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def pytest_configure(config: pytest.Config) -> None:
    # Subprocesses started by tests (consumer workers) import the repo's packages.
    root = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
