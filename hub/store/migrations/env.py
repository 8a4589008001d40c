"""Alembic's entry point, run by ``alembic.command`` for every migration command.

Two ways in:

* **Programmatic** (the hub's way): :func:`hub.store.migrate.upgrade` opens the connection and
  the transaction itself and hands the connection over in ``config.attributes["connection"]``;
  this file then only configures the context and runs the migrations on it.
* **Standalone** (a developer running ``alembic.command`` with a config from
  :func:`hub.store.migrate.alembic_config`): the URL comes from ``sqlalchemy.url`` and this file
  opens an async engine of its own, through :func:`hub.store.engine.create_engine`, so SQLite
  gets the same pragmas and transaction handling as in production.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from hub.store.engine import WRITE, create_engine
from hub.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: later revisions use batch mode (copy and move).
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(**WRITE)
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def _run() -> None:
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=target_metadata,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        msg = "sqlalchemy.url: not set; use hub.store.migrate.alembic_config(url)"
        raise RuntimeError(msg)
    asyncio.run(_run_standalone(url))


_run()
