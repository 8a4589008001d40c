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
"""

from __future__ import annotations

from typing import Protocol

from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from hub.broker import build_broker, subscriber_options
from hub.clock import Clock, SystemClock
from hub.consume import ConsumeGuard
from hub.deliveries import EpisodeRecord, plan
from hub.directory import DirectoryHistory
from hub.logs import get_logger
from hub.publishing import Outbox, Outgoing
from hub.settings import Settings
from topics.codec import decode_envelope
from topics.topics import TopicName

log = get_logger(__name__)

GROUP_ID = "hub-router"


class EpisodeRecords(Protocol):
    """Where the router keeps each episode's routing record (JSON text)."""

    async def load(self, episode_id: str) -> str | None: ...

    async def save(self, episode_id: str, record_json: str) -> None: ...


class Router:
    """Routes decoded envelopes; the handler's only collaborator."""

    def __init__(
        self, directory: DirectoryHistory, records: EpisodeRecords, outbox: Outbox, clock: Clock
    ) -> None:
        self.directory = directory
        self.records = records
        self.outbox = outbox
        self.clock = clock

    async def handle(self, body: bytes, headers: dict[str, str]) -> None:
        envelope = decode_envelope(body, headers)
        stored = await self.records.load(envelope.episode_id) if envelope.episode_id else None
        episode = EpisodeRecord.from_json(stored) if stored else None
        directory = self.directory.current
        result = plan(envelope, episode, directory, self.clock.now())
        await self.outbox.send_many(
            Outgoing(TopicName.DELIVERIES, d, d.recipient) for d in result.deliveries
        )
        if result.record is not None and envelope.episode_id is not None:
            await self.records.save(envelope.episode_id, result.record.to_json())
        log.info(
            "router.routed",
            message_id=str(envelope.message_id),
            message_type=envelope.message_type.value,
            episode_id=envelope.episode_id,
            deliveries=len(result.deliveries),
            duplicate=result.duplicate,
            directory_version=directory.version,
        )


def register(broker: KafkaBroker, settings: Settings, router: Router, guard: ConsumeGuard) -> None:
    """Attach the router's subscriber, inside the consume guard, to a broker."""
    routes = KafkaRouter(middlewares=[guard.middleware()])

    @routes.subscriber(
        settings.topic(TopicName.CARE_EPISODE_EVENTS),
        **subscriber_options(settings.group(GROUP_ID)),
    )
    async def on_care_episode_event(message: KafkaMessage) -> None:
        await router.handle(message.body, message.headers)

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
    register(
        broker,
        settings,
        Router(directory, records, outbox, clock),
        ConsumeGuard("router", outbox, clock),
    )
    return FastStream(broker), broker
