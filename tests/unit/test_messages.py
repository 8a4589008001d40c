"""The message models: examples, envelope rules, payload rules and internal records."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from topics.catalogue import MessageType, UnitKind
from topics.deadletter import DeadLetterReason
from topics.examples import EXAMPLE_DIR, example_path, load_example
from topics.identifiers import MASK
from topics.messages import (
    EPISODELESS_MESSAGE_TYPES,
    FREE_TEXT_MAX_LENGTH,
    PAYLOAD_CLASSES,
    SCHEMA_VERSION,
    AdmissionNotice,
    AlertSeverity,
    Cancellation,
    DeadLetter,
    Delivery,
    DeliveryRole,
    DischargeNotice,
    Envelope,
    Escalation,
    EscalationTarget,
    GeneralMessage,
    OpsAlert,
    PlanningAction,
    PlanningDocument,
    Receipt,
    ReceiptChannel,
)

PATIENT = "19121212-1212"
WARD = "SE2321000230-SYN1"
HEALTH_CENTRE = "SE2321000230-SYN2"
HOME_CARE = "SE2321000230-SYN3"
MESSAGE_ID = UUID("00000000-0000-4000-8000-000000000099")


def example_data(message_type: MessageType) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(example_path(message_type).read_text(encoding="utf-8"))
    return data


def errors_of(exc: ValidationError) -> list[dict[str, Any]]:
    return [dict(e) for e in exc.errors(include_url=False, include_input=False)]


def envelope_errors(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        Envelope.model_validate(data)
    return errors_of(caught.value)


def general_message(**overrides: Any) -> dict[str, Any]:
    data = example_data(MessageType.GENERAL_MESSAGE)
    data.update(overrides)
    return data


# --- examples --------------------------------------------------------------------------------


def test_there_is_one_example_per_message_type() -> None:
    """topics/examples has exactly one JSON file per message type."""
    assert sorted(p.stem for p in EXAMPLE_DIR.glob("*.json")) == sorted(
        m.value for m in MessageType
    )


@pytest.mark.parametrize("message_type", list(MessageType))
def test_every_example_parses_as_its_type(message_type: MessageType) -> None:
    """Each example is a valid envelope of its own type, with its own payload class."""
    envelope = load_example(message_type)
    assert envelope.message_type == message_type
    assert type(envelope.payload) is PAYLOAD_CLASSES[message_type]
    assert envelope.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("message_type", list(MessageType))
def test_every_example_is_in_canonical_form(message_type: MessageType) -> None:
    """Serialising a parsed example gives back the file's JSON exactly (UTC, 12-digit patient)."""
    assert load_example(message_type).model_dump(mode="json") == example_data(message_type)


@pytest.mark.parametrize("message_type", list(MessageType))
def test_every_example_round_trips(message_type: MessageType) -> None:
    """parse(serialise(m)) == m for every example."""
    envelope = load_example(message_type)
    assert Envelope.model_validate_json(envelope.model_dump_json()) == envelope


def test_payload_classes_cover_every_message_type() -> None:
    """Every message type has its own payload class whose kind is the type's value."""
    assert set(PAYLOAD_CLASSES) == set(MessageType)
    assert len(set(PAYLOAD_CLASSES.values())) == len(MessageType)
    assert {m: c.model_fields["kind"].default for m, c in PAYLOAD_CLASSES.items()} == {
        m: m.value for m in MessageType
    }


# --- envelope rules --------------------------------------------------------------------------


def test_naive_envelope_timestamp_is_refused_at_its_field() -> None:
    """A datetime without offset is refused, and the error's loc names the field."""
    errors = envelope_errors(general_message(occurred_at="2027-03-29T10:00:00"))
    assert errors == [
        {
            "type": "timezone_aware",
            "loc": ("occurred_at",),
            "msg": "Input should have timezone info",
        }
    ]


def test_naive_payload_timestamp_is_refused_at_its_field() -> None:
    """The loc of a payload error goes through payload and the payload's kind."""
    data = example_data(MessageType.ADMISSION_NOTICE)
    data["payload"]["admitted_at"] = "2027-03-26T07:30:00"
    assert envelope_errors(data) == [
        {
            "type": "timezone_aware",
            "loc": ("payload", "admission_notice", "admitted_at"),
            "msg": "Input should have timezone info",
        }
    ]


