"""The wire codec: JSON bodies, version and type headers, and error translation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import (
    UndecodableMessage,
    UnknownMessageType,
    UnknownSchemaVersion,
    ValidationFailed,
)
from topics.catalogue import MessageType, UnitKind
from topics.codec import (
    MESSAGE_TYPE_HEADER,
    SCHEMA_VERSION_HEADER,
    decode,
    decode_envelope,
    encode,
)
from topics.deadletter import DeadLetterReason
from topics.examples import example_path, load_example
from topics.identifiers import luhn_check_digit
from topics.messages import (
    AlertSeverity,
    DeadLetter,
    Delivery,
    DeliveryRole,
    Envelope,
    Escalation,
    EscalationTarget,
    OpsAlert,
    Receipt,
    ReceiptChannel,
)

NOW = datetime(2027, 3, 29, 8, 0, tzinfo=UTC)
HEADERS = {SCHEMA_VERSION_HEADER: "1", MESSAGE_TYPE_HEADER: "general_message"}


def example_body(message_type: MessageType) -> bytes:
    return example_path(message_type).read_bytes()


def general_message_body(**overrides: Any) -> bytes:
    data = json.loads(example_body(MessageType.GENERAL_MESSAGE))
    data.update(overrides)
    return json.dumps(data).encode()


@pytest.mark.parametrize("message_type", list(MessageType))
def test_encode_sets_version_and_type_headers(message_type: MessageType) -> None:
    """An envelope is published as its JSON with schema-version 1 and its message type."""
    envelope = load_example(message_type)
    body, headers = encode(envelope)
    assert headers == {"schema-version": "1", "message-type": message_type.value}
    assert json.loads(body) == json.loads(example_body(message_type))


@pytest.mark.parametrize("message_type", list(MessageType))
def test_decode_inverts_encode(message_type: MessageType) -> None:
    """decode_envelope(*encode(m)) == m, with str or bytes header values."""
    envelope = load_example(message_type)
    body, headers = encode(envelope)
    assert decode_envelope(body, headers) == envelope
    assert decode_envelope(body, {k: v.encode() for k, v in headers.items()}) == envelope


def internal_records() -> tuple[Delivery, Receipt, Escalation, DeadLetter, OpsAlert]:
    delivery = Delivery(
        delivery_id=UUID(int=1),
        message=load_example(MessageType.ADMISSION_NOTICE),
        recipient="SE2321000230-SYN2",
        recipient_kind=UnitKind.HEALTH_CENTRE,
        role=DeliveryRole.RECIPIENT,
        routed_at=NOW,
        directory_version=1,
    )
    receipt = Receipt(
        receipt_id=UUID(int=2),
        delivery_id=UUID(int=1),
        unit="SE2321000230-SYN2",
        receipted_at=NOW,
        receipted_by="SE2321000230-STAFF1",
        channel=ReceiptChannel.KAFKA,
    )
    escalation = Escalation(
        escalation_id=UUID(int=4),
        unit="SE2321000230-SYN2",
        unit_name="Hälsocentralen (syntetisk)",
        level=1,
        target=EscalationTarget.UNIT_MAILBOX,
        recipients=("hc@example.org",),
        delivery_ids=(UUID(int=1),),
        count=1,
        oldest_arrived_at=NOW,
        oldest_due_at=NOW,
        scanned_at=NOW,
        link="https://hub.example.org/units/SE2321000230-SYN2",
    )
    dead_letter = DeadLetter(
        original_value=b"\x00\xff",
        original_headers={},
        reason=DeadLetterReason.UNDECODABLE,
        stage="router.decode",
        error_class="UndecodableMessage",
        detail="body: not UTF-8",
        attempts=1,
        first_failure_at=NOW,
        last_failure_at=NOW,
        origin_topic="care-episode-events.v1",
        origin_partition=0,
        origin_offset=0,
    )
    alert = OpsAlert(
        alert_id=UUID(int=3),
        kind="deadletter.spike",
        severity=AlertSeverity.CRITICAL,
        summary="12 dead letters in 5 minutes",
        raised_at=NOW,
    )
    return delivery, receipt, escalation, dead_letter, alert


def test_internal_records_carry_their_record_type() -> None:
    """Each internal record has a fixed message-type header."""
    assert [encode(record)[1] for record in internal_records()] == [
        {"schema-version": "1", "message-type": record_type}
        for record_type in ("delivery", "receipt", "escalation", "dead_letter", "ops_alert")
    ]


def test_internal_records_round_trip() -> None:
    """decode(cls, *encode(record)) == record for every internal record."""
    delivery, receipt, escalation, dead_letter, alert = internal_records()
    assert decode(Delivery, *encode(delivery)) == delivery
    assert decode(Receipt, *encode(receipt)) == receipt
    assert decode(Escalation, *encode(escalation)) == escalation
    assert decode(DeadLetter, *encode(dead_letter)) == dead_letter
    assert decode(OpsAlert, *encode(alert)) == alert


def test_decode_checks_the_record_type_header() -> None:
    """A receipt's bytes are not decoded as a delivery."""
    body, headers = encode(internal_records()[1])
    with pytest.raises(ValidationFailed) as caught:
        decode(Delivery, body, headers)
    assert str(caught.value) == "message-type header: expected delivery"


