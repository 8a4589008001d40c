"""The tracker: deliveries and receipts (*kvittenser*) into the SQL store.

Thin over `hub.tracking` and `hub.store`. Each handler returns only after the store committed,
so the offset is committed after the effect is durable; inserts are idempotent by the
deterministic delivery and receipt ids, so a redelivered record changes nothing.

A receipt for a delivery the store does not know yet is retried for a few seconds (the
deliveries topic may be a little behind the receipts topic), then dead-lettered as
`unknown_delivery`; a receipt from a unit that was not the recipient is dead-lettered as
`wrong_recipient` at once. Receipts from the HTTP API and signed links are published to the
receipts topic too, so this consumer is the only writer of receipts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from aiokafka import ConsumerRecord
from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from hub.broker import build_broker, subscriber_options
from hub.calendar import CalendarPolicy
from hub.clock import Clock, SystemClock
from hub.consume import ConsumeGuard
from hub.errors import UnknownDelivery, WrongRecipient
from hub.logs import get_logger
from hub.publishing import Outbox, Outgoing
from hub.settings import Settings
from hub.store.repository import NewDelivery, ReceiptOutcome, Store
from hub.tracking import delivery_due_at, episode_fact
from topics.codec import decode
from topics.messages import Delivery, Receipt
from topics.topics import TopicName

log = get_logger(__name__)

DELIVERIES_GROUP = "hub-tracker-deliveries"
RECEIPTS_GROUP = "hub-tracker-receipts"
BATCH_MAX = 500
BATCH_WAIT_MS = 20


def _headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in record.headers}


class DeliveryNotYetKnown(UnknownDelivery):
    """The receipt's delivery is not in the store yet: retried, then dead-lettered."""

    retriable = True


class Tracker:
    """Stores deliveries and applies receipts."""

    def __init__(
        self, store: Store, calendar: CalendarPolicy, outbox: Outbox, guard: ConsumeGuard
    ) -> None:
        self.store = store
        self.calendar = calendar
        self.outbox = outbox
        self.guard = guard

    async def on_deliveries(self, batch: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Store a batch of deliveries and their liability facts (two transactions)."""
        refused: list[Outgoing] = []
        rows: list[NewDelivery] = []
        facts: list[tuple[str, UUID, str, datetime]] = []
        for record in batch:
            try:
                delivery = decode(Delivery, record.value or b"", _headers(record))
            except Exception as exc:  # noqa: BLE001 - classified by the guard, never dropped
                refused += self.guard.refuse(record, exc)
                continue
            rows.append(
                NewDelivery.from_message(delivery, delivery_due_at(delivery, self.calendar))
            )
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

    async def on_receipt(self, body: bytes, headers: dict[str, str]) -> None:
        receipt = decode(Receipt, body, headers)
        outcome = await self.store.record_receipt(receipt)
        if outcome is ReceiptOutcome.UNKNOWN_DELIVERY:
            msg = "receipt.delivery_id: no delivery with this id is known to the hub"
            raise DeliveryNotYetKnown(msg)
        if outcome is ReceiptOutcome.WRONG_RECIPIENT:
            msg = "receipt.unit: only the delivery's own recipient unit may receipt it"
            raise WrongRecipient(msg)
        log.info(
            "tracker.receipt_applied",
            delivery_id=str(receipt.delivery_id),
            unit=receipt.unit,
            outcome=outcome.value,
        )


def register(
    broker: KafkaBroker, settings: Settings, tracker: Tracker, outbox: Outbox, clock: Clock
) -> None:
    """Attach the tracker's two subscribers, each inside its consume guard."""
    deliveries = KafkaRouter(middlewares=[tracker.guard.middleware()])
    receipts = KafkaRouter(
        middlewares=[ConsumeGuard("tracker.receipts", outbox, clock).middleware()]
    )

    @deliveries.subscriber(
        settings.topic(TopicName.DELIVERIES),
        batch=True,
        max_records=BATCH_MAX,
        batch_timeout_ms=BATCH_WAIT_MS,
        **subscriber_options(settings.group(DELIVERIES_GROUP)),
    )
    async def on_deliveries(message: KafkaMessage) -> None:
        await tracker.on_deliveries(message.raw_message)

    @receipts.subscriber(
        settings.topic(TopicName.RECEIPTS), **subscriber_options(settings.group(RECEIPTS_GROUP))
    )
    async def on_receipt(message: KafkaMessage) -> None:
        await tracker.on_receipt(message.body, message.headers)

    broker.include_router(deliveries)
    broker.include_router(receipts)


def tracker_for(store: Store, calendar: CalendarPolicy, outbox: Outbox, clock: Clock) -> Tracker:
    """A tracker whose delivery batches refuse bad records through their own guard."""
    return Tracker(store, calendar, outbox, ConsumeGuard("tracker.deliveries", outbox, clock))


def build_app(
    settings: Settings, store: Store, calendar: CalendarPolicy, clock: Clock | None = None
) -> tuple[FastStream, KafkaBroker]:
    """The tracker as a FastStream app."""
    clock = clock or SystemClock()
    broker = build_broker(settings)
    outbox = Outbox(broker, settings)
    register(broker, settings, tracker_for(store, calendar, outbox, clock), outbox, clock)
    return FastStream(broker), broker