def test_naive_python_datetime_is_refused() -> None:
    """A naive datetime object is refused just like a naive string."""
    errors = envelope_errors(general_message(sent_at=datetime(2027, 3, 29, 10, 0)))  # noqa: DTZ001
    assert [(e["type"], e["loc"]) for e in errors] == [("timezone_aware", ("sent_at",))]


@pytest.mark.parametrize("value", [1_800_000_000, 1.8e9, True])
def test_numeric_timestamps_are_refused(value: object) -> None:
    """pydantic would read a number as a Unix time; the contract wants ISO 8601 text."""
    assert envelope_errors(general_message(occurred_at=value)) == [
        {
            "type": "timestamp_type",
            "loc": ("occurred_at",),
            "msg": "must be an ISO 8601 date-time with a UTC offset",
        }
    ]


TIMESTAMPS = [
    ("2027-03-28T10:00:00+02:00", "2027-03-28T08:00:00+00:00"),
    ("2027-03-28T01:59:59+01:00", "2027-03-28T00:59:59+00:00"),
    ("2027-10-31T02:30:00+01:00", "2027-10-31T01:30:00+00:00"),
    ("2027-10-31T02:30:00+02:00", "2027-10-31T00:30:00+00:00"),
    ("2027-03-28T08:00:00Z", "2027-03-28T08:00:00+00:00"),
    ("2027-03-28T08:00:00.123456-05:00", "2027-03-28T13:00:00.123456+00:00"),
]


@pytest.mark.parametrize(("given_at", "utc"), TIMESTAMPS)
def test_timestamps_are_normalised_to_utc(given_at: str, utc: str) -> None:
    """Every timestamp is stored in UTC, whatever offset it came with."""
    envelope = Envelope.model_validate(general_message(occurred_at=given_at))
    assert envelope.occurred_at.isoformat() == utc
    assert envelope.occurred_at.tzinfo is UTC


def test_wrong_payload_for_type_is_an_error_at_payload() -> None:
    """A payload of another kind than message_type is refused at loc payload."""
    data = example_data(MessageType.ADMISSION_NOTICE)
    data["payload"] = example_data(MessageType.DISCHARGE_NOTICE)["payload"]
    assert envelope_errors(data) == [
        {
            "type": "payload_type_mismatch",
            "loc": ("payload",),
            "msg": "payload kind does not match message_type",
        }
    ]


def test_payload_without_kind_is_refused() -> None:
    """On the wire the payload must say its kind; pydantic cannot pick a class otherwise."""
    data = example_data(MessageType.DISCHARGE_NOTICE)
    del data["payload"]["kind"]
    assert [(e["type"], e["loc"]) for e in envelope_errors(data)] == [
        ("union_tag_not_found", ("payload",))
    ]


def test_unknown_message_type_is_refused() -> None:
    """A message type outside the catalogue is an enum error at message_type, nothing more."""
    errors = envelope_errors(general_message(message_type="gossip"))
    assert [(e["type"], e["loc"]) for e in errors] == [("enum", ("message_type",))]


@pytest.mark.parametrize(
    "message_type", sorted(set(MessageType) - EPISODELESS_MESSAGE_TYPES, key=str)
)
def test_episode_id_is_required_for_episode_messages(message_type: MessageType) -> None:
    """Messages of an inpatient stay must name it."""
    data = example_data(message_type)
    data["episode_id"] = None
    assert envelope_errors(data) == [
        {
            "type": "episode_id_required",
            "loc": ("episode_id",),
            "msg": "is required for this message_type",
        }
    ]
    del data["episode_id"]
    assert [e["type"] for e in envelope_errors(data)] == ["episode_id_required"]


@pytest.mark.parametrize("message_type", sorted(EPISODELESS_MESSAGE_TYPES, key=str))
def test_episode_id_is_optional_outside_episodes(message_type: MessageType) -> None:
    """Messages outside an episode and care requests may omit episode_id, or carry one."""
    data = example_data(message_type)
    data.pop("episode_id")
    assert Envelope.model_validate(data).episode_id is None
    data["episode_id"] = "ep-1"
    assert Envelope.model_validate(data).episode_id == "ep-1"


