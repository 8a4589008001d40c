"""The router's fast delivery encoder writes exactly what the model path writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from topics.catalogue import MessageType, UnitKind
from topics.codec import decode, delivery_encoder, encode
from topics.examples import load_example
from topics.messages import Delivery, DeliveryRole


@pytest.mark.parametrize("message_type", list(MessageType))
@pytest.mark.parametrize(
    "routed_at",
    [datetime(2027, 3, 28, 1, 59, 59, 999999, tzinfo=UTC), datetime(2026, 12, 24, 9, tzinfo=UTC)],
)
def test_fast_encoding_is_byte_identical_to_the_model(
    message_type: MessageType, routed_at: datetime
) -> None:
    """For every example envelope, spliced bytes and headers equal encode(Delivery(...))."""
    envelope = load_example(message_type)
    delivery_id = uuid.uuid4()
    model = Delivery(
        delivery_id=delivery_id,
        message=envelope,
        recipient="SE2120000000-SYN2580BIS",
        recipient_kind=UnitKind.ASSESSMENT_UNIT,
        role=DeliveryRole.HISTORY,
        routed_at=routed_at,
        directory_version=7,
    )
    fast = delivery_encoder(routed_at, 7)(
        envelope.model_dump_json(),
        delivery_id,
        "SE2120000000-SYN2580BIS",
        UnitKind.ASSESSMENT_UNIT,
        DeliveryRole.HISTORY,
    )
    assert fast == encode(model)
    assert decode(Delivery, *fast) == model
