"""Receipts (*kvittenser*) made on the hub's own recipient side: HTTP, signed link, inbox.

The id of such a receipt is derived from (delivery, channel), not drawn at random, so the same
act repeated — a second click on a link, a retried POST, an inbox consumer that crashed after
publishing and reprocessed the delivery — publishes the *same* receipt again, which the tracker
recognises as a duplicate (``ReceiptOutcome.DUPLICATE``). Two channels receipting one delivery
give two receipt ids; the store keeps the first ``receipted_at``.

A receipt by signed link cannot tell who clicked (the link is the credential): its
``receipted_by`` is the recipient unit's own HSA-id.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from topics.ids import RECEIPT_NAMESPACE, receipt_id_for
from topics.messages import Receipt, ReceiptChannel

__all__ = ["RECEIPT_NAMESPACE", "receipt_for", "receipt_id_for"]


def receipt_for(
    delivery_id: uuid.UUID,
    unit: str,
    channel: ReceiptChannel,
    receipted_by: str,
    now: datetime,
) -> Receipt:
    """The receipt message of ``unit`` for ``delivery_id``, made at ``now`` over ``channel``."""
    return Receipt(
        receipt_id=receipt_id_for(delivery_id, channel),
        delivery_id=delivery_id,
        unit=unit,
        receipted_at=now,
        receipted_by=receipted_by,
        channel=channel,
    )
