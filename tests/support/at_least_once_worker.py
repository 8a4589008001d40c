"""A consumer process for the crash test: a FastStream subscriber that records each message.

Run as ``python -m tests.support.at_least_once_worker BOOTSTRAP TOPIC GROUP OUTFILE``. For every
message it appends the message's id to OUTFILE and fsyncs (the durable effect), and only then
does the hub's ack policy commit the offset. The test SIGKILLs it mid-stream and starts it again.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from faststream import FastStream
from faststream.kafka import KafkaMessage

from hub.broker import build_broker, subscriber_options
from hub.settings import KafkaSettings, Settings


def main() -> None:
    bootstrap, topic, group, outfile = sys.argv[1:5]
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap))
    broker = build_broker(settings)
    out = Path(outfile).open("a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    @broker.subscriber(topic, **subscriber_options(group))
    async def record(message: KafkaMessage) -> None:
        out.write(message.body.decode() + "\n")
        out.flush()
        os.fsync(out.fileno())

    asyncio.run(FastStream(broker).run())


if __name__ == "__main__":
    main()