def test_schema_version_must_be_the_current_major() -> None:
    """Another schema_version in the body is refused, not guessed at."""
    errors = envelope_errors(general_message(schema_version="2"))
    assert [(e["type"], e["loc"]) for e in errors] == [("literal_error", ("schema_version",))]


def test_unknown_envelope_field_is_refused() -> None:
    """External messages forbid unknown fields, in the envelope and in the payload."""
    data = general_message(priority="high")
    data["payload"]["colour"] = "red"
    assert [(e["type"], e["loc"]) for e in envelope_errors(data)] == [
        ("extra_forbidden", ("payload", "general_message", "colour")),
        ("extra_forbidden", ("priority",)),
    ]


def test_patient_number_is_normalised() -> None:
    """The envelope stores the patient as YYYYMMDD-NNNC whatever 12-digit form came in."""
    envelope = Envelope.model_validate(general_message(patient="191212121212"))
    assert envelope.patient == PATIENT


def test_ten_digit_patient_number_needs_today_in_the_context() -> None:
    """A 10-digit patient number is read only when the caller passes a reference date."""
    data = general_message(patient="121212+1212")
    assert [e["type"] for e in envelope_errors(data)] == ["personal_identity_number"]
    envelope = Envelope.model_validate(data, context={"today": date(2027, 3, 29)})
    assert envelope.patient == PATIENT


def test_envelope_is_frozen() -> None:
    """Models are immutable values."""
    envelope = load_example(MessageType.GENERAL_MESSAGE)
    with pytest.raises(ValidationError) as caught:
        envelope.sender = WARD
    assert [e["type"] for e in caught.value.errors()] == ["frozen_instance"]


def test_cancellation_cannot_cancel_itself() -> None:
    """A makulering names another message."""
    data = example_data(MessageType.CANCELLATION)
    data["payload"]["cancelled_message_id"] = data["message_id"]
    assert envelope_errors(data) == [
        {
            "type": "self_cancellation",
            "loc": ("payload",),
            "msg": "a message cannot cancel itself (cancelled_message_id)",
        }
    ]


def test_error_text_never_contains_the_patient_number() -> None:
    """str() of a validation error shows no input, so no personnummer, valid or not."""
    for patient in (PATIENT, "19121212-1213", "191212121213"):
        data = general_message(patient=patient, sender="not an hsa id")
        data["payload"]["text"] = ""
        with pytest.raises(ValidationError) as caught:
            Envelope.model_validate(data)
        for text in (str(caught.value), repr(caught.value), json.dumps(errors_of(caught.value))):
            assert patient not in text
            assert patient.replace("-", "") not in text


# --- payload rules ---------------------------------------------------------------------------


def test_free_text_may_be_4000_characters_stored_as_given() -> None:
    """Up to 4000 characters of any text are kept exactly, markup and whitespace included."""
    text = "<b>" + " \n\t" + "å" * (FREE_TEXT_MAX_LENGTH - 6)
    envelope = Envelope.model_validate(
        general_message(payload={**general_message()["payload"], "text": text})
    )
    assert isinstance(envelope.payload, GeneralMessage)
    assert envelope.payload.text == text


def test_free_text_over_4000_characters_is_refused() -> None:
    """Free text is length-limited at its field."""
    payload = {**general_message()["payload"], "text": "x" * (FREE_TEXT_MAX_LENGTH + 1)}
    errors = envelope_errors(general_message(payload=payload))
    assert errors == [
        {
            "type": "string_too_long",
            "loc": ("payload", "general_message", "text"),
            "msg": "String should have at most 4000 characters",
            "ctx": {"max_length": 4000},
        }
    ]


def test_free_text_must_not_be_empty() -> None:
    """An empty message text is refused."""
    payload = {**general_message()["payload"], "text": ""}
    assert [e["type"] for e in envelope_errors(general_message(payload=payload))] == [
        "string_too_short"
    ]


@pytest.mark.parametrize(
    ("recipients", "error_type"),
    [
        ([], "empty"),
        ([f"SE2321000230-R{i}" for i in range(21)], "too_long"),
        (["SE2321000230-R1", "nobody"], "hsa_id"),
        ([WARD, HOME_CARE, WARD], "unique_items"),
    ],
)
def test_recipient_lists_are_bounded_and_distinct(recipients: list[str], error_type: str) -> None:
    """A general message names 1-20 distinct units."""
    payload = {**general_message()["payload"], "recipients": recipients}
    assert [e["type"] for e in envelope_errors(general_message(payload=payload))] == [error_type]


