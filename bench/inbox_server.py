"""The recipient (inbox) API in a process of its own, for the latency benchmark.

    python -m bench.inbox_server --port 8080 --unit-keys keys.yaml

Serves `hub.ops.api.build_api` with uvicorn (`hub.ops.server.serve`) on 127.0.0.1 over the store
named by `HUB_DATABASE_URL`, until SIGTERM or SIGINT. It only reads: a receipt posted to it is
refused. Its own process, as in production, so that the benchmark's publisher and store watcher
do not share its interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from hub.clock import SystemClock
from hub.directory import DirectoryHistory, load_directory
from hub.ops.api import build_api
from hub.ops.keys import UnitKeyStore
from hub.ops.server import serve
from hub.settings import Settings
from hub.store.engine import create_engine
from hub.store.repository import Store
from topics.topics import TopicName


class NoReceipts:
    """The API's receipt publisher: this server only reads, so it refuses."""

    async def send(self, topic: TopicName, record: object, key: str) -> object:
        msg = f"bench inbox server: no receipts are published ({topic}, {key})"
        raise RuntimeError(msg)


async def main_async(port: int, unit_keys: Path) -> None:
    settings = Settings()
    engine = create_engine(settings.database_url)
    api = build_api(
        settings,
        Store(engine),
        NoReceipts(),
        DirectoryHistory(load_directory(settings.directory_file)),
        SystemClock(),
        UnitKeyStore.from_file(unit_keys),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(api, stop, port=port)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--unit-keys", type=Path, required=True, help="hub.ops.keys file")
    args = parser.parse_args()
    asyncio.run(main_async(args.port, args.unit_keys))


if __name__ == "__main__":
    main()