def test_envelope_decoder_refuses_internal_record_types() -> None:
    """An internal record type in the header is not a message type."""
    with pytest.raises(ValidationFailed) as caught:
        decode_envelope(
            example_body(MessageType.GENERAL_MESSAGE), {**HEADERS, "message-type": "receipt"}
        )
    assert str(caught.value) == "message-type header: names an internal record, not a message type"


HEADER_CASES = [
    (
        {MESSAGE_TYPE_HEADER: "general_message"},
        UnknownSchemaVersion,
        "schema-version header is missing",
    ),
    (
        {**HEADERS, SCHEMA_VERSION_HEADER: "2"},
        UnknownSchemaVersion,
        "schema-version header: not a version this hub reads (it reads 1)",
    ),
    (
        {**HEADERS, SCHEMA_VERSION_HEADER: "1.1"},
        UnknownSchemaVersion,
        "schema-version header: not a version this hub reads (it reads 1)",
    ),
    ({SCHEMA_VERSION_HEADER: "1"}, UnknownMessageType, "message-type header is missing"),
    (
        {**HEADERS, MESSAGE_TYPE_HEADER: "gossip"},
        UnknownMessageType,
        "message-type header: not a known message type",
    ),
    (
        {**HEADERS, MESSAGE_TYPE_HEADER: "General_Message"},
        UnknownMessageType,
        "message-type header: not a known message type",
    ),
    (
        {**HEADERS, MESSAGE_TYPE_HEADER: b"\xff"},
        UndecodableMessage,
        "message-type header: not UTF-8",
    ),
]


@pytest.mark.parametrize(("headers", "error", "message"), HEADER_CASES)
def test_headers_are_checked_before_the_body(
    headers: dict[str, str | bytes], error: type[Exception], message: str
) -> None:
    """A missing or unknown version or type is refused, never guessed, whatever the body."""
    for body in (example_body(MessageType.GENERAL_MESSAGE), b"\xff garbage"):
        with pytest.raises(error) as caught:
            decode_envelope(body, headers)
        assert str(caught.value) == message


def test_header_type_must_match_the_body_type() -> None:
    """A body whose message_type differs from the header is refused."""
    headers = {**HEADERS, MESSAGE_TYPE_HEADER: "discharge_notice"}
    with pytest.raises(ValidationFailed) as caught:
        decode_envelope(example_body(MessageType.GENERAL_MESSAGE), headers)
    assert str(caught.value) == "message_type: does not match the message-type header"


UNDECODABLE = [
    (b"\xff\xfe{}", "body: not UTF-8"),
    (b"", "body: not JSON (line 1, column 1)"),
    (b'{"message_id": ', "body: not JSON (line 1, column 16)"),
    (b'{"a": 1} trailing', "body: not JSON (line 1, column 10)"),
    (b'{"a": 1, "a": 2}', "body: duplicate key in a JSON object"),
    (b'{"a": NaN}', "body: not JSON the hub accepts (NaN, huge number or too deep)"),
    (b'{"a": Infinity}', "body: not JSON the hub accepts (NaN, huge number or too deep)"),
    (
        b'{"a": ' + b"9" * 5000 + b"}",
        "body: not JSON the hub accepts (NaN, huge number or too deep)",
    ),
    (
        b"[" * 100_000 + b"]" * 100_000,
        "body: not JSON the hub accepts (NaN, huge number or too deep)",
    ),
]


@pytest.mark.parametrize(("body", "message"), UNDECODABLE)
def test_undecodable_bodies(body: bytes, message: str) -> None:
    """Bytes that are not one clean JSON document are UndecodableMessage."""
    with pytest.raises(UndecodableMessage) as caught:
        decode_envelope(body, HEADERS)
    assert str(caught.value) == message


def test_duplicate_patient_key_is_refused() -> None:
    """A second "patient" key cannot silently replace the first."""
    body = example_body(MessageType.GENERAL_MESSAGE).replace(
        b'"patient": "19121212-1212",', b'"patient": "19121212-1212", "patient": "811228-9874",'
    )
    assert body.count(b'"patient"') == 2
    with pytest.raises(UndecodableMessage):
        decode_envelope(body, HEADERS)