def test_twenty_recipients_are_allowed() -> None:
    """Twenty distinct recipients is the upper bound, inclusive."""
    recipients = tuple(f"SE2321000230-R{i}" for i in range(20))
    message = GeneralMessage(text="hej", recipients=recipients)
    assert message.recipients == recipients


def test_planning_document_flag_is_strict() -> None:
    """needs_more_information must be a JSON boolean, not "yes" or 1."""
    for flag in ('"yes"', "1", '"true"'):
        with pytest.raises(ValidationError) as caught:
            PlanningDocument.model_validate_json(
                f'{{"action": "created", "needs_more_information": {flag}, "summary": "s"}}'
            )
        assert [e["type"] for e in caught.value.errors()] == ["bool_type"]
    document = PlanningDocument.model_validate_json(
        '{"action": "updated", "needs_more_information": true, "summary": "s"}'
    )
    assert document == PlanningDocument(
        action=PlanningAction.UPDATED, needs_more_information=True, summary="s"
    )


ADMISSIONS = [
    # (admitted_at, expected_discharge_date, accepted): the local date in Stockholm counts
    ("2027-03-25T23:30:00Z", "2027-03-26", True),  # 00:30 local on the 26th
    ("2027-03-25T23:30:00Z", "2027-03-25", False),
    ("2027-03-25T22:30:00Z", "2027-03-25", True),  # 23:30 local on the 25th
    ("2027-06-30T21:59:59Z", "2027-06-30", True),  # 23:59:59 summer time
    ("2027-06-30T22:00:00Z", "2027-06-30", False),  # 00:00 on 1 July
]


@pytest.mark.parametrize(("admitted_at", "expected_discharge", "accepted"), ADMISSIONS)
def test_expected_discharge_not_before_admission_date(
    admitted_at: str, expected_discharge: str, accepted: bool
) -> None:
    """The expected discharge date may not precede the admission's local date."""
    payload = {
        "ward": WARD,
        "admitted_at": admitted_at,
        "expected_discharge_date": expected_discharge,
        "listed_health_centre": HEALTH_CENTRE,
        "home_municipality": "2580",
    }
    if accepted:
        notice = AdmissionNotice.model_validate(payload)
        assert notice.expected_discharge_date.isoformat() == expected_discharge
    else:
        with pytest.raises(ValidationError) as caught:
            AdmissionNotice.model_validate(payload)
        assert errors_of(caught.value) == [
            {
                "type": "date_order",
                "loc": (),
                "msg": "expected_discharge_date must not be before the admission date",
            }
        ]


@pytest.mark.parametrize(
    "value", ["2027-04-02T00:00:00", "2027-04-02 ", 1_800_000_000, "02/04/2027", "2027-02-30"]
)
def test_calendar_dates_are_iso_dates(value: object) -> None:
    """A calendar date is YYYY-MM-DD text (or a date), not a number or a datetime."""
    data = example_data(MessageType.DISCHARGE_DATE_CHANGED)
    data["payload"]["new_expected_discharge_date"] = value
    errors = envelope_errors(data)
    assert [e["loc"] for e in errors] == [
        ("payload", "discharge_date_changed", "new_expected_discharge_date")
    ]


def test_episode_updated_needs_at_least_one_field() -> None:
    """An update that changes nothing is refused."""
    data = example_data(MessageType.EPISODE_UPDATED)
    data["payload"] = {"kind": "episode_updated"}
    assert envelope_errors(data) == [
        {
            "type": "nothing_updated",
            "loc": ("payload", "episode_updated"),
            "msg": "at least one of listed_health_centre, home_municipality, "
            "expected_discharge_date must be set",
        }
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {"listed_health_centre": HEALTH_CENTRE},
        {"home_municipality": "2584"},
        {"expected_discharge_date": "2027-04-09"},
    ],
)
def test_episode_updated_with_one_field_is_enough(payload: dict[str, str]) -> None:
    """Any single field set makes a valid update; the others stay None."""
    data = example_data(MessageType.EPISODE_UPDATED)
    data["payload"] = {"kind": "episode_updated", **payload}
    update = Envelope.model_validate(data).payload
    assert update.model_dump(mode="json", exclude={"kind"}) == {
        "listed_health_centre": None,
        "home_municipality": None,
        "expected_discharge_date": None,
        **payload,
    }


