"""The hub end to end on a real broker and a real store: route, track, receipt, escalate.

Runs on SQLite and on PostgreSQL (`store_url`). The clock is a `FixedClock` moved by the
test, so the ladder is checked at exact instants: a
delivery arriving Friday 16:00 (Stockholm) is due Saturday 11:00 (the weekend round 10:00-11:00);
level 2 (on-call) is reached at 12:00 and level 3 (manager) on Sunday at 11:00.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.app import Hub, Part
from hub.calendar import STOCKHOLM, CalendarPolicy
from hub.clock import FixedClock
from hub.publishing import Outgoing
from hub.rebuild import rebuild
from hub.settings import KafkaSettings, Settings
from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import Store
from tests.support.envelopes import make_envelope
from tests.support.kafka import read_topic
from tests.support.wait import eventually
from topics.catalogue import MessageType
from topics.codec import decode
from topics.ids import delivery_id_for
from topics.messages import Escalation, EscalationTarget, Receipt, ReceiptChannel
from topics.topics import TopicName

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_HSV = "SE2120000000-SYN2580HSV"
LULEA_BIS = "SE2120000000-SYN2580BIS"
STAFF = "SE2321000230-SYNSTAFF01"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


async def test_admission_to_on_call_escalation(
    bootstrap: str, topic_prefix: str, store_url: str
) -> None:
    """Friday 16:00 admission: one unit receipts; two climb the ladder, once per level."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        database_url=store_url,
    )
    clock = FixedClock(local("2027-01-15T16:00:00"))  # a Friday
    hub = await Hub.open(settings, clock, parts={Part.ROUTER, Part.TRACKER})
    episode = f"sunderby:{uuid.uuid4().hex[:8]}"
    admission = make_envelope(MessageType.ADMISSION_NOTICE, episode_id=episode)
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, hub.broker.running), bool, what="broker up")
        await hub.outbox.send(TopicName.CARE_EPISODE_EVENTS, admission, episode)
        await eventually(hub.store.count_open, lambda n: n == 3, what="3 open deliveries")

        receipt = Receipt(
            receipt_id=uuid.uuid4(),
            delivery_id=delivery_id_for(admission.message_id, HERTSO),
            unit=HERTSO,
            receipted_at=clock.now() + timedelta(minutes=5),
            receipted_by=STAFF,
            channel=ReceiptChannel.KAFKA,
        )
        await hub.outbox.send_many([Outgoing(TopicName.RECEIPTS, receipt, HERTSO)])
        await eventually(hub.store.count_open, lambda n: n == 2, what="2 open after receipt")

        before_due = await hub.scanner.scan(local("2027-01-16T10:59:59"))
        level1 = await hub.scanner.scan(local("2027-01-16T11:00:00"))
        again = await hub.scanner.scan(local("2027-01-16T11:30:00"))
        level2 = await hub.scanner.scan(local("2027-01-16T12:00:00"))
        level3 = await hub.scanner.scan(local("2027-01-17T11:00:00"))
    finally:
        stop.set()
        await runner

    assert (before_due.digests, level1.digests, again.digests) == (0, 2, 0)
    assert (level2.digests, level3.digests) == (2, 2)
    records = await read_topic(bootstrap, settings.topic(TopicName.ESCALATIONS), expected=6)
    escalations = [decode(Escalation, r.value, dict(r.headers)) for r in records]
    seen = sorted((e.level, e.unit, e.target, e.recipients) for e in escalations)
    # jour-2580's evening/weekend layer rotates Maria, Lars, Karin weekly from Fri 2025-12-26
    # 16:00; the week from Fri 2027-01-15 16:00 is week 55, and 55 % 3 = 1: Lars Nordin.
    assert seen == [
        (1, LULEA_BIS, EscalationTarget.UNIT_MAILBOX, ("bistand@lulea.kommun.example",)),
        (1, LULEA_HSV, EscalationTarget.UNIT_MAILBOX, ("hemsjukvard@lulea.kommun.example",)),
        (2, LULEA_BIS, EscalationTarget.ON_CALL, ("lars.nordin@example.se",)),
        (2, LULEA_HSV, EscalationTarget.ON_CALL, ("lars.nordin@example.se",)),
        (3, LULEA_BIS, EscalationTarget.MANAGER, ("enhetschef.bistand@lulea.kommun.example",)),
        (3, LULEA_HSV, EscalationTarget.MANAGER, ("enhetschef.hemsjukvard@lulea.kommun.example",)),
    ]
    for escalation in escalations:
        assert escalation.count == 1
        assert escalation.oldest_due_at.astimezone(STOCKHOLM).isoformat() == (
            "2027-01-16T11:00:00+01:00"
        )
        assert "19121212" not in escalation.model_dump_json()


async def test_store_rebuilt_from_topics_matches(
    bootstrap: str, topic_prefix: str, store_url: str, tmp_path: Path
) -> None:
    """Replaying the topics into an empty store gives the same open deliveries and receipts."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        database_url=store_url,
    )
    clock = FixedClock(local("2027-01-15T16:00:00"))
    hub = await Hub.open(settings, clock, parts={Part.ROUTER, Part.TRACKER})
    episodes = [f"sunderby:{uuid.uuid4().hex[:8]}" for _ in range(4)]
    admissions = [make_envelope(MessageType.ADMISSION_NOTICE, episode_id=e) for e in episodes]
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, hub.broker.running), bool, what="broker up")
        for admission in admissions:
            await hub.outbox.send(
                TopicName.CARE_EPISODE_EVENTS, admission, str(admission.episode_id)
            )
        await eventually(hub.store.count_open, lambda n: n == 12, what="12 open deliveries")
        receipt = Receipt(
            receipt_id=uuid.uuid4(),
            delivery_id=delivery_id_for(admissions[0].message_id, LULEA_BIS),
            unit=LULEA_BIS,
            receipted_at=clock.now(),
            receipted_by=STAFF,
            channel=ReceiptChannel.KAFKA,
        )
        await hub.outbox.send(TopicName.RECEIPTS, receipt, LULEA_BIS)
        await eventually(hub.store.count_open, lambda n: n == 11, what="11 open after receipt")
    finally:
        stop.set()
        await runner

    fresh_url = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.sqlite3'}"
    await upgrade(fresh_url)
    engine = create_engine(fresh_url)
    try:
        store = Store(engine)
        report = await rebuild(
            settings, store, hub.directory.current, CalendarPolicy(), clock.now()
        )
        assert report.read == {
            settings.topic(TopicName.CARE_EPISODE_EVENTS): 4,
            settings.topic(TopicName.DELIVERIES): 12,
            settings.topic(TopicName.RECEIPTS): 1,
        }
        assert await store.count_open() == 11
        stored = await store.delivery(delivery_id_for(admissions[0].message_id, LULEA_BIS))
        assert stored is not None
        assert stored.receipted_at is not None
        assert await store.load_episode_state(episodes[0]) is not None
    finally:
        await engine.dispose()
