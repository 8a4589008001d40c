"""The reference inbox (*inkorg*): what a municipality or health centre could run to read its
deliveries from Kafka and receipt them.

Thin, like the hub's own consumers. For each record on the deliveries topic:

1. keep it only if its key is this unit's HSA-id (the topic is keyed by recipient unit), and
   check the decoded recipient again;
2. log one line without patient data: message type, delivery id, role, when it is due;
3. optionally wait ``receipt_delay_s`` (a person reading it), then publish a receipt
   (*kvittens*, channel ``kafka``) to the receipts topic and wait for the broker's ack;
4. only then let the offset be committed.

The receipt id is derived from (delivery, channel) (``hub.ops.receipts``), so a crash between 3
and 4 republishes the same receipt, which the tracker drops as a duplicate. With
``receipt_delay_s=None`` the inbox only logs (a unit that never receipts, for demos).

A real recipient system would show the envelope to staff and receipt when a person has read
it; this reference logs instead, because a log is not the place for patient data.

**Privacy note.** Every unit's deliveries share one topic: a consumer of it can read the
patient data of all units, whatever it filters, and Kafka ACLs cannot restrict by key. Give
this consumer's credentials only to systems trusted with the whole region's deliveries; a
municipality's own system should pull over the recipient HTTP API (per-unit keys) instead.
"""

from __future__ import annotations

import asyncio
from typing import Final

from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from hub.broker import build_broker, subscriber_options
from hub.calendar import CalendarPolicy
from hub.clock import Clock, SystemClock
from hub.consume import ConsumeGuard
from hub.errors import ValidationFailed
from hub.logs import get_logger
from hub.ops.receipts import receipt_for
from hub.publishing import Outbox
from hub.settings import Settings
from hub.tracking import delivery_due_at
from topics.codec import decode
from topics.identifiers import is_hsa_id
from topics.messages import Delivery, ReceiptChannel
from topics.topics import TopicName

log = get_logger(__name__)

#: Longest allowed wait before a receipt: the handler holds its partition meanwhile, and must
#: finish well inside the consumer's ``max_poll_interval_ms`` (300 s).
MAX_RECEIPT_DELAY_S: Final = 60.0


def group_id_for(unit: str) -> str:
    """The consumer group of one unit's inbox (each unit reads the whole topic for itself)."""
    return f"inbox-{unit}"


class Inbox:
    """One unit's inbox: filters, logs and receipts its deliveries."""

    def __init__(
        self,
        unit: str,
        receipted_by: str,
        outbox: Outbox,
        clock: Clock,
        *,
        receipt_delay_s: float | None = 0.0,
        calendar: CalendarPolicy | None = None,
    ) -> None:
        if not is_hsa_id(unit):
            msg = "unit: must be an HSA-id"
            raise ValidationFailed(msg)
        if not is_hsa_id(receipted_by):
            msg = "receipted_by: must be an HSA-id"
            raise ValidationFailed(msg)
        if receipt_delay_s is not None and not 0 <= receipt_delay_s <= MAX_RECEIPT_DELAY_S:
            msg = f"receipt_delay_s: must be between 0 and {MAX_RECEIPT_DELAY_S:g} seconds"
            raise ValidationFailed(msg)
        self.unit = unit
        self.receipted_by = receipted_by
        self.outbox = outbox
        self.clock = clock
        self.receipt_delay_s = receipt_delay_s
        self.calendar = calendar or CalendarPolicy()
        self._key = unit.encode()

    def is_mine(self, key: bytes | None) -> bool:
        """Whether a record with this key is addressed to this unit."""
        return key == self._key

    async def handle(self, key: bytes | None, body: bytes, headers: dict[str, str]) -> None:
        if not self.is_mine(key):
            return
        delivery = decode(Delivery, body, headers)
        if delivery.recipient != self.unit:
            # Keyed to us but addressed to another unit: not ours to read or receipt.
            log.warning("inbox.key_mismatch", delivery_id=str(delivery.delivery_id))
            return
        log.info(
            "inbox.delivery",
            delivery_id=str(delivery.delivery_id),
            message_type=delivery.message.message_type.value,
            role=delivery.role.value,
            due_at=delivery_due_at(delivery, self.calendar).isoformat(),
        )
        if self.receipt_delay_s is None:
            return
        if self.receipt_delay_s:
            await asyncio.sleep(self.receipt_delay_s)
        receipt = receipt_for(
            delivery.delivery_id,
            self.unit,
            ReceiptChannel.KAFKA,
            self.receipted_by,
            self.clock.now(),
        )
        await self.outbox.send(TopicName.RECEIPTS, receipt, self.unit)
        log.info(
            "inbox.receipted",
            delivery_id=str(delivery.delivery_id),
            receipt_id=str(receipt.receipt_id),
        )


def register(broker: KafkaBroker, settings: Settings, inbox: Inbox, guard: ConsumeGuard) -> None:
    """Attach the inbox's subscriber, inside the consume guard, to a broker."""
    routes = KafkaRouter(middlewares=[guard.middleware()])

    @routes.subscriber(
        settings.topic(TopicName.DELIVERIES),
        **subscriber_options(settings.group(group_id_for(inbox.unit))),
    )
    async def on_delivery(message: KafkaMessage) -> None:
        # One record per call (no batch subscriber), so raw_message is a ConsumerRecord.
        key = getattr(message.raw_message, "key", None)
        await inbox.handle(key if isinstance(key, bytes) else None, message.body, message.headers)

    broker.include_router(routes)


def build_app(
    settings: Settings,
    unit: str,
    receipted_by: str,
    clock: Clock | None = None,
    *,
    receipt_delay_s: float | None = 0.0,
) -> tuple[FastStream, KafkaBroker]:
    """One unit's inbox as a FastStream app (`faststream run --factory` style)."""
    clock = clock or SystemClock()
    broker = build_broker(settings)
    outbox = Outbox(broker, settings)
    inbox = Inbox(unit, receipted_by, outbox, clock, receipt_delay_s=receipt_delay_s)
    register(broker, settings, inbox, ConsumeGuard(f"inbox.{unit}", outbox, clock))
    return FastStream(broker), broker
