"""The router: care-episode events in, one delivery per recipient unit out.

Thin over `hub.deliveries.plan`. For each event, in order per episode (the topic is keyed by
episode id and this subscriber handles one record at a time):

1. decode the envelope (`topics.codec`; bad input is dead-lettered by the consume guard),
2. load the episode's routing record, plan the deliveries against the current directory,
3. publish every delivery (keyed by recipient unit) and wait for the broker's acks,
4. store the episode's new record, and only then let the offset be committed.

A crash between 3 and 4 replays the event against the old record: the same deterministic
delivery ids come out again and the tracker absorbs them. Unroutable messages go to the
dead-letter topic with the reason and raise an operations alert (see `hub.consume`).

Episode records live in the SQL store (`router_episodes`), not in a compacted topic: the store is
already the hub's queryable state, a row update is one durable write per event, and operators can
inspect an episode's recipient set with SQL. The store can be rebuilt by replaying this topic.

The router also keeps the records it has saved in memory (`EpisodeCache`), so an episode's next
event costs no store read and no JSON parse. That is safe only while this process owns the
episode's partition without a break, so the cache is emptied on every rebalance (partitions
revoked or assigned); it is filled only after the store write committed, so it is never ahead of
the store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from aiokafka import ConsumerRebalanceListener, ConsumerRecord
from aiokafka.structs import TopicPartition
from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from hub.broker import build_broker, subscriber_options, undecoded
from hub.clock import Clock, SystemClock
from hub.consume import ConsumeGuard
from hub.deliveries import EpisodeRecord, plan
from hub.directory import DirectoryHistory
from hub.logs import get_logger
from hub.publishing import Encoded, Outbox, Outgoing
from hub.settings import Settings
from topics.codec import decode_envelope, delivery_encoder
from topics.messages import Envelope
from topics.topics import TopicName

log = get_logger(__name__)

GROUP_ID = "hub-router"
#: Records per batch, and how long a poll waits to fill one (latency stays a few ms when idle).
BATCH_MAX = 500
BATCH_WAIT_MS = 5
#: Episode records kept in memory (an admitted episode's record is a few kB).
CACHE_EPISODES = 20_000


class EpisodeRecords(Protocol):
    """Where the router keeps each episode's routing record (JSON text)."""

    async def load_many(self, episode_ids: Iterable[str]) -> dict[str, str]: ...

    async def save_many(self, records: Mapping[str, str]) -> None: ...


class EpisodeCache(ConsumerRebalanceListener):  # type: ignore[misc]
    """The episode records this router saved, newest last; emptied on every rebalance."""

    def __init__(self, capacity: int = CACHE_EPISODES) -> None:
        self.capacity = capacity
        self._records: OrderedDict[str, EpisodeRecord] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._records)

    def get_many(self, episode_ids: Iterable[str]) -> tuple[dict[str, EpisodeRecord], set[str]]:
        """The cached records among ``episode_ids``, and the ids that must be read."""
        found: dict[str, EpisodeRecord] = {}
        missing: set[str] = set()
        for episode_id in episode_ids:
            record = self._records.get(episode_id)
            if record is None:
                missing.add(episode_id)
            else:
                found[episode_id] = record
                self._records.move_to_end(episode_id)
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def put_many(self, records: Mapping[str, EpisodeRecord]) -> None:
        """Remember records that are now durable in the store."""
        for episode_id, record in records.items():
            self._records[episode_id] = record
            self._records.move_to_end(episode_id)
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def clear(self) -> None:
        self._records.clear()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.clear()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.clear()


def _headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in record.headers}


class Router:
    """Routes batches of care-episode records; the handler's only collaborator."""

    def __init__(
        self,
        directory: DirectoryHistory,
        records: EpisodeRecords,
        outbox: Outbox,
        clock: Clock,
        guard: ConsumeGuard,
        cache: EpisodeCache | None = None,
    ) -> None:
        self.directory = directory
        self.records = records
        self.outbox = outbox
        self.clock = clock
        self.guard = guard
        self.cache = cache if cache is not None else EpisodeCache()

    async def handle_batch(self, batch: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Route a batch: one load, one publish of all deliveries and refusals, one save.

        Records of one episode come from one partition, in order, and are routed in that
        order against the episode's record as updated by the records before them.
        """
        out: list[Outgoing | Encoded] = []
        decoded: list[tuple[ConsumerRecord[bytes, bytes], Envelope]] = []
        for record in batch:
            try:
                decoded.append((record, decode_envelope(record.value or b"", _headers(record))))
            except Exception as exc:  # noqa: BLE001 - classified by the guard, never dropped
                out += self.guard.refuse(record, exc)
        episodes, missing = self.cache.get_many(
            {e.episode_id for _, e in decoded if e.episode_id is not None}
        )
        if missing:
            stored = await self.records.load_many(missing)
            episodes.update({k: EpisodeRecord.from_json(v) for k, v in stored.items()})
        changed: dict[str, EpisodeRecord] = {}
        directory = self.directory.current
        encode = delivery_encoder(self.clock.now(), directory.version)
        routed = duplicates = 0
        for record, envelope in decoded:
            episode_id = envelope.episode_id
            try:
                result = plan(envelope, episodes.get(episode_id or ""), directory)
            except Exception as exc:  # noqa: BLE001 - classified by the guard, never dropped
                out += self.guard.refuse(record, exc)
                continue
            for d in result.deliveries:
                body, headers = encode(d.envelope_json, d.delivery_key, d.recipient, d.kind, d.role)
                out.append(Encoded(TopicName.DELIVERIES, body, headers, d.recipient))
            routed += len(result.deliveries)
            duplicates += result.duplicate
            if result.record is not None and episode_id is not None:
                episodes[episode_id] = changed[episode_id] = result.record
        await self.outbox.send_many(out)  # every delivery and refusal acked before the save
        await self.records.save_many({k: v.to_json() for k, v in changed.items()})
        self.cache.put_many(changed)
        log.info(
            "router.batch_routed",
            records=len(batch),
            deliveries=routed,
            refused=sum(1 for o in out if o.topic is TopicName.DEAD_LETTER),
            duplicates=duplicates,
            directory_version=directory.version,
        )


def register(broker: KafkaBroker, settings: Settings, router: Router) -> None:
    """Attach the router's batch subscriber, inside its consume guard, to a broker."""
    routes = KafkaRouter(middlewares=[router.guard.middleware()])

    @routes.subscriber(
        settings.topic(TopicName.CARE_EPISODE_EVENTS),
        batch=True,
        max_records=BATCH_MAX,
        batch_timeout_ms=BATCH_WAIT_MS,
        listener=router.cache,
        decoder=undecoded,
        **subscriber_options(settings.group(GROUP_ID)),
    )
    async def on_care_episode_events(message: KafkaMessage) -> None:
        await router.handle_batch(message.raw_message)

    broker.include_router(routes)


def build_app(
    settings: Settings,
    directory: DirectoryHistory,
    records: EpisodeRecords,
    clock: Clock | None = None,
) -> tuple[FastStream, KafkaBroker]:
    """The router as a FastStream app (`faststream run --factory` style)."""
    clock = clock or SystemClock()
    broker = build_broker(settings)
    outbox = Outbox(broker, settings)
    guard = ConsumeGuard("router", outbox, clock)
    register(broker, settings, Router(directory, records, outbox, clock, guard))
    return FastStream(broker), broker
