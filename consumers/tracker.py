"""The tracker: deliveries and receipts (*kvittenser*) into the SQL store.

Thin over `hub.tracking` and `hub.store`. Both subscribers take batches (up to `BATCH_MAX`
records) and return only after the store committed, so the offsets are committed after the
effect is durable; inserts are idempotent by the deterministic delivery and receipt ids, so a
redelivered record changes nothing. A record that cannot be handled is dead-lettered on its own
(`ConsumeGuard.refuse`); a transient failure fails the whole batch, which is consumed again.

A receipt for a delivery the store does not know yet is retried for a few seconds (the
deliveries topic may be a little behind the receipts topic), then dead-lettered as
`unknown_delivery`; a receipt from a unit that was not the recipient is dead-lettered as
`wrong_recipient` at once. Receipts from the HTTP API and signed links are published to the
receipts topic too, so this consumer is the only writer of receipts.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeAlias
from uuid import UUID

from aiokafka import ConsumerRecord
from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from hub.broker import build_broker, subscriber_options, undecoded
from hub.calendar import CalendarPolicy
from hub.clock import Clock, SystemClock
from hub.consume import ConsumeGuard
from hub.errors import UnknownDelivery, WrongRecipient
from hub.logs import get_logger
from hub.publishing import Outbox, Outgoing
from hub.settings import Settings
from hub.store.repository import NewDelivery, ReceiptOutcome, Store
from hub.tracking import delivery_due_at, episode_fact
from topics.codec import decode, decode_delivery
from topics.messages import Receipt
from topics.topics import TopicName

log = get_logger(__name__)

DELIVERIES_GROUP = "hub-tracker-deliveries"
RECEIPTS_GROUP = "hub-tracker-receipts"
BATCH_MAX = 500
BATCH_WAIT_MS = 5  # the wait for a batch to fill: latency when idle, nothing under load

_UNKNOWN = "receipt.delivery_id: no delivery with this id is known to the hub"
_NOT_RECIPIENT = "receipt.unit: only the delivery's own recipient unit may receipt it"

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


def _headers(record: Record) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in record.headers}


class DeliveryNotYetKnown(UnknownDelivery):
    """The receipt's delivery is not in the store yet: retried, then dead-lettered."""

    retriable = True


