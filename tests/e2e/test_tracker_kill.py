"""The tracker process SIGKILLed in the middle of a batch of receipts, then restarted.

A batch that holds a receipt for a delivery the hub never made waits (the consume guard's
retries, seconds) before dead-lettering it, with the rest of the batch already stored and its
offsets not yet committed. Killing the process in that window must lose nothing and apply
nothing twice: after the restart the batch is read again, its receipts are duplicates, the
unknown one is dead-lettered once, and the group commits to the end of the topic.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import func, select

from consumers.tracker import RECEIPTS_GROUP
from hub.app import Hub
from hub.calendar import STOCKHOLM
from hub.clock import FixedClock
from hub.publishing import Outgoing
from hub.settings import KafkaSettings, Settings
from hub.store.models import Receipt as ReceiptRow
from tests.support.envelopes import make_envelope
from tests.support.kafka import group_lag, read_topic
from tests.support.wait import eventually
from topics.catalogue import MessageType, UnitKind
from topics.codec import decode
from topics.deadletter import DeadLetterReason
from topics.ids import delivery_id_for
from topics.messages import DeadLetter, Delivery, DeliveryRole, Receipt, ReceiptChannel
from topics.topics import TopicName

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
STAFF = "SE2321000230-SYNSTAFF01"
UNITS = ("SE2321000230-SYNHCHERTSO", "SE2120000000-SYN2580BIS", "SE2120000000-SYN2580HSV")
ROUTED_AT = datetime(2027, 1, 22, 16, 0, tzinfo=STOCKHOLM).astimezone(UTC)
PER_UNIT = 40


def delivery_to(unit: str) -> Delivery:
    envelope = make_envelope(MessageType.PLANNING_DOCUMENT, episode_id=f"sunderby:{uuid.uuid4()}")
    return Delivery(
        delivery_id=delivery_id_for(envelope.message_id, unit),
        message=envelope,
        recipient=unit,
        recipient_kind=UnitKind.HEALTH_CENTRE,
        role=DeliveryRole.RECIPIENT,
        routed_at=ROUTED_AT,
        directory_version=1,
    )


def receipt_of(delivery_id: uuid.UUID, unit: str) -> Outgoing:
    receipt = Receipt(
        receipt_id=uuid.uuid4(),
        delivery_id=delivery_id,
        unit=unit,
        receipted_at=ROUTED_AT,
        receipted_by=STAFF,
        channel=ReceiptChannel.KAFKA,
    )
    return Outgoing(TopicName.RECEIPTS, receipt, unit)


async def start_tracker(settings: Settings, log: IO[bytes]) -> asyncio.subprocess.Process:
    """``hub run --only tracker`` as its own process, on the test's settings."""
    env = {
        **os.environ,
        "HUB_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "HUB_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_LOG_FORMAT": "json",
    }
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "hub.cli", "run", "--only", "tracker"),
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )


async def stop(worker: asyncio.subprocess.Process) -> None:
    if worker.returncode is None:
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.wait(), 30)
        except TimeoutError:
            worker.kill()
            await asyncio.wait_for(worker.wait(), 10)


async def behind(settings: Settings, group: str, topic: str) -> int:
    """How many records of ``topic`` the group has not committed."""
    return sum((await group_lag(settings.kafka.bootstrap_servers, group, topic)).values())


@asynccontextmanager
async def running(hub: Hub) -> AsyncIterator[None]:
    halt = asyncio.Event()
    runner = asyncio.create_task(hub.run(halt))
    try:
        await eventually(
            lambda: asyncio.sleep(0, hub.broker.running or runner.done()), bool, what="broker up"
        )
        yield
    finally:
        halt.set()
        await runner


async def test_tracker_killed_while_a_receipt_batch_waits_loses_and_doubles_nothing(
    bootstrap: str, topic_prefix: str, store_url: str, tmp_path: Path
) -> None:
    """Killed after applying a batch's 120 receipts but before committing it: nothing was
    committed; after the restart all 120 are stored once, the unknown receipt is dead-lettered
    once (after the guard's retries), and the group commits to the end."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        database_url=store_url,
    )
    hub = await Hub.open(settings, FixedClock(ROUTED_AT), parts=())  # store, topics, outbox
    deliveries = [delivery_to(unit) for unit in UNITS for _ in range(PER_UNIT)]
    receipts = [receipt_of(d.delivery_id, d.recipient) for d in deliveries]
    unknown = receipt_of(uuid.uuid4(), UNITS[0])
    receipts_topic = settings.topic(TopicName.RECEIPTS)
    group = settings.group(RECEIPTS_GROUP)

    async def stored_receipts() -> int:
        async with hub.store.engine.connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(ReceiptRow))
        return int(count or 0)

    with (tmp_path / "tracker.log").open("ab") as log:
        async with running(hub):
            worker = await start_tracker(settings, log)
            try:
                await hub.outbox.send_many(
                    Outgoing(TopicName.DELIVERIES, d, d.recipient) for d in deliveries
                )
                await eventually(hub.store.count_open, lambda n: n == 120, timeout_s=120)
                await hub.outbox.send_many([*receipts, unknown])
                await eventually(stored_receipts, lambda n: n == 120, timeout_s=60, interval_s=0.05)
                # The batch now waits for the unknown delivery (>= 1.5 s of backoff): kill it.
                worker.kill()
                await asyncio.wait_for(worker.wait(), 10)
                uncommitted_at_kill = await behind(settings, group, receipts_topic)
                worker = await start_tracker(settings, log)
                letters = await read_topic(
                    bootstrap, settings.topic(TopicName.DEAD_LETTER), expected=1, timeout_s=60
                )
                await eventually(
                    lambda: behind(settings, group, receipts_topic),
                    lambda n: n == 0,
                    timeout_s=60,
                    interval_s=0.5,
                    what="the receipts group committed to the end",
                )
                totals = await hub.store.totals()
                rows = await stored_receipts()
                letters = await read_topic(
                    bootstrap, settings.topic(TopicName.DEAD_LETTER), expected=2, timeout_s=5
                )
            finally:
                await stop(worker)

    assert uncommitted_at_kill > 0  # the stored receipts' batch was not committed
    assert (totals.receipted, rows) == (120, 120)
    dead = [decode(DeadLetter, r.value or b"", dict(r.headers)) for r in letters]
    assert [(d.reason, d.attempts) for d in dead] == [(DeadLetterReason.UNKNOWN_DELIVERY, 5)]
