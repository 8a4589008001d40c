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

from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from hub.broker import build_broker, subscriber_options
from hub.calendar import CalendarPolicy
from hub.clock import Clock, SystemClock
from hub.consume import ConsumeGuard
from hub.errors import UnknownDelivery, WrongRecipient
from hub.logs import get_logger
from hub.publishing import Outbox
from hub.settings import Settings
from hub.store.repository import NewDelivery, ReceiptOutcome, Store
from hub.tracking import delivery_due_at, episode_fact
from topics.codec import decode
from topics.messages import Delivery, Receipt
from topics.topics import TopicName

log = get_logger(__name__)

DELIVERIES_GROUP = "hub-tracker-deliveries"
RECEIPTS_GROUP = "hub-tracker-receipts"


class DeliveryNotYetKnown(UnknownDelivery):
    """The receipt's delivery is not in the store yet: retried, then dead-lettered."""

    retriable = True


class Tracker:
    """Stores deliveries and applies receipts."""

    def __init__(self, store: Store, calendar: CalendarPolicy) -> None:
        self.store = store
        self.calendar = calendar

    async def on_delivery(self, body: bytes, headers: dict[str, str]) -> None:
        delivery = decode(Delivery, body, headers)
        due = delivery_due_at(delivery, self.calendar)
        new = await self.store.add_deliveries([NewDelivery.from_message(delivery, due)])
        fact = episode_fact(delivery)
        if fact is not None and delivery.message.episode_id is not None:
            await self.store.add_episode_fact(
                delivery.message.episode_id, delivery.message.message_id, fact.kind, fact.at
            )
        log.info(
            "tracker.delivery_stored",
            delivery_id=str(delivery.delivery_id),
            unit=delivery.recipient,
            due_at=due.isoformat(),
            new=bool(new),
        )

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
    deliveries = KafkaRouter(
        middlewares=[ConsumeGuard("tracker.deliveries", outbox, clock).middleware()]
    )
    receipts = KafkaRouter(
        middlewares=[ConsumeGuard("tracker.receipts", outbox, clock).middleware()]
    )

    @deliveries.subscriber(
        settings.topic(TopicName.DELIVERIES), **subscriber_options(settings.group(DELIVERIES_GROUP))
    )
    async def on_delivery(message: KafkaMessage) -> None:
        await tracker.on_delivery(message.body, message.headers)

    @receipts.subscriber(
        settings.topic(TopicName.RECEIPTS), **subscriber_options(settings.group(RECEIPTS_GROUP))
    )
    async def on_receipt(message: KafkaMessage) -> None:
        await tracker.on_receipt(message.body, message.headers)

    broker.include_router(deliveries)
    broker.include_router(receipts)


def build_app(
    settings: Settings, store: Store, calendar: CalendarPolicy, clock: Clock | None = None
) -> tuple[FastStream, KafkaBroker]:
    """The tracker as a FastStream app."""
    clock = clock or SystemClock()
    broker = build_broker(settings)
    outbox = Outbox(broker, settings)
    register(broker, settings, Tracker(store, calendar), outbox, clock)
    return FastStream(broker), broker
