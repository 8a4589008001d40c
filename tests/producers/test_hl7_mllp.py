"""The HL7 MLLP listener and the FHIR intake on the real broker: ACK after the broker has the
message, a resent message published once, framing faults survived, HL7 and FHIR equivalent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import hl7
import pytest
from aiokafka import ConsumerRecord

from hub.clock import FixedClock
from hub.provision import ensure_topics
from hub.settings import KafkaSettings, Settings
from producers.adapters import admission_message_id
from producers.fhir import FhirIntake
from producers.hl7 import END_BLOCK, START_BLOCK, Hl7Config, Hl7Intake
from producers.sdk import HubClient
from tests.support.journal import EPISODE, adt_bytes, encounter_resource
from tests.support.kafka import read_topic
from topics.catalogue import MessageType
from topics.codec import decode_envelope
from topics.messages import Envelope
from topics.topics import TopicName

pytestmark = pytest.mark.kafka

NOW = datetime(2027, 3, 26, 7, 41, tzinfo=UTC)  # MSH-7 of the test message, 08:41 local
ADMITTED = datetime(2027, 3, 26, 7, 30, tzinfo=UTC)


@dataclass
class Listener:
    """A running MLLP listener on a free loopback port, publishing through ``client``."""

    settings: Settings
    client: HubClient
    port: int


@pytest.fixture
async def settings(bootstrap: str, topic_prefix: str) -> Settings:
    """Settings for this test's fresh, provisioned topics."""
    result = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix))
    await ensure_topics(result)
    return result


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[HubClient]:
    """The SDK client: the adapters' sink, publishing acks=all to the care-episode topic."""
    async with HubClient(settings) as hub:
        yield hub


