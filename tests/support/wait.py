"""Waiting without sleeps-as-synchronisation: poll a predicate until a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> T:
    """Await ``probe()`` until ``done(value)``; on timeout fail showing the last value seen."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = await probe()
        if done(last):
            return last
        if time.monotonic() > deadline:
            msg = f"{what} not reached within {timeout_s}s; last value: {last!r}"
            raise AssertionError(msg)
        await asyncio.sleep(interval_s)
