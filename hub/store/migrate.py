"""Bring a database to the current schema by running the Alembic migrations from code.

No ``alembic.ini`` is involved: :func:`alembic_config` builds the configuration in code and
points it at the ``migrations`` folder inside this package, so the same call works from a
checkout and from an installed wheel. Every hub process may call :func:`upgrade` at start-up:

* the whole upgrade is one transaction (both databases have transactional DDL), so a crash
  leaves the previous revision, never half a revision;
* concurrent upgrades from several processes are serialised: on SQLite by ``BEGIN IMMEDIATE``
  (the write lock, waiting up to the busy timeout), on PostgreSQL by a transaction-scoped
  advisory lock. The second process then finds the database at head and does nothing.

Writing the next revision: ``alembic.command.revision(alembic_config(url), message="...",
rev_id="0002", autogenerate=True)`` proposes a file from the models; review it and spell it out
like ``0001_initial.py`` (no runtime autogeneration, no imports from ``hub.store.models``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection

from hub.store.engine import WRITE, backend_of, create_engine

__all__ = ["HEAD", "MIGRATIONS_DIR", "alembic_config", "upgrade"]

#: The folder holding ``env.py`` and ``versions/``, wherever the package is installed.
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
#: The newest revision; a test checks it is Alembic's head.
HEAD: Final = "0002"
# pg_advisory_xact_lock key: "hub.store.migrate" as a fixed 63-bit number.
_PG_MIGRATION_LOCK: Final = 0x6875_622E_6D69_6772


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration for this package's migrations, optionally for ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        # ConfigParser interpolates '%': a URL-encoded password must not be read as a reference.
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


async def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (the newest by default), in one transaction.

    Safe to call from every process at start-up and when already at ``revision``.
    """
    engine = create_engine(url, pool_size=1, max_overflow=0)
    config = alembic_config()
    try:
        async with engine.connect() as connection:
            await connection.execution_options(**WRITE)
            async with connection.begin():
                if backend_of(engine) == "postgresql":
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                    )
                await connection.run_sync(_upgrade_on, config, revision)
    finally:
        await engine.dispose()


def _upgrade_on(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
