"""Bytes on the wire: JSON bodies, with the schema version and the record type in headers.

Every record is UTF-8 JSON (the model's ``model_dump_json``) with two headers:

* ``schema-version``: the contract's major version (``topics.messages.SCHEMA_VERSION``). A
  version this hub does not know is refused with ``UnknownSchemaVersion``, never guessed at; so
  is a missing header.
* ``message-type``: for an ``Envelope`` its ``message_type`` (``admission_notice``, ...), which
  must equal the body's; for the internal records a fixed name (``RECORD_TYPES``: ``delivery``,
  ``receipt``, ``escalation``, ``dead_letter``, ``ops_alert``). An unknown or missing value is
  ``UnknownMessageType``.

Evolution rule: within a major version changes are additive only — a new optional field, a new
message type, a new enum value announced before anyone sends it. Removing or renaming a field,
changing its type or meaning, or tightening a rule makes a new major version, which consumers
learn to read before producers send it. External messages are ``extra="forbid"``, so the hub is
upgraded before senders use a new field; internal records ignore unknown fields, so their
producers may be deployed first. See ``docs/contract.md``.

Errors never carry input values: a ``ValidationFailed`` message lists field paths and pydantic
error types (``patient: personal_identity_number (check digit does not match)``), adding the
message only for the hub's own error types, whose texts interpolate nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final, TypeVar
from uuid import UUID

from pydantic import BaseModel, TypeAdapter, ValidationError

from hub.errors import (
    UndecodableMessage,
    UnknownMessageType,
    UnknownSchemaVersion,
    ValidationFailed,
)
from topics.catalogue import MessageType, UnitKind
from topics.identifiers import IDENTIFIER_ERROR_TYPES, mask_identity_numbers
from topics.messages import (
    MESSAGE_ERROR_TYPES,
    SCHEMA_VERSION,
    DeadLetter,
    Delivery,
    DeliveryRole,
    Envelope,
    Escalation,
    OpsAlert,
    Receipt,
    UtcDatetime,
)

__all__ = [
    "MESSAGE_TYPE_HEADER",
    "RECORD_TYPES",
    "SCHEMA_VERSION_HEADER",
    "SUPPORTED_SCHEMA_VERSIONS",
    "WireModel",
    "decode",
    "decode_delivery",
    "decode_envelope",
    "delivery_encoder",
    "describe_validation_error",
    "encode",
    "parse_json",
]

SCHEMA_VERSION_HEADER: Final = "schema-version"
MESSAGE_TYPE_HEADER: Final = "message-type"

#: Versions this hub reads. A new major version is added here once its models exist.
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({SCHEMA_VERSION})

WireModel = Envelope | Delivery | Receipt | Escalation | DeadLetter | OpsAlert
M = TypeVar("M", Envelope, Delivery, Receipt, Escalation, DeadLetter, OpsAlert)

#: The ``message-type`` header value of each internal record.
RECORD_TYPES: Final[Mapping[type[BaseModel], str]] = {
    Delivery: "delivery",
    Receipt: "receipt",
    Escalation: "escalation",
    DeadLetter: "dead_letter",
    OpsAlert: "ops_alert",
}

_MESSAGE_TYPE_VALUES: Final = frozenset(message_type.value for message_type in MessageType)
_KNOWN_TYPES: Final = _MESSAGE_TYPE_VALUES | frozenset(RECORD_TYPES.values())
_SAFE_MESSAGE_TYPES: Final = IDENTIFIER_ERROR_TYPES | MESSAGE_ERROR_TYPES


def encode(model: WireModel) -> tuple[bytes, dict[str, str]]:
    """The body and headers to publish ``model`` with."""
    if isinstance(model, Envelope):
        record_type = str(model.message_type)
    else:
        record_type = RECORD_TYPES[type(model)]
    headers = {SCHEMA_VERSION_HEADER: SCHEMA_VERSION, MESSAGE_TYPE_HEADER: record_type}
    return model.model_dump_json().encode("utf-8"), headers


_INSTANT_JSON: Final = TypeAdapter(UtcDatetime)


def delivery_encoder(
    routed_at: datetime, directory_version: int
) -> Callable[[str, UUID | str, str, UnitKind, DeliveryRole], tuple[bytes, dict[str, str]]]:
    """A fast encoder of `Delivery` records for one routing pass (the router's hot path).

    It splices the envelope's canonical JSON (``Envelope.model_dump_json()``) into the delivery
    instead of building and serialising a `Delivery` model per recipient: the bytes are exactly
    those of ``encode(Delivery(...))`` (pinned by a test), at a fraction of the cost.
    """
    instant = _INSTANT_JSON.dump_json(routed_at).decode()
    headers = {SCHEMA_VERSION_HEADER: SCHEMA_VERSION, MESSAGE_TYPE_HEADER: RECORD_TYPES[Delivery]}

    def encode_one(
        envelope_json: str,
        delivery_id: UUID | str,
        recipient: str,
        kind: UnitKind,
        role: DeliveryRole,
    ) -> tuple[bytes, dict[str, str]]:
        body = (
            f'{{"delivery_id":"{delivery_id}","message":{envelope_json},'
            f'"recipient":{json.dumps(recipient)},"recipient_kind":"{kind.value}",'
            f'"role":"{role.value}","routed_at":{instant},'
            f'"directory_version":{int(directory_version)}}}'
        )
        return body.encode("utf-8"), dict(headers)

    return encode_one


def decode_delivery(body: bytes, headers: Mapping[str, str | bytes]) -> tuple[Delivery, str]:
    """Decode a `Delivery` record, fully validated, and its envelope's canonical JSON.

    The tracker stores the envelope JSON with the delivery; it is serialised once here. (A
    faster path that skipped the envelope's Python validators for records in the router's exact
    form was measured at about 6 % of the decode and left out: the tracker checks what it reads.)
    """
    delivery = decode(Delivery, body, headers)
    return delivery, delivery.message.model_dump_json()


def decode_envelope(body: bytes, headers: Mapping[str, str | bytes]) -> Envelope:
    """Decode a care-episode event; see ``decode``."""
    return decode(Envelope, body, headers)


def decode(model_cls: type[M], body: bytes, headers: Mapping[str, str | bytes]) -> M:
    """Decode ``body`` as ``model_cls``, checking the headers first.

    Raises, in this order of checks: ``UnknownSchemaVersion`` (header missing or unknown),
    ``UnknownMessageType`` (header missing or not a known type), ``ValidationFailed`` (header
    names another record than ``model_cls``), ``UndecodableMessage`` (not UTF-8, not JSON,
    duplicate keys, NaN), ``ValidationFailed`` (the JSON breaks the contract, or an envelope's
    ``message_type`` differs from its header).
    """
    version = _header(headers, SCHEMA_VERSION_HEADER)
    if version is None:
        msg = f"{SCHEMA_VERSION_HEADER} header is missing"
        raise UnknownSchemaVersion(msg)
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        known = ", ".join(sorted(SUPPORTED_SCHEMA_VERSIONS))
        msg = f"{SCHEMA_VERSION_HEADER} header: not a version this hub reads (it reads {known})"
        raise UnknownSchemaVersion(msg)

    declared = _header(headers, MESSAGE_TYPE_HEADER)
    if declared is None:
        msg = f"{MESSAGE_TYPE_HEADER} header is missing"
        raise UnknownMessageType(msg)
    if declared not in _KNOWN_TYPES:
        msg = f"{MESSAGE_TYPE_HEADER} header: not a known message type"
        raise UnknownMessageType(msg)
    if model_cls is Envelope:
        if declared not in _MESSAGE_TYPE_VALUES:
            msg = f"{MESSAGE_TYPE_HEADER} header: names an internal record, not a message type"
            raise ValidationFailed(msg)
    elif declared != RECORD_TYPES[model_cls]:
        msg = f"{MESSAGE_TYPE_HEADER} header: expected {RECORD_TYPES[model_cls]}"
        raise ValidationFailed(msg)

    data = parse_json(body)
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(describe_validation_error(exc)) from exc
    if isinstance(model, Envelope) and model.message_type != declared:
        msg = f"message_type: does not match the {MESSAGE_TYPE_HEADER} header"
        raise ValidationFailed(msg)
    return model


def describe_validation_error(exc: ValidationError) -> str:
    """A one-line account of a pydantic error: field paths and error types, no input values.

    The discriminator tag pydantic puts after ``payload`` in a path is dropped, so paths read
    ``payload.ward``. Any personnummer that reached a path (a dict key) is masked.
    """
    parts: list[str] = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        path = _format_loc(error["loc"])
        part = f"{path}: {error['type']}"
        if error["type"] in _SAFE_MESSAGE_TYPES:
            part += f" ({error['msg']})"
        parts.append(part)
    return mask_identity_numbers(f"invalid {exc.title}: " + "; ".join(parts))


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    previous: int | str | None = None
    for segment in loc:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif not (previous == "payload" and segment in _MESSAGE_TYPE_VALUES):
            text += f".{segment}" if text else segment
        previous = segment
    return text or "(body)"


def _header(headers: Mapping[str, str | bytes], name: str) -> str | None:
    raw = headers.get(name)
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{name} header: not UTF-8"
        raise UndecodableMessage(msg) from exc


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            # A second "patient" must not silently win over the first.
            msg = "duplicate key in a JSON object"
            raise _DuplicateKeyError(msg)
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def parse_json(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = "body: not UTF-8"
        raise UndecodableMessage(msg) from exc
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except _DuplicateKeyError as exc:
        msg = "body: duplicate key in a JSON object"
        raise UndecodableMessage(msg) from exc
    except json.JSONDecodeError as exc:
        msg = f"body: not JSON (line {exc.lineno}, column {exc.colno})"
        raise UndecodableMessage(msg) from exc
    except (ValueError, RecursionError) as exc:
        # NaN/Infinity, integers beyond Python's digit limit, absurd nesting.
        msg = "body: not JSON the hub accepts (NaN, huge number or too deep)"
        raise UndecodableMessage(msg) from exc
