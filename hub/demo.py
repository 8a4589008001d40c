"""`make demo`: a local Kafka, a handful of messages published and consumed, then a clean stop.

This is the foundation's demo; it grows into the full hub demo (router, tracker, escalation,
notifier, SMTP sink and simulator) as those parts land.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from faststream.kafka import KafkaMessage
from rich.console import Console

from deploy.kafka.launcher import KafkaCluster, ensure_jars
from hub.broker import build_broker, subscriber_options
from hub.settings import KafkaSettings, Settings

console = Console()


async def _round_trip(bootstrap: str, count: int) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415

    topic = "demo.foundation.v1"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    broker = build_broker(Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap)))
    received: list[str] = []
    done = asyncio.Event()

    @broker.subscriber(topic, **subscriber_options("demo-foundation"))
    async def handle(message: KafkaMessage) -> None:
        received.append(message.body.decode())
        console.print(f"  consumed  {message.body.decode()}  (offset committed after handling)")
        if len(received) == count:
            done.set()

    async with broker:
        await broker.start()
        for i in range(count):
            body = f"demo message {i + 1}"
            await broker.publish(body.encode(), topic, key=b"episode-1")
            console.print(f"  published {body}  (acks=all, idempotent)")
        async with asyncio.timeout(30):
            await done.wait()
    return received


def main() -> None:
    """Start Kafka, round-trip a few messages, stop Kafka."""
    run_dir = Path(".run/demo-kafka")
    shutil.rmtree(run_dir, ignore_errors=True)
    console.rule("Discharge-planning hub: demo")
    t0 = time.monotonic()
    with console.status("Fetching Kafka jars (first time only)…"):
        ensure_jars()
    cluster = KafkaCluster(run_dir=run_dir, nodes_count=1)
    with console.status("Starting a local Kafka broker…"):
        cluster.start()
    console.print(f"Kafka ready at {cluster.bootstrap} after {time.monotonic() - t0:.1f} s")
    try:
        received = asyncio.run(_round_trip(cluster.bootstrap, 5))
        console.print(f"[green]{len(received)} messages published and consumed.[/green]")
    finally:
        cluster.stop()
        console.print("Kafka stopped.")


if __name__ == "__main__":
    main()
