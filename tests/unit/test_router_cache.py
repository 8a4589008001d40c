"""The router's in-memory episode records: never ahead of the store, emptied on every rebalance."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from consumers.router import EpisodeCache, Router
from hub.clock import FixedClock
from hub.consume import ConsumeGuard
from hub.deliveries import EpisodeRecord
from hub.directory import DirectoryHistory, load_directory
from hub.publishing import Encoded, Outgoing
from hub.settings import Settings
from tests.support.envelopes import make_envelope
from topics.catalogue import MessageType
from topics.codec import encode
from topics.messages import Envelope
from topics.topics import TopicName

EPISODE = "cache-episode-1"


class DictRecords:
    """Episode records in a dict; counts reads and can be told to fail the next save."""

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}
        self.reads: list[set[str]] = []
        self.fail_next_save = False

    async def load_many(self, episode_ids: Iterable[str]) -> dict[str, str]:
        ids = set(episode_ids)
        self.reads.append(ids)
        return {k: v for k, v in self.saved.items() if k in ids}

    async def save_many(self, records: Mapping[str, str]) -> None:
        if self.fail_next_save:
            self.fail_next_save = False
            msg = "store unavailable"
            raise OSError(msg)
        self.saved.update(records)


class ListOutbox:
    def __init__(self) -> None:
        self.sent: list[Outgoing | Encoded] = []

    async def send_many(self, items: Iterable[Outgoing | Encoded]) -> int:
        items = list(items)
        self.sent += items
        return len(items)


def _record(envelope: Envelope, offset: int) -> ConsumerRecord[bytes, bytes]:
    body, headers = encode(envelope)
    return ConsumerRecord(
        "t", 0, offset, 0, 0, EPISODE.encode(), body, None, 0, len(body),
        [(k, v.encode()) for k, v in headers.items()],
    )  # fmt: skip


def _router(records: DictRecords, outbox: ListOutbox) -> Router:
    clock = FixedClock(datetime(2026, 12, 24, 9, 0, tzinfo=UTC))
    directory = DirectoryHistory(load_directory(Settings().directory_file))
    guard = ConsumeGuard("router", outbox, clock)  # type: ignore[arg-type]
    return Router(directory, records, outbox, clock, guard)  # type: ignore[arg-type]


def _deliveries(outbox: ListOutbox) -> int:
    return sum(1 for o in outbox.sent if o.topic is TopicName.DELIVERIES)


async def test_second_event_of_an_episode_is_routed_from_memory() -> None:
    """After a committed save the next event of the episode costs no store read."""
    records, outbox = DictRecords(), ListOutbox()
    router = _router(records, outbox)
    await router.handle_batch(
        [_record(make_envelope(MessageType.ADMISSION_NOTICE, episode_id=EPISODE), 0)]
    )
    await router.handle_batch(
        [_record(make_envelope(MessageType.PLANNING_DOCUMENT, episode_id=EPISODE), 1)]
    )
    assert records.reads == [{EPISODE}]  # only the first batch read the store
    assert router.cache.hits == 1
    assert _deliveries(outbox) == 3 + 3  # the ward sends both: the same three units each time
    assert EpisodeRecord.from_json(records.saved[EPISODE]).state.delivered[-1].message_type is (
        MessageType.PLANNING_DOCUMENT
    )


async def test_a_failed_save_leaves_memory_as_the_store() -> None:
    """When the store write fails the batch is retried against the store's record, not memory."""
    records, outbox = DictRecords(), ListOutbox()
    router = _router(records, outbox)
    admission = _record(make_envelope(MessageType.ADMISSION_NOTICE, episode_id=EPISODE), 0)
    records.fail_next_save = True
    with pytest.raises(OSError, match="store unavailable"):
        await router.handle_batch([admission])
    assert len(router.cache) == 0
    await router.handle_batch([admission])  # the redelivery after the rewind routes it afresh
    assert records.reads == [{EPISODE}, {EPISODE}]
    assert EPISODE in records.saved
    assert len(router.cache) == 1


@pytest.mark.parametrize("event", ["on_partitions_revoked", "on_partitions_assigned"])
async def test_any_rebalance_empties_the_cache(event: str) -> None:
    """Another router may have owned the partition in between: nothing remembered is trusted."""
    records, outbox = DictRecords(), ListOutbox()
    router = _router(records, outbox)
    await router.handle_batch(
        [_record(make_envelope(MessageType.ADMISSION_NOTICE, episode_id=EPISODE), 0)]
    )
    assert len(router.cache) == 1
    await getattr(router.cache, event)([TopicPartition("t", 0)])
    assert len(router.cache) == 0
    await router.handle_batch(
        [_record(make_envelope(MessageType.PLANNING_DOCUMENT, episode_id=EPISODE), 1)]
    )
    assert records.reads == [{EPISODE}, {EPISODE}]


def test_the_cache_is_bounded_oldest_first() -> None:
    """Past its capacity the least recently used episode is forgotten (and read again later)."""
    cache = EpisodeCache(capacity=2)
    record = EpisodeRecord.from_json(
        '{"state": {"episode_id": "e", "ward": "w", "listed_health_centre": "h",'
        ' "home_municipality": "m", "recipients": [], "delivered": []}, "envelopes": {}}'
    )
    cache.put_many({"a": record, "b": record})
    cache.get_many(["a"])  # a is now the most recent
    cache.put_many({"c": record})
    found, missing = cache.get_many(["a", "b", "c"])
    assert set(found) == {"a", "c"}
    assert missing == {"b"}
