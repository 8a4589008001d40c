"""The message contract: the envelope every care-episode event travels in, and every payload.

How the payload class is chosen
-------------------------------
Each payload class carries a ``kind`` field, a ``Literal`` equal to its ``MessageType`` value
(with that value as its default, so Python code need not spell it). ``Envelope.payload`` is a
pydantic *discriminated union* on ``kind``: pydantic picks the class from the tag without trying
the others, reports errors under the one class that applies, and the JSON schema says
``oneOf`` with a discriminator mapping. A field validator on ``payload`` then checks that
``payload.kind`` equals the envelope's ``message_type``; a mismatch is an error at ``payload``
(error type ``payload_type_mismatch``). The tag is repeated on purpose: a payload read on its own
still says what it is.

Models of messages that come from outside the hub (``Envelope`` and the payloads) are
``frozen=True, extra="forbid"``: an unknown field is an error, never silently dropped. Models of
the hub's internal topics (``Delivery``, ``Receipt``, ``Escalation``, ``DeadLetter``,
``OpsAlert``) use ``extra="ignore"`` so that a producer may be deployed with a new optional
field before its consumers. Every model sets ``hide_input_in_errors`` so that the text of a
``ValidationError`` never contains an input value (a personnummer, say).

Timestamps are ``AwareDatetime``: a naive datetime is refused, numbers (Unix times) are refused,
and every timestamp is normalised to UTC. Calendar dates (``date``) are local dates in
Europe/Stockholm as the sender means them. Free text (``FreeText``, at most 4000 characters) is
stored exactly as given; whoever shows it (e-mail, dashboard) must escape it. Text on internal
topics that may leave the secure network (escalations, ops alerts, dead-letter details) passes
through ``mask_identity_numbers`` on validation, as a last line of defence.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from topics.catalogue import MessageType, UnitKind
from topics.deadletter import DeadLetterReason
from topics.identifiers import (
    ContractRule,
    EpisodeId,
    HsaId,
    MunicipalityCode,
    PersonalIdentityNumber,
    mask_identity_numbers,
)

__all__ = [
    "EPISODELESS_MESSAGE_TYPES",
    "FREE_TEXT_MAX_LENGTH",
    "MESSAGE_ERROR_TYPES",
    "PAYLOAD_CLASSES",
    "SCHEMA_VERSION",
    "AdmissionNotice",
    "AlertSeverity",
    "CalendarDate",
    "Cancellation",
    "CareContactAppointed",
    "CareRequest",
    "DeadLetter",
    "Delivery",
    "DeliveryRole",
    "DischargeDateChanged",
    "DischargeNotice",
    "Envelope",
    "EpisodeUpdated",
    "Escalation",
    "EscalationTarget",
    "FreeText",
    "GeneralMessage",
    "MessageOutsideEpisode",
    "OpsAlert",
    "Payload",
    "PayloadModel",
    "PlanningAction",
    "PlanningDocument",
    "ReadyForDischarge",
    "ReadyForDischargeRetracted",
    "Receipt",
    "ReceiptChannel",
    "SchemaVersion",
    "ShortText",
    "SipDeclined",
    "SipInvitation",
    "UtcDatetime",
]

#: The major version of this contract; it travels in the ``schema-version`` header and in
#: ``Envelope.schema_version``. Additive changes keep it; anything else makes a new one.
SCHEMA_VERSION: Final = "1"
SchemaVersion = Literal["1"]

FREE_TEXT_MAX_LENGTH: Final = 4000
_SHORT_TEXT_MAX_LENGTH: Final = 200
_MAX_RECIPIENTS: Final = 20
_STOCKHOLM: Final = ZoneInfo("Europe/Stockholm")

#: Message types that need no ``episode_id``: they are not tied to an inpatient stay.
EPISODELESS_MESSAGE_TYPES: Final = frozenset(
    {MessageType.MESSAGE_OUTSIDE_EPISODE, MessageType.CARE_REQUEST}
)


_EXTERNAL = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
_INTERNAL = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

_TIMESTAMP_TYPE: Final = ContractRule(
    "timestamp_type", "must be an ISO 8601 date-time with a UTC offset"
)
_DATE_TYPE: Final = ContractRule("date_type", "must be an ISO 8601 calendar date YYYY-MM-DD")
_BASE64: Final = ContractRule("base64", "must be bytes or standard base64 text")
_UNIQUE_UNITS: Final = ContractRule("unique_items", "must not name the same unit twice")
_NO_UNITS: Final = ContractRule("empty", "must name at least one unit")
_NO_ADDRESSES: Final = ContractRule("empty", "must name at least one address")
_NO_DELIVERIES: Final = ContractRule("empty", "must name at least one delivery")
_DISCHARGE_BEFORE_ADMISSION: Final = ContractRule(
    "date_order", "expected_discharge_date must not be before the admission date"
)
_NOTHING_UPDATED: Final = ContractRule(
    "nothing_updated",
    "at least one of listed_health_centre, home_municipality, expected_discharge_date must be set",
)
_EPISODE_REQUIRED: Final = ContractRule("episode_id_required", "is required for this message_type")
_PAYLOAD_MISMATCH: Final = ContractRule(
    "payload_type_mismatch", "payload kind does not match message_type"
)
_SELF_CANCELLATION: Final = ContractRule(
    "self_cancellation", "a message cannot cancel itself (cancelled_message_id)"
)
_COUNT_TOO_SMALL: Final = ContractRule(
    "count_too_small", "count must be at least len(delivery_ids)"
)
_FAILURES_OUT_OF_ORDER: Final = ContractRule(
    "date_order", "last_failure_at must not be before first_failure_at"
)

#: Custom pydantic error types raised in this module; their messages never contain input.
MESSAGE_ERROR_TYPES: Final = frozenset(
    rule.error_type
    for rule in (
        _TIMESTAMP_TYPE,
        _DATE_TYPE,
        _BASE64,
        _UNIQUE_UNITS,
        _NO_UNITS,
        _NO_ADDRESSES,
        _NO_DELIVERIES,
        _DISCHARGE_BEFORE_ADMISSION,
        _NOTHING_UPDATED,
        _EPISODE_REQUIRED,
        _PAYLOAD_MISMATCH,
        _SELF_CANCELLATION,
        _COUNT_TOO_SMALL,
        _FAILURES_OUT_OF_ORDER,
    )
)


# --- field types ---------------------------------------------------------------------------


def _timestamp_input(value: object) -> object:
    # pydantic's lax mode would read a number as a Unix time; on this contract that is a bug.
    if isinstance(value, str | datetime):
        return value
    raise _TIMESTAMP_TYPE.error()


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _date_input(value: object) -> object:
    # pydantic's lax mode would also take a midnight datetime or a Unix time as a date.
    if isinstance(value, str) and _ISO_DATE.fullmatch(value) is not None:
        return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise _DATE_TYPE.error()


#: An instant: timezone-aware on input (naive is refused), normalised to UTC.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_timestamp_input), AfterValidator(_to_utc)]

#: A calendar date (a local date in Europe/Stockholm), ``YYYY-MM-DD`` on the wire.
CalendarDate = Annotated[date, BeforeValidator(_date_input)]

#: Free text written by staff, at most 4000 characters, stored exactly as given. It is
#: untrusted: escape it wherever it is shown, and never log it.
FreeText = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=FREE_TEXT_MAX_LENGTH)
]

#: A short label (a role, a unit name), at most 200 characters.
ShortText = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=_SHORT_TEXT_MAX_LENGTH)
]

#: Text that may leave the secure network: any personnummer in it is masked on validation.
_RedactedShortText = Annotated[ShortText, AfterValidator(mask_identity_numbers)]


# Lists are tuples (immutable, hashable). Their "at least one" rule is an after-validator, not
# ``min_length``: for tuples pydantic adds a spurious too_short error when an item is invalid.
_AT_LEAST_ONE: Final = {"minItems": 1}


def _distinct_units(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise _NO_UNITS.error()
    if len(set(values)) != len(values):
        raise _UNIQUE_UNITS.error()
    return values


def _some_addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise _NO_ADDRESSES.error()
    return values


def _some_deliveries(values: tuple[UUID, ...]) -> tuple[UUID, ...]:
    if not values:
        raise _NO_DELIVERIES.error()
    return values


#: Recipient units of a free-text message: 1-20 distinct HSA-ids.
_Recipients = Annotated[
    tuple[HsaId, ...],
    Field(max_length=_MAX_RECIPIENTS, json_schema_extra=_AT_LEAST_ONE),
    AfterValidator(_distinct_units),
]

_StrictNonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
_StrictPositiveInt = Annotated[int, Strict(), Field(ge=1)]


# --- payloads --------------------------------------------------------------------------------


def _kind_required_in_schema(schema: dict[str, Any]) -> None:
    # ``kind`` has a default for Python callers, but the discriminated union needs it on the wire.
    required = schema.setdefault("required", [])
    if "kind" not in required:
        required.insert(0, "kind")


class _Payload(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra=_kind_required_in_schema,
    )


class AdmissionNotice(_Payload):
    """The ward tells the patient's future carers that a stay began (*inskrivningsmeddelande*).

    ``expected_discharge_date`` (*beräknat utskrivningsdatum*) may not precede the admission's
    local date in Europe/Stockholm.
    """

    kind: Literal["admission_notice"] = "admission_notice"
    ward: HsaId
    admitted_at: UtcDatetime
    expected_discharge_date: CalendarDate
    listed_health_centre: HsaId
    home_municipality: MunicipalityCode

    @model_validator(mode="after")
    def _discharge_not_before_admission(self) -> AdmissionNotice:
        if self.expected_discharge_date < self.admitted_at.astimezone(_STOCKHOLM).date():
            raise _DISCHARGE_BEFORE_ADMISSION.error()
        return self


class PlanningAction(StrEnum):
    """Whether a planning document is new or a revision."""

    CREATED = "created"
    UPDATED = "updated"


class PlanningDocument(_Payload):
    """The ward's account of the patient's condition and needs (*planeringsunderlag*).

    ``needs_more_information`` is *kompletterande information behövs*.
    """

    kind: Literal["planning_document"] = "planning_document"
    action: PlanningAction
    needs_more_information: Annotated[bool, Strict()]
    summary: FreeText


class DischargeDateChanged(_Payload):
    """The expected discharge date moved (*framflyttning*); recipients must re-plan."""

    kind: Literal["discharge_date_changed"] = "discharge_date_changed"
    new_expected_discharge_date: CalendarDate
    reason: FreeText


class GeneralMessage(_Payload):
    """Free text between the actors of an episode during the stay (*meddelande*)."""

    kind: Literal["general_message"] = "general_message"
    text: FreeText
    recipients: _Recipients


class ReadyForDischarge(_Payload):
    """The physician assessed the patient ready for discharge (*utskrivningsklar*).

    ``assessed_at`` starts the payment-liability clock (*betalningsansvar*).
    """

    kind: Literal["ready_for_discharge"] = "ready_for_discharge"
    assessed_at: UtcDatetime


class ReadyForDischargeRetracted(_Payload):
    """A *utskrivningsklar* assessment was withdrawn; the liability clock stops."""

    kind: Literal["ready_for_discharge_retracted"] = "ready_for_discharge_retracted"
    retracted_at: UtcDatetime
    reason: FreeText


class CareContactAppointed(_Payload):
    """Primary care named the patient's care contact (*fast vårdkontakt utsedd*)."""

    kind: Literal["care_contact_appointed"] = "care_contact_appointed"
    contact_role: ShortText
    contact_unit: HsaId


