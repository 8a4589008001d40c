"""Alembic migrations of the hub's SQL store; run them with ``hub.store.migrate.upgrade``."""
