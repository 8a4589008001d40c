"""The hub's SQL store (SQLAlchemy 2 async + Alembic): SQLite by default, PostgreSQL for several
hub instances.

* :mod:`hub.store.engine` builds the engine (``create_engine(settings.database_url)``) with the
  SQLite settings that let several processes share one file, or a sized asyncpg pool.
* :mod:`hub.store.migrate` brings a database to the current schema (``await upgrade(url)``);
  every process may call it at start-up.
* :mod:`hub.store.repository` is the one place with SQL: :class:`Store`, whose every method is
  one committed transaction, returning frozen dataclasses.
* :mod:`hub.store.models` is the schema (declarative models), matched by the migrations.

Start-up: ``await upgrade(url)``; ``engine = create_engine(url)``; ``store = Store(engine)``.
Shutdown: ``await engine.dispose()``, last.
"""

from hub.store.engine import create_engine, session_factory
from hub.store.migrate import upgrade
from hub.store.repository import ReceiptOutcome, Store

__all__ = ["ReceiptOutcome", "Store", "create_engine", "session_factory", "upgrade"]