def test_payload_models_can_be_built_in_python_without_kind() -> None:
    """Python code passes a payload instance; kind defaults to the class's type."""
    envelope = Envelope(
        message_id=MESSAGE_ID,
        message_type=MessageType.DISCHARGE_NOTICE,
        episode_id="ep-1",
        sender=WARD,
        patient=PATIENT,
        occurred_at=datetime(2027, 4, 5, 10, tzinfo=UTC),
        sent_at=datetime(2027, 4, 5, 10, 1, tzinfo=UTC),
        payload=DischargeNotice(discharged_at=datetime(2027, 4, 5, 9, 55, tzinfo=UTC)),
    )
    assert envelope.model_dump(mode="json")["payload"] == {
        "kind": "discharge_notice",
        "discharged_at": "2027-04-05T09:55:00Z",
    }


# --- round trip as a property ----------------------------------------------------------------

aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by API
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-7))]),
)
free_text = st.text(min_size=1, max_size=300)


@given(
    message_type=st.sampled_from(list(MessageType)),
    message_id=st.uuids(),
    occurred_at=aware_datetimes,
    sent_at=aware_datetimes,
    text=free_text,
    causation_id=st.one_of(st.none(), st.uuids()),
)
def test_parse_serialise_round_trip(
    *,
    message_type: MessageType,
    message_id: UUID,
    occurred_at: datetime,
    sent_at: datetime,
    text: str,
    causation_id: UUID | None,
) -> None:
    """parse(serialise(m)) == m for envelopes with varied ids, instants and free text."""
    data = example_data(message_type)
    data.update(
        message_id=str(message_id),
        occurred_at=occurred_at.isoformat(),
        sent_at=sent_at,
        causation_id=causation_id,
    )
    for field in ("text", "summary", "reason"):
        if field in data["payload"]:
            data["payload"][field] = text
    if message_type is MessageType.CANCELLATION and message_id == UUID(
        data["payload"]["cancelled_message_id"]
    ):
        return
    envelope = Envelope.model_validate(data)
    assert Envelope.model_validate_json(envelope.model_dump_json()) == envelope
    assert Envelope.model_validate(envelope.model_dump(mode="json")) == envelope


# --- internal records ------------------------------------------------------------------------

NOW = datetime(2027, 3, 29, 8, 0, tzinfo=UTC)


def make_delivery(**overrides: Any) -> Delivery:
    fields: dict[str, Any] = {
        "delivery_id": UUID("11111111-1111-4111-8111-111111111111"),
        "message": load_example(MessageType.ADMISSION_NOTICE),
        "recipient": HEALTH_CENTRE,
        "recipient_kind": UnitKind.HEALTH_CENTRE,
        "role": DeliveryRole.RECIPIENT,
        "routed_at": NOW,
        "directory_version": 7,
    }
    fields.update(overrides)
    return Delivery.model_validate(fields)


def make_escalation(**overrides: Any) -> Escalation:
    fields: dict[str, Any] = {
        "escalation_id": UUID("22222222-2222-4222-8222-222222222222"),
        "unit": HOME_CARE,
        "unit_name": "Hemsjukvården Luleå (syntetisk)",
        "level": 2,
        "target": EscalationTarget.ON_CALL,
        "recipients": ("jour@example.org", "https://hooks.example.org/sms"),
        "delivery_ids": (UUID("11111111-1111-4111-8111-111111111111"),),
        "count": 3,
        "oldest_arrived_at": NOW - timedelta(hours=30),
        "oldest_due_at": NOW - timedelta(hours=25),
        "scanned_at": NOW,
        "link": "https://hub.example.org/units/SE2321000230-SYN3/inbox",
    }
    fields.update(overrides)
    return Escalation.model_validate(fields)