def test_validation_error_lists_paths_and_types() -> None:
    """The message names every bad field path and its error type; our own rules add their text."""
    data = json.loads(example_body(MessageType.ADMISSION_NOTICE))
    data["patient"] = "19121212-1213"
    data["payload"]["ward"] = "ward 7"
    data["payload"]["admitted_at"] = "2027-03-26T07:30:00"
    data["sent_at"] = 12
    data["extra"] = True
    body = json.dumps(data).encode()
    with pytest.raises(ValidationFailed) as caught:
        decode_envelope(body, {**HEADERS, MESSAGE_TYPE_HEADER: "admission_notice"})
    assert str(caught.value) == (
        "invalid Envelope: "
        "patient: personal_identity_number (check digit does not match); "
        "sent_at: timestamp_type (must be an ISO 8601 date-time with a UTC offset); "
        "payload.ward: hsa_id (must be an HSA-id: SE, a 10-digit organisation number, '-', "
        "1-31 letters or digits); "
        "payload.admitted_at: timezone_aware; "
        "extra: extra_forbidden"
    )


def test_list_indices_appear_in_paths() -> None:
    """A bad list item is named by its index."""
    data = json.loads(example_body(MessageType.GENERAL_MESSAGE))
    data["payload"]["recipients"] = ["SE2321000230-SYN1", "nobody"]
    with pytest.raises(ValidationFailed) as caught:
        decode_envelope(json.dumps(data).encode(), HEADERS)
    assert str(caught.value).startswith("invalid Envelope: payload.recipients[1]: hsa_id (")


def test_json_that_is_not_an_object_is_invalid() -> None:
    """A JSON array is JSON, but not a message."""
    with pytest.raises(ValidationFailed) as caught:
        decode_envelope(b"[1, 2]", HEADERS)
    assert str(caught.value) == "invalid Envelope: (body): model_type"


def test_internal_record_errors_name_nested_paths() -> None:
    """Errors inside a delivery's envelope drop the payload tag from the path too."""
    body, headers = encode(internal_records()[0])
    data = json.loads(body)
    data["message"]["payload"]["home_municipality"] = "9999"
    with pytest.raises(ValidationFailed) as caught:
        decode(Delivery, json.dumps(data).encode(), headers)
    assert str(caught.value) == (
        "invalid Delivery: message.payload.home_municipality: municipality_code "
        "(must be a kommunkod: four ASCII digits, the first two a county code 01-25)"
    )


def test_unknown_dict_keys_in_paths_are_masked() -> None:
    """A path segment taken from the input (an unknown key) never shows a personnummer."""
    with pytest.raises(ValidationFailed) as caught:
        decode_envelope(general_message_body(**{"19121212-1212": 1}), HEADERS)
    assert str(caught.value) == "invalid Envelope: [personnummer]: extra_forbidden"


@st.composite
def patient_numbers(draw: st.DrawFn) -> str:
    year = draw(st.integers(min_value=1900, max_value=2024))
    month = draw(st.integers(min_value=1, max_value=12))
    day = draw(st.integers(min_value=1, max_value=28)) + draw(st.sampled_from([0, 60]))
    serial = draw(st.integers(min_value=1, max_value=999))
    nine = f"{year % 100:02d}{month:02d}{day:02d}{serial:03d}"
    return f"{year}{month:02d}{day:02d}-{serial:03d}{luhn_check_digit(nine)}"


@given(patient_numbers(), st.booleans(), st.sampled_from(["sender", "sent_at", "payload"]))
def test_errors_never_contain_the_patient_number(
    patient: str, break_check_digit: bool, broken_field: str
) -> None:
    """Neither the ValidationFailed text nor its chained cause shows the patient number."""
    if break_check_digit:
        patient = patient[:-1] + str((int(patient[-1]) + 1) % 10)
    body = general_message_body(patient=patient, **{broken_field: patient})
    with pytest.raises(ValidationFailed) as caught:
        decode_envelope(body, HEADERS)
    texts = [str(caught.value), str(caught.value.__cause__), repr(caught.value.__cause__)]
    for text in texts:
        assert patient not in text
        assert patient.replace("-", "") not in text


def test_decode_returns_a_fully_validated_envelope() -> None:
    """What decode returns is the same value the model builds from the file."""
    envelope = decode_envelope(
        example_body(MessageType.SIP_INVITATION), {**HEADERS, MESSAGE_TYPE_HEADER: "sip_invitation"}
    )
    assert envelope == Envelope.model_validate_json(example_body(MessageType.SIP_INVITATION))