class SipInvitation(_Payload):
    """An invitation to a coordinated individual plan meeting (*kallelse till SIP*).

    ``meeting_at`` is the proposed meeting time.
    """

    kind: Literal["sip_invitation"] = "sip_invitation"
    meeting_at: UtcDatetime
    invited: _Recipients


class SipDeclined(_Payload):
    """The patient declined a SIP (*patienten avböjer SIP*); satisfies the SIP condition."""

    kind: Literal["sip_declined"] = "sip_declined"
    declined_at: UtcDatetime


class DischargeNotice(_Payload):
    """The patient has left hospital (*utskrivningsmeddelande*)."""

    kind: Literal["discharge_notice"] = "discharge_notice"
    discharged_at: UtcDatetime


class MessageOutsideEpisode(_Payload):
    """Primary care and home health care writing with no hospital stay (*meddelande utanför
    vårdtillfälle*)."""

    kind: Literal["message_outside_episode"] = "message_outside_episode"
    text: FreeText
    recipients: _Recipients


class CareRequest(_Payload):
    """A region unit asks municipal home health care to enrol the patient (*vårdbegäran*)."""

    kind: Literal["care_request"] = "care_request"
    text: FreeText
    recipient: HsaId
    requested_start: CalendarDate


class EpisodeUpdated(_Payload):
    """Facts of the stay changed (HL7 A08): the fields that are set replace the old values.

    At least one field must be set.
    """

    kind: Literal["episode_updated"] = "episode_updated"
    listed_health_centre: HsaId | None = None
    home_municipality: MunicipalityCode | None = None
    expected_discharge_date: CalendarDate | None = None

    @model_validator(mode="after")
    def _something_changed(self) -> EpisodeUpdated:
        if (
            self.listed_health_centre is None
            and self.home_municipality is None
            and self.expected_discharge_date is None
        ):
            raise _NOTHING_UPDATED.error()
        return self