def make_dead_letter(**overrides: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "original_value": b"\xff not json",
        "original_headers": {"schema-version": "1"},
        "reason": DeadLetterReason.UNDECODABLE,
        "stage": "router.decode",
        "error_class": "UndecodableMessage",
        "detail": "body: not UTF-8",
        "attempts": 1,
        "first_failure_at": NOW,
        "last_failure_at": NOW,
        "origin_topic": "care-episode-events.v1",
        "origin_partition": 3,
        "origin_offset": 12345,
    }
    fields.update(overrides)
    return DeadLetter.model_validate(fields)


def make_receipt(**overrides: Any) -> Receipt:
    fields: dict[str, Any] = {
        "receipt_id": UUID("33333333-3333-4333-8333-333333333333"),
        "delivery_id": UUID("11111111-1111-4111-8111-111111111111"),
        "unit": HEALTH_CENTRE,
        "receipted_at": NOW,
        "receipted_by": "SE2321000230-STAFF1",
        "channel": ReceiptChannel.HTTP,
    }
    fields.update(overrides)
    return Receipt.model_validate(fields)


def make_ops_alert(**overrides: Any) -> OpsAlert:
    fields: dict[str, Any] = {
        "alert_id": UUID("44444444-4444-4444-8444-444444444444"),
        "kind": "escalation.no_recipient",
        "severity": AlertSeverity.WARNING,
        "summary": "No on-call contact for SE2321000230-SYN3",
        "raised_at": NOW,
        "details": {"unit": HOME_CARE, "level": "2"},
    }
    fields.update(overrides)
    return OpsAlert.model_validate(fields)


INTERNAL_FACTORIES = [
    make_delivery,
    make_escalation,
    make_dead_letter,
    make_receipt,
    make_ops_alert,
]


@pytest.mark.parametrize("factory", INTERNAL_FACTORIES)
def test_internal_records_round_trip(factory: Any) -> None:
    """parse(serialise(m)) == m for every internal record."""
    record: BaseModel = factory()
    assert type(record).model_validate_json(record.model_dump_json()) == record


@pytest.mark.parametrize("factory", INTERNAL_FACTORIES)
def test_internal_records_ignore_unknown_fields(factory: Any) -> None:
    """A producer deployed first may add a field; older consumers ignore it."""
    record: BaseModel = factory()
    data = json.loads(record.model_dump_json())
    data["added_in_a_later_release"] = {"anything": 1}
    assert type(record).model_validate(data) == record


def test_delivery_still_forbids_unknown_envelope_fields() -> None:
    """The envelope inside a delivery keeps the external contract."""
    data = json.loads(make_delivery().model_dump_json())
    data["message"]["priority"] = "high"
    with pytest.raises(ValidationError) as caught:
        Delivery.model_validate(data)
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [
        ("extra_forbidden", ("message", "priority"))
    ]


def test_directory_version_is_a_strict_non_negative_int() -> None:
    """ "7" and -1 are not directory versions."""
    for value, error_type in (("7", "int_type"), (-1, "greater_than_equal"), (7.0, "int_type")):
        with pytest.raises(ValidationError) as caught:
            make_delivery(directory_version=value)
        assert [e["type"] for e in caught.value.errors()] == [error_type]


def test_escalation_has_no_patient_field() -> None:
    """An escalation leaves the secure network, so no field can hold a patient."""
    assert set(Escalation.model_fields) == {
        "escalation_id",
        "unit",
        "unit_name",
        "level",
        "target",
        "recipients",
        "delivery_ids",
        "count",
        "oldest_arrived_at",
        "oldest_due_at",
        "scanned_at",
        "link",
    }


def test_escalation_drops_a_patient_field_sent_by_mistake() -> None:
    """A producer that adds a patient field by mistake gets it dropped, not forwarded."""
    data = json.loads(make_escalation().model_dump_json())
    data["patient"] = PATIENT
    escalation = Escalation.model_validate(data)
    assert PATIENT not in escalation.model_dump_json()


def test_escalation_text_is_masked() -> None:
    """A personnummer in text that leaves the network is masked as a last defence."""
    escalation = make_escalation(
        unit_name="Hemsjukvården 19121212-1212", link="https://hub.example.org/p/191212121212"
    )
    assert (escalation.unit_name, escalation.link) == (
        f"Hemsjukvården {MASK}",
        f"https://hub.example.org/p/{MASK}",
    )


