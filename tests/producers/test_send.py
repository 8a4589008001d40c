"""`hub send` on the real broker: every good file published, per-episode order kept, bad files
rejected with their reasons, and an unavailable broker reported instead of waited out."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.provision import ensure_topics
from hub.settings import KafkaSettings, Settings
from producers.sdk import HubClient
from producers.send import Outcome, Rejected, send_files
from tests.support.kafka import read_topic
from topics.catalogue import MessageType
from topics.codec import decode_envelope
from topics.examples import example_path, load_example
from topics.topics import TopicName

pytestmark = pytest.mark.kafka

EPISODE = b"sunderby:2027:000123"


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


def copy_examples(folder: Path, message_types: list[MessageType]) -> list[Path]:
    paths = []
    for number, message_type in enumerate(message_types):
        # Names that sort differently from the input order: order must come from the input.
        path = folder / f"{len(message_types) - number:02d}-{message_type.value}.json"
        path.write_bytes(example_path(message_type).read_bytes())
        paths.append(path)
    return paths


async def test_files_are_published_in_input_order_per_episode(
    tmp_path: Path, settings: Settings, client: HubClient
) -> None:
    """Every example file is accepted, a bad one rejected; one stay's records keep file order."""
    message_types = list(MessageType)
    paths = copy_examples(tmp_path, message_types)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"message_type": "admission_notice"')
    paths.insert(3, bad)
    seen: list[Outcome] = []

    summary = await send_files(paths, client, progress=seen.append)

    assert summary.rejected == [Rejected(bad, "body: not JSON (line 1, column 36)")]
    assert [a.path for a in summary.accepted] == [p for p in paths if p != bad]
    assert [a.receipt.message_id for a in summary.accepted] == [
        load_example(t).message_id for t in message_types
    ]
    assert sorted(map(str, seen)) == sorted(map(str, [*summary.accepted, *summary.rejected]))

    records = await read_topic(
        settings.kafka.bootstrap_servers,
        settings.topic(TopicName.CARE_EPISODE_EVENTS),
        expected=len(message_types),
    )
    assert len(records) == len(message_types)
    on_the_stay = [
        decode_envelope(r.value, dict(r.headers)).message_id
        for r in sorted(records, key=lambda r: (r.partition, r.offset))
        if r.key == EPISODE
    ]
    assert on_the_stay == [
        load_example(t).message_id for t in message_types if load_example(t).episode_id
    ]
    stored = {(r.partition, r.offset) for r in records}
    assert {(a.receipt.partition, a.receipt.offset) for a in summary.accepted} == stored


async def test_unavailable_broker_rejects_the_rest_without_retrying_each(tmp_path: Path) -> None:
    """After the first BrokerUnavailable the remaining files are rejected as not sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{probe.getsockname()[1]}"
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, request_timeout_ms=1000))
    paths = copy_examples(
        tmp_path,
        [MessageType.ADMISSION_NOTICE, MessageType.CARE_REQUEST, MessageType.DISCHARGE_NOTICE],
    )
    hub = HubClient(settings, attempts=1, backoff_s=0)
    try:
        summary = await send_files(paths, hub, concurrency=1)
    finally:
        await hub.stop()

    unavailable = (
        f"publish: Kafka at {bootstrap} did not answer after 1 attempt(s) (KafkaConnectionError)"
    )
    assert summary.accepted == []
    assert summary.rejected == [
        Rejected(paths[0], unavailable),
        Rejected(paths[1], f"not sent: {unavailable}"),
        Rejected(paths[2], f"not sent: {unavailable}"),
    ]
