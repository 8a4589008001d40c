"""Deterministic ids, so that at-least-once delivery plus de-duplication gives effectively-once.

A redelivered message must produce the same delivery ids and the same escalation ids as the first
time, so every consumer can drop what it has already done. The namespaces below are fixed for
ever: changing one changes every id the hub has ever issued, so tests pin example values.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from functools import lru_cache
from typing import Final
from uuid import UUID

from hub.errors import ValidationFailed
from topics.identifiers import is_hsa_id
from topics.messages import ReceiptChannel

__all__ = [
    "DELIVERY_NAMESPACE",
    "ESCALATION_NAMESPACE",
    "RECEIPT_NAMESPACE",
    "delivery_id_for",
    "delivery_id_text",
    "escalation_id_for",
    "receipt_id_for",
]

#: uuid5 namespace of delivery ids (one delivery = one message to one recipient unit).
DELIVERY_NAMESPACE: Final = UUID("6f1d3c3e-9a53-4d7e-8f0c-2b7f1c3a5e01")
#: uuid5 namespace of receipt ids made by the hub's recipient side. Fixed for ever: changing it
#: would make a repeated act look like a new receipt.
RECEIPT_NAMESPACE: Final = UUID("2d6b1f8e-5c3a-4e9d-a0b7-8f4c6e2d1a03")
#: uuid5 namespace of escalation digest ids.
ESCALATION_NAMESPACE: Final = UUID("0c8e5b7a-41d2-4f6b-9e3a-7d5c2a1b9f02")

_ESCALATION_LEVELS: Final = range(1, 4)


def _require_hsa_id(unit: str) -> None:
    if not is_hsa_id(unit):
        msg = "unit: must be an HSA-id"
        raise ValidationFailed(msg)


def delivery_id_for(message_id: UUID, unit: str) -> UUID:
    """The id of the delivery of message ``message_id`` to the recipient unit ``unit`` (HSA-id).

    The same message routed again (a redelivery, a replay, a second router) to the same unit
    always gets the same delivery id, whatever role the unit has in it.
    """
    return UUID(delivery_id_text(message_id, unit))


def delivery_id_text(message_id: UUID | str, unit: str) -> str:
    """`delivery_id_for` in its canonical text form (``8-4-4-4-12`` lower-case hex).

    ``uuid.uuid5(DELIVERY_NAMESPACE, f"{message_id}|{unit}")``, computed as uuid5 does (SHA-1 of
    namespace and name, version and variant bits set) without building `UUID` objects: the
    router derives one per recipient of every message and only ever writes its text. Pinned
    against uuid5 by the tests.
    """
    digest = bytearray(
        hashlib.sha1(  # noqa: S324 - uuid5 is defined on SHA-1; not a security use
            _DELIVERY_PREFIX + str(message_id).encode() + _unit_suffix(unit)
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_DELIVERY_PREFIX: Final = DELIVERY_NAMESPACE.bytes


@lru_cache(maxsize=4096)
def _unit_suffix(unit: str) -> bytes:
    """``|<unit>`` as bytes, once the unit is known to be an HSA-id (units repeat; cached)."""
    _require_hsa_id(unit)
    return f"|{unit}".encode()


def escalation_id_for(unit: str, level: int, delivery_ids: Iterable[UUID]) -> UUID:
    """The id of the escalation digest for ``unit`` at ``level`` covering ``delivery_ids``.

    Order and repetition of ``delivery_ids`` do not matter: a scan that is re-run after a crash
    finds the same overdue deliveries and so produces the same id, which the notifier drops as a
    duplicate. A digest covering a different set of deliveries is a different digest.
    """
    _require_hsa_id(unit)
    if isinstance(level, bool) or level not in _ESCALATION_LEVELS:
        msg = "level: must be 1, 2 or 3"
        raise ValidationFailed(msg)
    unique = sorted({str(delivery_id) for delivery_id in delivery_ids})
    if not unique:
        msg = "delivery_ids: must not be empty"
        raise ValidationFailed(msg)
    return uuid.uuid5(ESCALATION_NAMESPACE, "|".join([unit, str(level), *unique]))


def receipt_id_for(delivery_id: UUID, channel: ReceiptChannel) -> UUID:
    """The receipt id of ``delivery_id`` receipted over ``channel`` (the same every time)."""
    return uuid.uuid5(RECEIPT_NAMESPACE, f"{delivery_id}|{ReceiptChannel(channel).value}")
