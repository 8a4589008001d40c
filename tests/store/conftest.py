"""Fixtures of the store tests: every test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server starts once per run, the first time a ``postgres`` test asks for it, and
stops at the end. If Debian's server binaries are missing, or the server does not start, those
tests fail saying why (and how to install it); they never skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import Store


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A :class:`Store` on a freshly migrated database; its engine is disposed afterwards."""
    await upgrade(store_url)
    engine = create_engine(store_url)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()
