"""The Python SDK on the real broker: what it publishes is the envelope, keyed by its stay,
acknowledged before it returns; bad input and an absent broker raise clear, value-free errors."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from structlog.testing import capture_logs

from hub.broker import build_broker
from hub.clock import FixedClock
from hub.errors import TransientError, ValidationFailed
from hub.provision import ensure_topics
from hub.settings import KafkaSettings, Settings
from producers.sdk import BrokerUnavailable, FieldError, HubClient, InvalidEnvelope, PublishReceipt
from tests.support.kafka import read_topic
from topics.catalogue import MessageType
from topics.codec import decode_envelope
from topics.examples import load_example
from topics.messages import Envelope
from topics.topics import TopicName

pytestmark = pytest.mark.kafka

PATIENT = "19121212-1212"


@pytest.fixture
async def settings(bootstrap: str, topic_prefix: str) -> Settings:
    """Settings for this test's fresh topics, provisioned."""
    result = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix))
    await ensure_topics(result)
    return result


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[HubClient]:
    """A started client on the test's topics."""
    async with HubClient(settings) as hub:
        yield hub


def closed_port_settings() -> Settings:
    """Settings pointing at a loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=1000)
    )


async def read_back(settings: Settings, expected: int) -> list[ConsumerRecord[bytes, bytes]]:
    return await read_topic(
        settings.kafka.bootstrap_servers,
        settings.topic(TopicName.CARE_EPISODE_EVENTS),
        expected=expected,
    )


def decoded(record: ConsumerRecord[bytes, bytes]) -> Envelope:
    return decode_envelope(record.value, dict(record.headers))


def stay_key(envelope: Envelope) -> bytes:
    """The contract's key (topics.topics): the episode, or the message outside an episode."""
    return (envelope.episode_id or str(envelope.message_id)).encode()


async def test_every_example_is_read_back_equal_and_keyed_by_its_stay(
    settings: Settings, client: HubClient
) -> None:
    """Each example published via the SDK is on the topic, equal, keyed and where the receipt
    says it is."""
    examples = [load_example(message_type) for message_type in MessageType]
    receipts = [await client.publish(envelope) for envelope in examples]

    records = await read_back(settings, expected=len(examples))

    by_id = {decoded(record).message_id: record for record in records}
    assert len(records) == len(examples)
    for envelope, receipt in zip(examples, receipts, strict=True):
        record = by_id[envelope.message_id]
        assert decoded(record) == envelope
        assert record.key == stay_key(envelope)
        assert receipt == PublishReceipt(
            topic=settings.topic(TopicName.CARE_EPISODE_EVENTS),
            partition=record.partition,
            offset=record.offset,
            message_id=envelope.message_id,
        )


def typed_arguments(envelope: Envelope) -> dict[str, Any]:
    """The keyword arguments of the typed method that should rebuild ``envelope``."""
    payload = envelope.payload.model_dump()
    del payload["kind"]
    arguments: dict[str, Any] = {
        "sender": envelope.sender,
        "patient": envelope.patient,
        "occurred_at": envelope.occurred_at,
        "message_id": envelope.message_id,
        **payload,
    }
    if envelope.episode_id is not None:
        arguments["episode_id"] = envelope.episode_id
    for optional in ("correlation_id", "causation_id"):
        if getattr(envelope, optional) is not None:
            arguments[optional] = getattr(envelope, optional)
    return arguments


@pytest.mark.parametrize("message_type", list(MessageType))
async def test_typed_method_builds_the_example_and_stamps_sent_at_from_the_clock(
    settings: Settings, message_type: MessageType
) -> None:
    """The typed method of each message type publishes the example envelope, sent_at from the
    injected clock."""
    example = load_example(message_type)
    async with HubClient(settings, clock=FixedClock(example.sent_at)) as hub:
        method = getattr(hub, message_type.value)
        receipt = await method(**typed_arguments(example))

    [record] = await read_back(settings, expected=1)
    assert decoded(record) == example
    assert receipt.message_id == example.message_id


async def test_message_id_defaults_to_a_fresh_uuid4(settings: Settings) -> None:
    """Without a message_id each call gets a new random UUID and occurred_at is the send time."""
    now = datetime(2027, 4, 1, 9, 31, tzinfo=UTC)
    async with HubClient(settings, clock=FixedClock(now)) as hub:
        first = await hub.ready_for_discharge(
            sender="SE2321000230-SYNSUNMED", patient=PATIENT, episode_id="e1", assessed_at=now
        )
        second = await hub.ready_for_discharge(
            sender="SE2321000230-SYNSUNMED", patient=PATIENT, episode_id="e1", assessed_at=now
        )

    records = await read_back(settings, expected=2)
    envelopes = [decoded(record) for record in records]
    assert [e.message_id for e in envelopes] == [first.message_id, second.message_id]
    assert first.message_id != second.message_id
    assert {e.message_id.version for e in envelopes} == {4}
    assert {(e.occurred_at, e.sent_at) for e in envelopes} == {(now, now)}