async def start(client: HubClient, settings: Settings, **config: Any) -> AsyncIterator[Listener]:
    intake = Hl7Intake(client, config=Hl7Config(**config), clock=FixedClock(NOW))
    server = await intake.start_server("127.0.0.1", 0)
    try:
        yield Listener(settings, client, server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def listener(client: HubClient, settings: Settings) -> AsyncIterator[Listener]:
    """The listener with its default limits."""
    async for running in start(client, settings):
        yield running


@pytest.fixture
async def strict_listener(client: HubClient, settings: Settings) -> AsyncIterator[Listener]:
    """The listener with a short frame timeout, to see a stalled frame closed."""
    async for running in start(client, settings, frame_timeout_s=0.5):
        yield running


class MllpClient:
    """A sending system's end of one MLLP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> MllpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def ack(self) -> hl7.Message:
        """The next framed answer, parsed."""
        async with asyncio.timeout(30):
            await self.reader.readuntil(START_BLOCK)
            block = await self.reader.readuntil(END_BLOCK)
        return hl7.parse(block[: -len(END_BLOCK)].decode("iso8859-1"))

    async def send(self, message: bytes) -> hl7.Message:
        await self.send_raw(START_BLOCK + message + END_BLOCK)
        return await self.ack()

    async def closed_by_peer(self) -> bool:
        async with asyncio.timeout(10):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def msa(ack: hl7.Message) -> tuple[str, str, str]:
    return (
        ack.extract_field("MSA", 1, 1),
        ack.extract_field("MSA", 1, 2),
        ack.extract_field("MSA", 1, 3),
    )


async def records(settings: Settings, expected: int) -> list[ConsumerRecord[bytes, bytes]]:
    topic = settings.topic(TopicName.CARE_EPISODE_EVENTS)
    return await read_topic(settings.kafka.bootstrap_servers, topic, expected=expected)


def decoded(record: ConsumerRecord[bytes, bytes]) -> Envelope:
    assert record.value is not None
    return decode_envelope(record.value, dict(record.headers))


async def send_one(port: int, message: bytes) -> hl7.Message:
    client = await MllpClient.connect(port)
    try:
        return await client.send(message)
    finally:
        await client.close()


async def test_a01_over_mllp_gets_aa_and_is_on_the_topic(listener: Listener) -> None:
    """An A01 over TCP is answered AA, and its admission notice is on the topic, keyed by stay."""
    ack = await send_one(listener.port, adt_bytes("A01", charset="8859/1"))
    assert msa(ack) == ("AA", "CTRL0001", "")
    [record] = await records(listener.settings, expected=1)
    envelope = decoded(record)
    assert (record.key, envelope.message_type, envelope.message_id) == (
        EPISODE.encode(),
        MessageType.ADMISSION_NOTICE,
        admission_message_id(EPISODE, ADMITTED),
    )


async def test_resent_message_is_published_once(listener: Listener) -> None:
    """The same control id sent again (new connection, then same one) is AA but published once."""
    message = adt_bytes("A08")
    first = await send_one(listener.port, message)
    client = await MllpClient.connect(listener.port)
    try:
        again = [await client.send(message), await client.send(message)]
        marker = await client.send(adt_bytes("A08", msh={10: "CTRL0002"}, pv2={9: "20270406"}))
    finally:
        await client.close()
    assert [msa(ack)[:2] for ack in (first, *again, marker)] == [
        ("AA", "CTRL0001"),
        ("AA", "CTRL0001"),
        ("AA", "CTRL0001"),
        ("AA", "CTRL0002"),
    ]
    # One stay, one partition: a duplicate would sit before the marker.
    got = [decoded(record) for record in await records(listener.settings, expected=2)]
    assert [e.payload.model_dump().get("expected_discharge_date") for e in got] == [
        date(2027, 4, 2),
        date(2027, 4, 6),
    ]


async def test_bad_check_digit_gets_ae_and_publishes_nothing(listener: Listener) -> None:
    """A wrong check digit is AE with the reason; a good message afterwards is the only record."""
    bad = adt_bytes("A01", pid={3: "191212121213^^^SE&1.2.752.129.2.1.3.1&ISO^NNSWE"})
    assert msa(await send_one(listener.port, bad)) == (
        "AE",
        "CTRL0001",
        "PID-3: check digit does not match",
    )
    assert msa(await send_one(listener.port, adt_bytes("A08", msh={10: "CTRL0002"})))[0] == "AA"
    [record] = await records(listener.settings, expected=1)
    assert decoded(record).message_type == MessageType.EPISODE_UPDATED


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(b"\x0b" + adt_bytes()[:80], id="missing-end-block-then-close"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="garbage-then-close"),
        pytest.param(b"\x00\xff" * 5000 + b"\x1c\x0d", id="garbage-with-an-end-block"),
    ],
)
async def test_framing_errors_then_close_never_stop_the_listener(
    listener: Listener, hostile: bytes
) -> None:
    """A connection that sends broken framing and hangs up is dropped; the next one gets AA."""
    client = await MllpClient.connect(listener.port)
    await client.send_raw(hostile)
    await client.close()
    assert msa(await send_one(listener.port, adt_bytes("A08")))[0] == "AA"


async def test_framing_errors_resync_on_the_same_connection(listener: Listener) -> None:
    """Garbage before a frame, a frame that lost its end block, a 10 MB frame, a non-HL7 frame:
    each is survived on the same connection, and the good message after each gets AA."""
    client = await MllpClient.connect(listener.port)
    try:
        await client.send_raw(b"noise before the start block")
        assert msa(await client.send(adt_bytes("A08", msh={10: "C1"})))[:2] == ("AA", "C1")

        await client.send_raw(START_BLOCK + adt_bytes("A08", msh={10: "LOST"})[:120])
        assert msa(await client.send(adt_bytes("A08", msh={10: "C2"})))[:2] == ("AA", "C2")

        huge = adt_bytes("A08", msh={10: "BIG"}, pid={5: "x" * 10_000_000})
        assert msa(await client.send(huge)) == ("AR", "BIG", "MSH: larger than 1048576 bytes")
        assert msa(await client.send(adt_bytes("A08", msh={10: "C3"})))[:2] == ("AA", "C3")

        assert msa(await client.send(b"not hl7 at all"))[0] == "AR"
        assert msa(await client.send(adt_bytes("A08", msh={10: "C4"})))[:2] == ("AA", "C4")
    finally:
        await client.close()
    published = [decoded(r) for r in await records(listener.settings, expected=4)]
    assert len({e.message_id for e in published}) == 4


async def test_stalled_frame_is_closed_and_the_listener_goes_on(strict_listener: Listener) -> None:
    """A sender that stops inside a frame is disconnected after the frame timeout."""
    stalled = await MllpClient.connect(strict_listener.port)
    try:
        await stalled.send_raw(START_BLOCK + b"MSH|^~\\&|")
        assert await stalled.closed_by_peer()
    finally:
        await stalled.close()
    assert msa(await send_one(strict_listener.port, adt_bytes("A08")))[0] == "AA"


async def test_same_admission_via_hl7_and_fhir_is_the_same_envelope(listener: Listener) -> None:
    """The A01 and the equivalent FHIR Encounter publish equal envelopes, id included."""
    assert msa(await send_one(listener.port, adt_bytes("A01")))[0] == "AA"
    fhir = FhirIntake(listener.client, clock=FixedClock(NOW))
    result = await fhir.submit(
        encounter_resource(meta={"lastUpdated": "2027-03-26T08:40:00+01:00"})
    )
    assert result.published == 1
    via_hl7, via_fhir = (decoded(r) for r in await records(listener.settings, expected=2))
    assert via_fhir == via_hl7
    assert via_hl7.message_type == MessageType.ADMISSION_NOTICE
