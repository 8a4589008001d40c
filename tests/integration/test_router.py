"""The router on a real broker: deliveries to exactly the expected units; poison dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping

import pytest
from aiokafka import AIOKafkaProducer

from consumers.router import build_app
from hub.directory import DirectoryHistory, load_directory
from hub.provision import ensure_topics
from hub.settings import NORRBOTTEN, KafkaSettings, Settings
from tests.support.envelopes import make_envelope
from tests.support.kafka import read_topic
from topics.catalogue import MessageType
from topics.codec import decode, encode
from topics.deadletter import DeadLetterReason
from topics.messages import DeadLetter, Delivery, OpsAlert
from topics.topics import TopicName

pytestmark = pytest.mark.kafka

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_HSV = "SE2120000000-SYN2580HSV"
LULEA_BIS = "SE2120000000-SYN2580BIS"


class MemoryRecords:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}

    async def load_many(self, episode_ids: Iterable[str]) -> dict[str, str]:
        return {e: self.rows[e] for e in episode_ids if e in self.rows}

    async def save_many(self, records: Mapping[str, str]) -> None:
        self.rows.update(records)


async def test_router_delivers_to_recipient_set_and_dead_letters_poison(
    bootstrap: str, topic_prefix: str
) -> None:
    """Admission, ready, poison, unroutable: 6 deliveries, 2 dead letters, 1 alert."""
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix))
    await ensure_topics(settings)
    episode = f"sunderby:test:{uuid.uuid4().hex[:6]}"
    admission = make_envelope(MessageType.ADMISSION_NOTICE, episode_id=episode)
    ready = make_envelope(MessageType.READY_FOR_DISCHARGE, episode_id=episode)
    orphan = make_envelope(MessageType.READY_FOR_DISCHARGE, episode_id=episode + "-never-admitted")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    topic = settings.topic(TopicName.CARE_EPISODE_EVENTS)
    try:
        for env in (admission,):
            body, headers = encode(env)
            await producer.send_and_wait(
                topic,
                body,
                key=episode.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
        good_headers = [("schema-version", b"1"), ("message-type", b"ready_for_discharge")]
        await producer.send_and_wait(
            topic, b'{"truncated": ', key=episode.encode(), headers=good_headers
        )
        for env in (ready, orphan):
            body, headers = encode(env)
            await producer.send_and_wait(
                topic,
                body,
                key=episode.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
    finally:
        await producer.stop()

    history = DirectoryHistory(load_directory(NORRBOTTEN / "directory.yaml"))
    _app, broker = build_app(settings, history, MemoryRecords())
    async with broker:
        await broker.start()
        deliveries = await read_topic(bootstrap, settings.topic(TopicName.DELIVERIES), expected=6)
        letters = await read_topic(bootstrap, settings.topic(TopicName.DEAD_LETTER), expected=2)
        alerts = await read_topic(bootstrap, settings.topic(TopicName.OPS_ALERTS), expected=1)

    decoded = [decode(Delivery, r.value, dict(r.headers)) for r in deliveries]
    got = sorted((d.message.message_id, d.recipient) for d in decoded)
    expected = sorted(
        (m.message_id, unit) for m in (admission, ready) for unit in (HERTSO, LULEA_HSV, LULEA_BIS)
    )
    assert got == expected
    assert all(r.key.decode() == d.recipient for r, d in zip(deliveries, decoded, strict=True))
    dead = [decode(DeadLetter, r.value, dict(r.headers)) for r in letters]
    assert [(d.reason, d.stage, d.attempts) for d in dead] == [
        (DeadLetterReason.UNDECODABLE, "router", 1),
        (DeadLetterReason.UNROUTABLE, "router", 1),
    ]
    assert dead[0].original_value == b'{"truncated": '
    assert "19121212" not in dead[1].detail
    alert = decode(OpsAlert, alerts[0].value, dict(alerts[0].headers))
    assert alert.kind == "dead_letter.unroutable"
    await asyncio.sleep(0)