async def test_send_takes_a_payload_model(settings: Settings) -> None:
    """send() wraps a payload model in an envelope of the payload's message type."""
    example = load_example(MessageType.READY_FOR_DISCHARGE)
    async with HubClient(settings, clock=FixedClock(example.sent_at)) as hub:
        await hub.send(
            example.payload,
            sender=example.sender,
            patient=example.patient,
            episode_id=example.episode_id,
            occurred_at=example.occurred_at,
            message_id=example.message_id,
        )
    [record] = await read_back(settings, expected=1)
    assert decoded(record) == example


async def test_invalid_arguments_raise_field_errors_without_values_and_publish_nothing(
    settings: Settings, client: HubClient
) -> None:
    """A bad check digit and a naive time raise InvalidEnvelope naming fields, not values."""
    bad_patient = "19121212-1213"
    with pytest.raises(InvalidEnvelope) as caught:
        await client.admission_notice(
            sender="SE2321000230-SYNSUNMED",
            patient=bad_patient,
            episode_id="sunderby:2027:000999",
            ward="SE2321000230-SYNSUNMED",
            admitted_at=datetime(2027, 3, 26, 7, 30),  # noqa: DTZ001 - naive on purpose
            expected_discharge_date=date(2027, 4, 2),
            listed_health_centre="SE2321000230-SYNHCHERTSO",
            home_municipality="2580",
        )
    assert caught.value.errors == (
        FieldError("patient", "personal_identity_number", "check digit does not match"),
        FieldError("payload.admitted_at", "timezone_aware", "Input should have timezone info"),
    )
    assert isinstance(caught.value, ValidationFailed)
    assert bad_patient not in str(caught.value)
    assert "191212121213" not in str(caught.value)

    marker = load_example(MessageType.DISCHARGE_NOTICE)
    await client.publish(marker)
    records = await read_back(settings, expected=1)
    assert [decoded(record).message_id for record in records] == [marker.message_id]


async def test_start_raises_broker_unavailable_after_bounded_retries() -> None:
    """Against a closed port start() tries three times with back-off, then BrokerUnavailable."""
    settings = closed_port_settings()
    client = HubClient(settings, attempts=3, backoff_s=0.01)
    with capture_logs() as logs, pytest.raises(BrokerUnavailable) as caught:
        await client.start()
    await client.stop()

    assert str(caught.value) == (
        f"connect: Kafka at {settings.kafka.bootstrap_servers} did not answer after 3 attempt(s)"
        " (KafkaConnectionError)"
    )
    assert isinstance(caught.value, TransientError)
    assert caught.value.retriable is True
    assert [event for event in logs if event["event"] == "sdk.attempt_failed"] == [
        {
            "event": "sdk.attempt_failed",
            "log_level": "warning",
            "operation": "connect",
            "attempt": attempt,
            "attempts": 3,
            "error": "KafkaConnectionError",
        }
        for attempt in (1, 2, 3)
    ]


async def test_publish_without_broker_raises_broker_unavailable() -> None:
    """A client that never connected tries to on publish, and reports the broker unavailable."""
    client = HubClient(closed_port_settings(), attempts=2, backoff_s=0.01)
    try:
        with pytest.raises(BrokerUnavailable, match=r"^publish: .* after 2 attempt\(s\)"):
            await client.publish(load_example(MessageType.ADMISSION_NOTICE))
        assert await client.is_reachable(timeout_s=1.0) is False
    finally:
        await client.stop()


async def test_reachable_when_the_broker_answers(client: HubClient) -> None:
    """is_reachable is true while the broker answers metadata requests."""
    assert await client.is_reachable(timeout_s=5.0) is True


async def test_a_given_broker_is_used_and_left_running(settings: Settings) -> None:
    """A client built on an app's broker publishes through it and does not stop it."""
    broker = build_broker(settings)
    async with broker:
        async with HubClient(settings, broker=broker) as hub:
            receipt = await hub.publish(load_example(MessageType.ADMISSION_NOTICE))
        await broker.publish(b"still-connected", settings.topic(TopicName.DEAD_LETTER))

    records = await read_back(settings, expected=1)
    assert [(r.partition, r.offset) for r in records] == [(receipt.partition, receipt.offset)]
    dead = await read_topic(
        settings.kafka.bootstrap_servers, settings.topic(TopicName.DEAD_LETTER), expected=1
    )
    assert [record.value for record in dead] == [b"still-connected"]


def test_every_message_type_has_a_typed_method() -> None:
    """HubClient has one coroutine method named after each message type."""
    missing = [t.value for t in MessageType if not callable(getattr(HubClient, t.value, None))]
    assert missing == []