@pytest.mark.parametrize(
    ("overrides", "error_type"),
    [
        ({"level": 0}, "greater_than_equal"),
        ({"level": 4}, "less_than_equal"),
        ({"level": "2"}, "int_type"),
        ({"recipients": ()}, "empty"),
        ({"recipients": ("not an address",)}, "string_pattern_mismatch"),
        ({"recipients": ("ftp://example.org/x",)}, "string_pattern_mismatch"),
        ({"delivery_ids": ()}, "empty"),
        ({"delivery_ids": ("not-a-uuid",)}, "uuid_parsing"),
        ({"count": 0}, "greater_than_equal"),
        ({"link": "javascript:alert(1)"}, "string_pattern_mismatch"),
        ({"oldest_due_at": "2027-03-29T08:00:00"}, "timezone_aware"),
    ],
)
def test_escalation_rules(overrides: dict[str, Any], error_type: str) -> None:
    """Levels 1-3, real addresses, at least one delivery, a positive count, an http(s) link."""
    with pytest.raises(ValidationError) as caught:
        make_escalation(**overrides)
    assert [e["type"] for e in caught.value.errors()] == [error_type]


def test_escalation_count_covers_its_deliveries() -> None:
    """count is at least the number of deliveries the digest covers."""
    ids = (UUID(int=1), UUID(int=2), UUID(int=3))
    assert make_escalation(delivery_ids=ids, count=3).count == 3
    with pytest.raises(ValidationError) as caught:
        make_escalation(delivery_ids=ids, count=2)
    assert errors_of(caught.value) == [
        {"type": "count_too_small", "loc": (), "msg": "count must be at least len(delivery_ids)"}
    ]


def test_dead_letter_keeps_the_original_bytes_as_base64() -> None:
    """Any bytes survive the trip, carried as standard base64 in JSON."""
    record = make_dead_letter(original_value=bytes(range(256)) * 3)
    data = json.loads(record.model_dump_json())
    assert "\n" not in data["original_value"]
    assert DeadLetter.model_validate(data).original_value == bytes(range(256)) * 3


@pytest.mark.parametrize("value", ["not base64!", "YWJj\nZA==", 12])
def test_dead_letter_refuses_bad_base64(value: object) -> None:
    """Text that is not standard base64 is refused."""
    with pytest.raises(ValidationError) as caught:
        make_dead_letter(original_value=value)
    assert [e["type"] for e in caught.value.errors()] == ["base64"]


def test_dead_letter_detail_is_masked() -> None:
    """A personnummer that slipped into an error detail is masked."""
    assert make_dead_letter(detail="patient 191212121212 bad").detail == f"patient {MASK} bad"


def test_dead_letter_failures_in_order() -> None:
    """The last failure cannot precede the first."""
    with pytest.raises(ValidationError) as caught:
        make_dead_letter(last_failure_at=NOW - timedelta(seconds=1))
    assert [e["type"] for e in caught.value.errors()] == ["date_order"]


def test_ops_alert_masks_summary_and_details() -> None:
    """Ops alerts carry no patient numbers, however they were written."""
    alert = make_ops_alert(summary="bad 19121212-1212", details={"patient": "121212-1212"})
    assert (alert.summary, alert.details) == (f"bad {MASK}", {"patient": MASK})


@pytest.mark.parametrize("kind", ["Escalation", "", "a b", "x" * 65])
def test_ops_alert_kind_is_a_constant_name(kind: str) -> None:
    """kind is a lowercase dotted identifier so alerts can be counted."""
    with pytest.raises(ValidationError) as caught:
        make_ops_alert(kind=kind)
    assert [e["type"] for e in caught.value.errors()] == ["string_pattern_mismatch"]


def test_receipt_needs_hsa_ids() -> None:
    """Unit and staff are HSA-ids."""
    with pytest.raises(ValidationError) as caught:
        make_receipt(receipted_by="nurse anna")
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("hsa_id", ("receipted_by",))]


def test_cancellation_payload_names_the_cancelled_message() -> None:
    """The cancellation example cancels the general message example."""
    cancellation = load_example(MessageType.CANCELLATION).payload
    assert isinstance(cancellation, Cancellation)
    assert cancellation.cancelled_message_id == load_example(MessageType.GENERAL_MESSAGE).message_id