class Cancellation(_Payload):
    """The sender withdraws one of its earlier messages (*makulering*): sent in error."""

    kind: Literal["cancellation"] = "cancellation"
    cancelled_message_id: UUID
    reason: FreeText


#: Every payload class, as a union (use it in annotations and ``match`` statements).
PayloadModel = (
    AdmissionNotice
    | PlanningDocument
    | DischargeDateChanged
    | GeneralMessage
    | ReadyForDischarge
    | ReadyForDischargeRetracted
    | CareContactAppointed
    | SipInvitation
    | SipDeclined
    | DischargeNotice
    | MessageOutsideEpisode
    | CareRequest
    | EpisodeUpdated
    | Cancellation
)

#: The payload union discriminated on ``kind`` (the annotation of ``Envelope.payload``).
Payload = Annotated[PayloadModel, Field(discriminator="kind")]

_PAYLOAD_CLASS_LIST: Final[tuple[type[PayloadModel], ...]] = (
    AdmissionNotice,
    PlanningDocument,
    DischargeDateChanged,
    GeneralMessage,
    ReadyForDischarge,
    ReadyForDischargeRetracted,
    CareContactAppointed,
    SipInvitation,
    SipDeclined,
    DischargeNotice,
    MessageOutsideEpisode,
    CareRequest,
    EpisodeUpdated,
    Cancellation,
)

