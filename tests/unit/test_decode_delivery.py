"""The tracker's delivery decode: exactly what `decode` gives, plus the envelope's JSON.

Whatever `decode_delivery` returns must equal what `decode` returns (and the envelope JSON what
the model serialises to); whatever `decode` refuses, it refuses with the same error.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from hub.errors import HubError
from hub.tracking import episode_fact
from topics.catalogue import MessageType, UnitKind
from topics.codec import decode, decode_delivery, delivery_encoder
from topics.examples import load_example
from topics.messages import Delivery, DeliveryRole, Envelope

UNIT = "SE2120000000-SYN2580BIS"
ROUTED_AT = datetime(2027, 3, 28, 1, 59, 59, 999999, tzinfo=UTC)


def routed(
    envelope: Envelope,
    *,
    recipient: str = UNIT,
    kind: UnitKind = UnitKind.ASSESSMENT_UNIT,
    role: DeliveryRole = DeliveryRole.RECIPIENT,
) -> tuple[bytes, dict[str, str]]:
    """The record the router writes for ``envelope`` (its own encoder)."""
    encode_one = delivery_encoder(ROUTED_AT, 7)
    return encode_one(envelope.model_dump_json(), uuid.uuid4(), recipient, kind, role)


@pytest.mark.parametrize("role", list(DeliveryRole))
@pytest.mark.parametrize("message_type", list(MessageType))
def test_router_records_decode_as_the_model_does(
    message_type: MessageType, role: DeliveryRole
) -> None:
    """Every example type and role: the same Delivery (and liability fact) as `decode`, the
    envelope JSON as the model serialises it, and the record took the router's path."""
    body, headers = routed(load_example(message_type), role=role)
    expected = decode(Delivery, body, headers)
    delivery, envelope_json = decode_delivery(body, headers)
    assert delivery == expected
    assert envelope_json == expected.message.model_dump_json()
    assert episode_fact(delivery) == episode_fact(expected)
    assert isinstance(delivery.message.payload, type(expected.message.payload))


def test_records_in_another_form_go_through_decode() -> None:
    """Other spacing or an unknown field a newer router added: decoded in full, same result."""
    body, headers = routed(load_example(MessageType.CARE_REQUEST))  # has its own "recipient"
    expected = decode(Delivery, body, headers)
    data = json.loads(body)
    spaced = json.dumps(data, indent=2).encode()
    newer = json.dumps({**data, "priority": "high"}, separators=(",", ":")).encode()
    for other in (spaced, newer):
        assert decode_delivery(other, headers) == (expected, expected.message.model_dump_json())


def _bad_records() -> list[tuple[str, bytes, dict[str, str]]]:
    body, headers = routed(load_example(MessageType.ADMISSION_NOTICE))
    text = body.decode()
    message_at = text.index('"message":') + len('"message":')
    tail_at = text.rindex(',"recipient":')
    envelope = text[message_at:tail_at]
    second_message = f'{text[:tail_at]},"message":{envelope}{text[tail_at:]}'
    second_recipient = text.replace(',"recipient_kind"', f',"recipient":"{UNIT}","recipient_kind"')
    truncated = text[:message_at] + envelope[:-1] + text[tail_at:]
    version = b'"directory_version":7'
    sent_at = json.dumps(json.loads(envelope)["sent_at"])
    unix_time = text.replace(f'"sent_at":{sent_at}', '"sent_at":1800000000')
    return [
        ("no version header", body, {"message-type": "delivery"}),
        ("unknown version", body, {**headers, "schema-version": "9"}),
        ("an envelope's type header", body, {**headers, "message-type": "admission_notice"}),
        ("not UTF-8", b"\xff" + body[1:], headers),
        ("not JSON", body[:-1], headers),
        ("bad recipient", body.replace(UNIT.encode(), b"SE-not-an-hsa-id"), headers),
        ("negative version", body.replace(version, b'"directory_version":-1'), headers),
        ("second message key", second_message.encode(), headers),
        ("second recipient key", second_recipient.encode(), headers),
        ("truncated envelope", truncated.encode(), headers),
        ("a Unix time in the envelope", unix_time.encode(), headers),
    ]


@pytest.mark.parametrize(("case", "body", "headers"), _bad_records(), ids=lambda v: str(v)[:20])
def test_what_decode_refuses_is_refused_the_same_way(
    case: str, body: bytes, headers: dict[str, str]
) -> None:
    """Bad headers, bytes, fields or framing: the same error class and text as `decode`."""
    with pytest.raises(HubError) as expected:
        decode(Delivery, body, headers)
    with pytest.raises(type(expected.value)) as got:
        decode_delivery(body, headers)
    assert str(got.value) == str(expected.value), case


def test_a_tampered_envelope_is_refused_even_in_the_router_form() -> None:
    """An envelope breaking a Python-checked rule (a check digit) is refused, whatever its form."""
    body, headers = routed(load_example(MessageType.ADMISSION_NOTICE))
    patient = decode(Delivery, body, headers).message.patient
    broken = patient[:-1] + str((int(patient[-1]) + 1) % 10)
    tampered = body.replace(patient.encode(), broken.encode())
    with pytest.raises(HubError, match="patient"):
        decode_delivery(tampered, headers)
