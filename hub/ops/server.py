"""Run the ops app under uvicorn inside the hub's own event loop, until told to stop.

The hub process owns signal handling (the CLI sets an ``asyncio.Event`` on SIGTERM/SIGINT and
shuts every part down in order), so uvicorn must not install handlers of its own: ``_Server``
turns that off. Logging stays with ``hub.logs`` (``log_config=None``: uvicorn's stdlib loggers go
through the hub's one structlog chain). Shut-down is bounded by ``graceful_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

__all__ = ["serve"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The hub's CLI handles signals and sets the stop event; see the module docstring.
        yield


async def serve(
    app: FastAPI,
    stop: asyncio.Event,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    sock: socket.socket | None = None,
    graceful_timeout_s: float = 10.0,
) -> None:
    """Serve ``app`` on ``host:port`` (or on the bound ``sock``) until ``stop`` is set.

    Returns when the server has stopped; raises ``RuntimeError`` if it stopped by itself
    (for example, the port was taken) before ``stop`` was set.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        http="h11",
        ws="none",
        server_header=False,
        timeout_graceful_shutdown=int(max(1, graceful_timeout_s)),
    )
    server = _Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock] if sock is not None else None))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # our own cancel of the stop wait
            await stopping
        await serving
    if not stop.is_set():
        msg = "ops app: the HTTP server stopped by itself (is the port taken?)"
        raise RuntimeError(msg)