#: The payload class of each message type.
PAYLOAD_CLASSES: Final[Mapping[MessageType, type[PayloadModel]]] = MappingProxyType(
    {MessageType(cls.model_fields["kind"].default): cls for cls in _PAYLOAD_CLASS_LIST}
)


# --- the envelope ----------------------------------------------------------------------------


class Envelope(BaseModel):
    """One care-episode event as it enters the hub and travels on its topics.

    ``message_id`` is the idempotency key: the same id twice is the same message.
    ``episode_id`` names the inpatient stay (*vårdtillfälle*) and is required except for the
    ``EPISODELESS_MESSAGE_TYPES``. ``occurred_at`` is when it happened in the sending system,
    ``sent_at`` when the sender sent it. ``correlation_id`` ties a conversation together;
    ``causation_id`` is the ``message_id`` of the message this one answers. ``patient`` is
    normalised to ``YYYYMMDD-NNNC`` (see ``PersonalIdentityNumber`` for the 10-digit form).
    """

    model_config = _EXTERNAL

    message_id: UUID
    message_type: MessageType
    schema_version: SchemaVersion = SCHEMA_VERSION
    episode_id: EpisodeId | None = Field(default=None, validate_default=True)
    sender: HsaId
    patient: PersonalIdentityNumber
    occurred_at: UtcDatetime
    sent_at: UtcDatetime
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    payload: Payload

    @field_validator("episode_id", mode="after")
    @classmethod
    def _episode_required(cls, value: str | None, info: ValidationInfo) -> str | None:
        message_type = info.data.get("message_type")
        if (
            value is None
            and message_type is not None
            and message_type not in EPISODELESS_MESSAGE_TYPES
        ):
            raise _EPISODE_REQUIRED.error()
        return value

    @field_validator("payload", mode="after")
    @classmethod
    def _payload_matches_type(cls, value: PayloadModel, info: ValidationInfo) -> PayloadModel:
        message_type = info.data.get("message_type")
        # When message_type itself is invalid pydantic already reports it; say nothing more.
        if message_type is not None and value.kind != message_type:
            raise _PAYLOAD_MISMATCH.error()
        if isinstance(value, Cancellation) and value.cancelled_message_id == info.data.get(
            "message_id"
        ):
            raise _SELF_CANCELLATION.error()
        return value