class Tracker:
    """Stores deliveries and applies receipts, a batch at a time."""

    def __init__(
        self,
        store: Store,
        calendar: CalendarPolicy,
        outbox: Outbox,
        guard: ConsumeGuard,
        receipts_guard: ConsumeGuard | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.calendar = calendar
        self.outbox = outbox
        self.guard = guard
        self.receipts_guard = receipts_guard or ConsumeGuard(
            "tracker.receipts", outbox, guard.clock
        )
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    async def on_deliveries(self, batch: Sequence[Record]) -> None:
        """Store a batch of deliveries and their liability facts (two transactions)."""
        refused: list[Outgoing] = []
        rows: list[NewDelivery] = []
        facts: list[tuple[str, UUID, str, datetime]] = []
        for record in batch:
            try:
                delivery, envelope_json = decode_delivery(record.value or b"", _headers(record))
            except Exception as exc:  # noqa: BLE001 - classified by the guard, never dropped
                refused += self.guard.refuse(record, exc)
                continue
            due_at = delivery_due_at(delivery, self.calendar)
            rows.append(NewDelivery.from_message(delivery, due_at, envelope_json))
            fact = episode_fact(delivery)
            if fact is not None and delivery.message.episode_id is not None:
                facts.append(
                    (delivery.message.episode_id, delivery.message.message_id, fact.kind, fact.at)
                )
        new = await self.store.add_deliveries(rows)
        await self.store.add_episode_facts(facts)
        if refused:
            await self.outbox.send_many(refused)
        log.info("tracker.deliveries_stored", records=len(batch), new=new, refused=len(refused))

    async def on_receipts(self, batch: Sequence[Record]) -> None:
        """Apply a batch of receipts (one transaction per try), dead-lettering refused ones.

        Receipts whose delivery is not stored yet are tried again, together, with the guard's
        backoff while the rest of the batch is already applied; those still unknown after the
        guard's attempts are dead-lettered as ``unknown_delivery``, as the guard does with a
        record whose transient error persists. The handler returns (and the offsets are
        committed) only after every receipt is stored or its dead letter acknowledged.
        """
        guard = self.receipts_guard
        refused: list[Outgoing] = []
        pending: list[tuple[Record, Receipt]] = []
        for record in batch:
            try:
                pending.append((record, decode(Receipt, record.value or b"", _headers(record))))
            except Exception as exc:  # noqa: BLE001 - classified by the guard, never dropped
                refused += guard.refuse(record, exc)
        applied: Counter[str] = Counter()
        attempt = 0
        first_failure: datetime | None = None
        while pending:
            attempt += 1
            outcomes = await self.store.record_receipts([receipt for _, receipt in pending])
            waiting: list[tuple[Record, Receipt]] = []
            for (record, receipt), outcome in zip(pending, outcomes, strict=True):
                if outcome is ReceiptOutcome.UNKNOWN_DELIVERY:
                    waiting.append((record, receipt))
                elif outcome is ReceiptOutcome.WRONG_RECIPIENT:
                    now = guard.clock.now()
                    wrong = WrongRecipient(_NOT_RECIPIENT)
                    refused += guard.letters(record, wrong, attempt, first_failure or now, now)
                else:
                    applied[outcome.value] += 1
            pending = waiting
            if not pending:
                break
            now = guard.clock.now()
            first_failure = first_failure or now
            if attempt >= guard.retry.max_attempts:
                unknown = DeliveryNotYetKnown(_UNKNOWN)
                for record, _ in pending:
                    refused += guard.letters(record, unknown, attempt, first_failure, now)
                break
            delay = guard.retry.delay_s(attempt, self._rng)
            log.warning(
                "tracker.receipts_wait_for_deliveries",
                attempt=attempt,
                waiting=len(pending),
                delay_s=round(delay, 3),
            )
            await self._sleep(delay)
        if refused:
            await self.outbox.send_many(refused)
        log.info(
            "tracker.receipts_applied",
            records=len(batch),
            new=applied[ReceiptOutcome.NEW.value],
            duplicate=applied[ReceiptOutcome.DUPLICATE.value],
            refused=len(refused),
        )


def register(
    broker: KafkaBroker, settings: Settings, tracker: Tracker, outbox: Outbox, clock: Clock
) -> None:
    """Attach the tracker's two batch subscribers, each inside its consume guard.

    ``outbox`` and ``clock`` are the tracker's own (kept for the callers' signature).
    """
    del outbox, clock
    deliveries = KafkaRouter(middlewares=[tracker.guard.middleware()])
    receipts = KafkaRouter(middlewares=[tracker.receipts_guard.middleware()])

    @deliveries.subscriber(
        settings.topic(TopicName.DELIVERIES),
        batch=True,
        max_records=BATCH_MAX,
        batch_timeout_ms=BATCH_WAIT_MS,
        decoder=undecoded,
        **subscriber_options(settings.group(DELIVERIES_GROUP)),
    )
    async def on_deliveries(message: KafkaMessage) -> None:
        await tracker.on_deliveries(message.raw_message)

    @receipts.subscriber(
        settings.topic(TopicName.RECEIPTS),
        batch=True,
        max_records=BATCH_MAX,
        batch_timeout_ms=BATCH_WAIT_MS,
        decoder=undecoded,
        **subscriber_options(settings.group(RECEIPTS_GROUP)),
    )
    async def on_receipts(message: KafkaMessage) -> None:
        await tracker.on_receipts(message.raw_message)

    broker.include_router(deliveries)
    broker.include_router(receipts)


def tracker_for(store: Store, calendar: CalendarPolicy, outbox: Outbox, clock: Clock) -> Tracker:
    """A tracker whose batches refuse bad records through their own guards (one per topic)."""
    return Tracker(
        store,
        calendar,
        outbox,
        ConsumeGuard("tracker.deliveries", outbox, clock),
        ConsumeGuard("tracker.receipts", outbox, clock),
    )


def build_app(
    settings: Settings, store: Store, calendar: CalendarPolicy, clock: Clock | None = None
) -> tuple[FastStream, KafkaBroker]:
    """The tracker as a FastStream app."""
    clock = clock or SystemClock()
    broker = build_broker(settings)
    outbox = Outbox(broker, settings)
    register(broker, settings, tracker_for(store, calendar, outbox, clock), outbox, clock)
    return FastStream(broker), broker