# --- internal topics ---------------------------------------------------------------------------


class DeliveryRole(StrEnum):
    """Why a unit gets a delivery."""

    RECIPIENT = "recipient"  # a current recipient of the message
    LEFT_RECIPIENT_SET = "left_recipient_set"  # was a recipient; told it no longer is
    HISTORY = "history"  # a new recipient catching up on the episode's earlier messages


class Delivery(BaseModel):
    """One message routed to one recipient unit; the thing that must be receipted.

    ``delivery_id`` is ``topics.ids.delivery_id_for(message.message_id, recipient)``.
    ``directory_version`` is the version of the unit directory the router used.
    """

    model_config = _INTERNAL

    delivery_id: UUID
    message: Envelope
    recipient: HsaId
    recipient_kind: UnitKind
    role: DeliveryRole
    routed_at: UtcDatetime
    directory_version: _StrictNonNegativeInt


class ReceiptChannel(StrEnum):
    """How a receipt reached the hub."""

    KAFKA = "kafka"
    HTTP = "http"
    LINK = "link"  # the sign-in link in a notification


class Receipt(BaseModel):
    """A unit's confirmation that it has received a delivery and started planning (*kvittens*).

    ``receipted_by`` is the HSA-id of the staff member who receipted.
    """

    model_config = _INTERNAL

    receipt_id: UUID
    delivery_id: UUID
    unit: HsaId
    receipted_at: UtcDatetime
    receipted_by: HsaId
    channel: ReceiptChannel


class EscalationTarget(StrEnum):
    """Who an escalation level goes to."""

    UNIT_MAILBOX = "unit_mailbox"  # the unit's functional mailbox (reminder)
    ON_CALL = "on_call"  # on-call staff (*jour / beredskap*)
    MANAGER = "manager"  # the unit manager (*enhetschef*) or regional operations


_EMAIL_OR_URL: Final = r"^(?:[^@\s]+@[^@\s]+\.[^@\s]+|https?://[^\s]+)$"

#: An e-mail address or a webhook URL (http/https) that a digest is sent to.
_ContactAddress = Annotated[
    str, Strict(), StringConstraints(min_length=3, max_length=2048, pattern=_EMAIL_OR_URL)
]
_Link = Annotated[
    str,
    Strict(),
    StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$"),
    AfterValidator(mask_identity_numbers),
]


class Escalation(BaseModel):
    """A digest of one unit's overdue, unreceipted deliveries at one escalation level.

    It leaves the secure network (e-mail, SMS, webhooks), so it has no patient field at all:
    only the unit, counts, ages and a link to sign in. ``delivery_ids`` are deliveries that
    reach ``level`` in this scan: all of them, or the first 1,000 of a larger digest, so the
    record stays far below Kafka's size limit; ``count`` is the number of overdue deliveries the
    digest reports, at least ``len(delivery_ids)``. ``escalation_id`` is
    ``topics.ids.escalation_id_for(unit, level, <every delivery of the digest>)``; the hub's
    store keeps them all. ``recipients`` must not be empty: when nobody can be reached, raise an
    ops alert instead.
    """

    model_config = _INTERNAL

    escalation_id: UUID
    unit: HsaId
    unit_name: _RedactedShortText
    level: Annotated[int, Strict(), Field(ge=1, le=3)]
    target: EscalationTarget
    recipients: Annotated[
        tuple[_ContactAddress, ...],
        Field(max_length=50, json_schema_extra=_AT_LEAST_ONE),
        AfterValidator(_some_addresses),
    ]
    delivery_ids: Annotated[
        tuple[UUID, ...], Field(json_schema_extra=_AT_LEAST_ONE), AfterValidator(_some_deliveries)
    ]
    count: _StrictPositiveInt
    oldest_arrived_at: UtcDatetime
    oldest_due_at: UtcDatetime
    scanned_at: UtcDatetime
    link: _Link

    @model_validator(mode="after")
    def _count_covers_deliveries(self) -> Escalation:
        if self.count < len(set(self.delivery_ids)):
            raise _COUNT_TOO_SMALL.error()
        return self


def _base64_input(value: object) -> object:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise _BASE64.error()


def _base64_output(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


#: Raw bytes, carried as standard base64 (RFC 4648, with padding, no line breaks) in JSON.
_Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_base64_input),
    PlainSerializer(_base64_output, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]

_TopicName = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
]
_Detail = Annotated[
    str,
    Strict(),
    StringConstraints(max_length=FREE_TEXT_MAX_LENGTH),
    AfterValidator(mask_identity_numbers),
]


class DeadLetter(BaseModel):
    """A message the hub refused, with the original bytes and why (*the dead-letter record*).

    ``original_value`` keeps the exact bytes read (base64 in JSON); ``stage`` names the step that
    refused it (e.g. ``router.decode``); ``error_class`` the hub error's class name; ``detail``
    the error message (already free of patient data; masked again here).
    """

    model_config = _INTERNAL

    original_value: _Base64Bytes
    original_headers: dict[Annotated[str, Strict()], Annotated[str, Strict()]]
    reason: DeadLetterReason
    stage: ShortText
    error_class: ShortText
    detail: _Detail
    attempts: _StrictPositiveInt
    first_failure_at: UtcDatetime
    last_failure_at: UtcDatetime
    origin_topic: _TopicName
    origin_partition: _StrictNonNegativeInt
    origin_offset: _StrictNonNegativeInt

    @model_validator(mode="after")
    def _failures_in_order(self) -> DeadLetter:
        if self.last_failure_at < self.first_failure_at:
            raise _FAILURES_OUT_OF_ORDER.error()
        return self


class AlertSeverity(StrEnum):
    """How urgent an ops alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


_AlertKind = Annotated[str, Strict(), StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
_DetailKey = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=64)]
_DetailValue = Annotated[
    str, Strict(), StringConstraints(max_length=1000), AfterValidator(mask_identity_numbers)
]


class OpsAlert(BaseModel):
    """Something operations staff must look at (a unit nobody can reach, a dead-letter spike).

    ``kind`` is a constant dotted name (``escalation.no_recipient``) so alerts can be counted;
    ``summary`` and ``details`` carry no patient data (any personnummer is masked).
    """

    model_config = _INTERNAL

    alert_id: UUID
    kind: _AlertKind
    severity: AlertSeverity
    summary: Annotated[
        str,
        Strict(),
        StringConstraints(min_length=1, max_length=500),
        AfterValidator(mask_identity_numbers),
    ]
    raised_at: UtcDatetime
    details: Annotated[dict[_DetailKey, _DetailValue], Field(max_length=50)] = Field(
        default_factory=dict
    )
