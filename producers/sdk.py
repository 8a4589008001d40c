"""The Python SDK: how a journal system that can call Python puts messages into the hub.

``HubClient`` publishes validated envelopes to the care-episode topic through the hub's one
broker factory (``hub.broker.build_broker``: ``acks="all"``, idempotent producer) and returns
only once the broker has acknowledged the record, with where it landed (``PublishReceipt``).
The HTTP gateway and ``hub send`` publish through it too, so every intake path shares the same
key, headers and retry rule.

* **Key**: ``episode_id`` (so one stay's messages stay in order), or ``message_id`` for the
  messages that belong to no stay.
* **Bytes**: ``topics.codec.encode`` — JSON body plus ``schema-version``/``message-type``
  headers. FastStream's ``correlation_id`` header is set to the ``message_id``.
* **Errors**: input that breaks the contract raises ``InvalidEnvelope`` (a ``ValidationFailed``
  listing field paths and error types, never values) before anything is sent. A broker that
  does not answer raises ``BrokerUnavailable`` (a ``TransientError``) after ``attempts``
  tries with doubling back-off; a broker that refuses the record for good (too large, not
  authorised) raises ``PublishRefused``. aiokafka's errors never leave this module.
* **Duplicates**: a retry after a timed-out attempt may publish the record twice (the first
  send can still complete after we gave up on it). That is the at-least-once half of the
  design; consumers drop the copy by ``message_id``.

A client connects lazily: ``start()`` connects eagerly and fails fast, but a client that could
not connect (or was never started) connects on its next ``publish``; so a gateway may start
before Kafka does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, Final, TypedDict, TypeVar, Unpack
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from hub.broker import build_broker
from hub.clock import Clock, SystemClock
from hub.errors import HubError, TransientError, ValidationFailed
from hub.logs import get_logger
from hub.settings import Settings
from topics.catalogue import MessageType
from topics.codec import describe_validation_error, encode, parse_json
from topics.identifiers import IDENTIFIER_ERROR_TYPES, TODAY_CONTEXT_KEY, mask_identity_numbers
from topics.messages import MESSAGE_ERROR_TYPES, Envelope, PayloadModel, PlanningAction
from topics.topics import TopicName

__all__ = [
    "BrokerUnavailable",
    "FieldError",
    "HubClient",
    "InvalidEnvelope",
    "MessageMeta",
    "PublishReceipt",
    "PublishRefused",
    "field_errors",
    "parse_envelope",
    "validate_envelope",
]

_STOCKHOLM: Final = ZoneInfo("Europe/Stockholm")
_LOG = get_logger(__name__)
T = TypeVar("T")


# --- errors ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: where (``payload.ward``), which rule (pydantic's error type), and a
    message that never contains the input."""

    field: str
    type: str
    message: str


class InvalidEnvelope(ValidationFailed):
    """The message breaks the contract; ``errors`` lists each field and rule, never a value."""

    def __init__(self, message: str, errors: Sequence[FieldError]) -> None:
        super().__init__(message)
        self.errors: tuple[FieldError, ...] = tuple(errors)

    @classmethod
    def from_validation_error(cls, exc: ValidationError) -> InvalidEnvelope:
        """Wrap a pydantic error, keeping only paths, types and value-free messages."""
        return cls(describe_validation_error(exc), field_errors(exc))


class BrokerUnavailable(TransientError):
    """Kafka did not answer within the bounded retries; try again later."""


class PublishRefused(HubError):
    """Kafka answered and refused the record for good (too large, not authorised, ...)."""


# Messages of pydantic's own error types whose templates interpolate only the schema (limits,
# allowed values), never the input. Anything else gets a generic message: pydantic's text for
# e.g. ``uuid_parsing`` quotes the offending character, for ``union_tag_invalid`` the tag sent.
_SAFE_PYDANTIC_TYPES: Final = frozenset(
    {
        "missing",
        "extra_forbidden",
        "string_type",
        "string_too_short",
        "string_too_long",
        "string_pattern_mismatch",
        "literal_error",
        "enum",
        "bool_type",
        "int_type",
        "int_parsing",
        "too_short",
        "too_long",
        "tuple_type",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "union_tag_not_found",
        "timezone_aware",
        "datetime_type",
        "datetime_parsing",
        "datetime_from_date_parsing",
        "date_type",
        "date_parsing",
        "uuid_type",
        "greater_than_equal",
        "less_than_equal",
    }
)
_SAFE_MESSAGE_TYPES: Final = _SAFE_PYDANTIC_TYPES | IDENTIFIER_ERROR_TYPES | MESSAGE_ERROR_TYPES
_GENERIC_MESSAGE: Final = "invalid value"
_MAX_SEGMENT_LENGTH: Final = 100
_MESSAGE_TYPE_VALUES: Final = frozenset(message_type.value for message_type in MessageType)


def field_errors(
    errors: ValidationError | Iterable[Mapping[str, Any]],
) -> tuple[FieldError, ...]:
    """The errors of a pydantic validation (or its ``errors()`` list), free of input.

    Paths read like ``topics.codec``'s (``payload.ward``, ``payload.recipients[0]``): the
    discriminator tag pydantic inserts after ``payload`` is dropped. Path segments that came
    from the input (an unknown key) are cut to 100 characters and any personnummer in them is
    masked.
    """
    details: Iterable[Mapping[str, Any]] = (
        errors.errors(include_input=False, include_url=False, include_context=False)
        if isinstance(errors, ValidationError)
        else errors
    )
    result: list[FieldError] = []
    for error in details:
        kind = str(error["type"])
        message = str(error["msg"]) if kind in _SAFE_MESSAGE_TYPES else _GENERIC_MESSAGE
        result.append(FieldError(_path(tuple(error["loc"])), kind, message))
    return tuple(result)


def _path(loc: tuple[object, ...]) -> str:
    text = ""
    previous: object = None
    for segment in loc:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif not (previous == "payload" and segment in _MESSAGE_TYPE_VALUES):
            name = mask_identity_numbers(str(segment)[:_MAX_SEGMENT_LENGTH])
            text += f".{name}" if text else name
        previous = segment
    return text or "(body)"


def validate_envelope(data: object, *, today: date | None = None) -> Envelope:
    """Validate decoded JSON (or Python values) as an ``Envelope``.

    ``today`` (a Stockholm calendar date) lets 10-digit patient numbers resolve their century;
    without it only the 12-digit form is accepted, as on the wire. Raises ``InvalidEnvelope``.
    """
    context = {TODAY_CONTEXT_KEY: today} if today is not None else None
    try:
        return Envelope.model_validate(data, context=context)
    except ValidationError as exc:
        raise InvalidEnvelope.from_validation_error(exc) from exc


def parse_envelope(body: bytes) -> Envelope:
    """Read one envelope from JSON bytes, as strictly as the hub's consumers read the topic.

    Raises ``UndecodableMessage`` (not UTF-8, not JSON, duplicate keys, NaN, nesting too deep)
    or ``InvalidEnvelope``.
    """
    # The codec's reader, so an envelope the gateway accepts is one the router can decode.
    return validate_envelope(parse_json(body))


# --- the client ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishReceipt:
    """Where the broker stored a message, once it acknowledged it."""

    topic: str
    partition: int
    offset: int
    message_id: UUID


class MessageMeta(TypedDict, total=False):
    """Optional envelope fields every typed method takes.

    ``occurred_at`` defaults to the send time; ``message_id`` to a new UUID4 (pass your own to
    make a resend idempotent).
    """

    occurred_at: datetime
    message_id: UUID
    correlation_id: UUID
    causation_id: UUID


class HubClient:
    """An async client that publishes envelopes to the hub and waits for the broker's ack.

    Use it as ``async with HubClient(settings) as hub: await hub.admission_notice(...)``.
    Built from ``settings`` it owns its FastStream broker and stops it on exit; given a
    ``broker`` (an app that already has one) it connects it if needed and leaves stopping it to
    its owner. ``clock`` stamps ``sent_at``. Each broker round trip gets ``attempts`` tries of
    at most ``attempt_timeout_s`` each (default: the Kafka request timeout), ``backoff_s`` apart,
    doubling.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        broker: KafkaBroker | None = None,
        clock: Clock | None = None,
        attempts: int = 3,
        backoff_s: float = 0.2,
        attempt_timeout_s: float | None = None,
    ) -> None:
        if attempts < 1:
            msg = "attempts must be at least 1"
            raise ValueError(msg)
        if backoff_s < 0:
            msg = "backoff_s must not be negative"
            raise ValueError(msg)
        self._settings = settings
        self._owns_broker = broker is None
        self._broker = broker if broker is not None else build_broker(settings)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._attempt_timeout_s = (
            attempt_timeout_s
            if attempt_timeout_s is not None
            else settings.kafka.request_timeout_ms / 1000
        )
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self.topic: Final = settings.topic(TopicName.CARE_EPISODE_EVENTS)

    # --- lifecycle

    async def __aenter__(self) -> HubClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect to Kafka now (bounded retries); raises ``BrokerUnavailable``. Repeatable."""
        await self._retrying("connect", self._connect)

    async def stop(self) -> None:
        """Flush and disconnect the broker this client owns. Repeatable."""
        async with self._connect_lock:
            if self._owns_broker:
                # Also after a half-finished connect: stopping an unconnected broker is a no-op.
                await self._broker.stop()
            self._connected = False

    async def is_reachable(self, timeout_s: float) -> bool:
        """Whether Kafka answers a metadata request within ``timeout_s`` (one try, no retry)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connect()
                return await self._broker.ping(timeout_s)
        except (KafkaError, OSError, TimeoutError):
            return False

    async def _connect(self) -> None:
        if self._connected:
            return
        async with self._connect_lock:
            if self._connected:
                return
            await self._probe()
            await self._broker.connect()
            self._connected = True

    async def _probe(self) -> None:
        # FastStream's connect builds an aiokafka producer and, when bootstrapping fails, drops
        # it unclosed (a ResourceWarning at garbage collection). A throwaway client that we close
        # ourselves finds an unreachable broker first.
        probe = AIOKafkaClient(
            bootstrap_servers=self._settings.kafka.bootstrap_servers,
            request_timeout_ms=self._settings.kafka.request_timeout_ms,
            client_id=f"{self._settings.kafka.client_id}-probe",
        )
        try:
            await probe.bootstrap()
        finally:
            await probe.close()

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        delay = self._backoff_s
        last: BaseException | None = None
        for number in range(1, self._attempts + 1):
            try:
                async with asyncio.timeout(self._attempt_timeout_s):
                    return await attempt()
            except KafkaError as exc:
                if not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
                    msg = f"{what}: Kafka refused the request ({type(exc).__name__})"
                    raise PublishRefused(msg) from exc
                last = exc
            except (OSError, TimeoutError) as exc:
                last = exc
            _LOG.warning(
                "sdk.attempt_failed",
                operation=what,
                attempt=number,
                attempts=self._attempts,
                error=type(last).__name__,
            )
            if number < self._attempts:
                await asyncio.sleep(delay)
                delay *= 2
        msg = (
            f"{what}: Kafka at {self._settings.kafka.bootstrap_servers} did not answer after "
            f"{self._attempts} attempt(s) ({type(last).__name__})"
        )
        raise BrokerUnavailable(msg) from last

    # --- publishing

    async def publish(self, envelope: Envelope) -> PublishReceipt:
        """Publish ``envelope`` and return once the broker acknowledged it (``acks=all``)."""
        body, headers = encode(envelope)
        key = (envelope.episode_id or str(envelope.message_id)).encode("utf-8")

        async def attempt() -> PublishReceipt:
            await self._connect()
            metadata = await self._broker.publish(
                body,
                self.topic,
                key=key,
                headers=headers,
                correlation_id=str(envelope.message_id),
            )
            return PublishReceipt(
                topic=metadata.topic,
                partition=metadata.partition,
                offset=metadata.offset,
                message_id=envelope.message_id,
            )

        return await self._retrying("publish", attempt)

    def build_envelope(
        self,
        payload: PayloadModel | Mapping[str, object],
        *,
        sender: str,
        patient: str,
        episode_id: str | None = None,
        **meta: Unpack[MessageMeta],
    ) -> Envelope:
        """An envelope around ``payload`` (a model, or its fields with ``kind``), stamped now.

        The message type is the payload's ``kind``. Raises ``InvalidEnvelope``.
        """
        now = self._clock.now()
        fields = payload.model_dump() if not isinstance(payload, Mapping) else dict(payload)
        data = {
            "message_id": meta.get("message_id") or uuid4(),
            "message_type": fields.get("kind"),
            "episode_id": episode_id,
            "sender": sender,
            "patient": patient,
            "occurred_at": meta.get("occurred_at", now),
            "sent_at": now,
            "correlation_id": meta.get("correlation_id"),
            "causation_id": meta.get("causation_id"),
            "payload": fields,
        }
        return validate_envelope(data, today=now.astimezone(_STOCKHOLM).date())

    async def send(
        self,
        payload: PayloadModel | Mapping[str, object],
        *,
        sender: str,
        patient: str,
        episode_id: str | None = None,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Build an envelope around ``payload`` and publish it."""
        envelope = self.build_envelope(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )
        return await self.publish(envelope)

    # --- one typed method per message type (see topics.messages for each payload's rules)

    async def admission_notice(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        ward: str,
        admitted_at: datetime,
        expected_discharge_date: date,
        listed_health_centre: str,
        home_municipality: str,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish an admission notice (*inskrivningsmeddelande*)."""
        payload = {
            "kind": MessageType.ADMISSION_NOTICE.value,
            "ward": ward,
            "admitted_at": admitted_at,
            "expected_discharge_date": expected_discharge_date,
            "listed_health_centre": listed_health_centre,
            "home_municipality": home_municipality,
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def planning_document(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        action: PlanningAction,
        needs_more_information: bool,
        summary: str,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish a planning document, new or revised (*planeringsunderlag*)."""
        payload = {
            "kind": MessageType.PLANNING_DOCUMENT.value,
            "action": action,
            "needs_more_information": needs_more_information,
            "summary": summary,
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def discharge_date_changed(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        new_expected_discharge_date: date,
        reason: str,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish a changed expected discharge date (*framflyttning*)."""
        payload = {
            "kind": MessageType.DISCHARGE_DATE_CHANGED.value,
            "new_expected_discharge_date": new_expected_discharge_date,
            "reason": reason,
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def general_message(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        text: str,
        recipients: Sequence[str],
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish free text to named actors of the episode (*meddelande*)."""
        payload = {
            "kind": MessageType.GENERAL_MESSAGE.value,
            "text": text,
            "recipients": tuple(recipients),
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def ready_for_discharge(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        assessed_at: datetime,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish that the patient is ready for discharge (*utskrivningsklar*)."""
        payload = {"kind": MessageType.READY_FOR_DISCHARGE.value, "assessed_at": assessed_at}
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def ready_for_discharge_retracted(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        retracted_at: datetime,
        reason: str,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish that a *utskrivningsklar* assessment was withdrawn."""
        payload = {
            "kind": MessageType.READY_FOR_DISCHARGE_RETRACTED.value,
            "retracted_at": retracted_at,
            "reason": reason,
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def care_contact_appointed(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        contact_role: str,
        contact_unit: str,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish that a named care contact was appointed (*fast vårdkontakt utsedd*)."""
        payload = {
            "kind": MessageType.CARE_CONTACT_APPOINTED.value,
            "contact_role": contact_role,
            "contact_unit": contact_unit,
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def sip_invitation(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        meeting_at: datetime,
        invited: Sequence[str],
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish an invitation to a SIP meeting (*kallelse till SIP*)."""
        payload = {
            "kind": MessageType.SIP_INVITATION.value,
            "meeting_at": meeting_at,
            "invited": tuple(invited),
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def sip_declined(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        declined_at: datetime,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish that the patient declined a SIP (*patienten avböjer SIP*)."""
        payload = {"kind": MessageType.SIP_DECLINED.value, "declined_at": declined_at}
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def discharge_notice(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        discharged_at: datetime,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish that the patient has left hospital (*utskrivningsmeddelande*)."""
        payload = {"kind": MessageType.DISCHARGE_NOTICE.value, "discharged_at": discharged_at}
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def message_outside_episode(
        self,
        *,
        sender: str,
        patient: str,
        text: str,
        recipients: Sequence[str],
        episode_id: str | None = None,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish a message with no hospital stay (*meddelande utanför vårdtillfälle*)."""
        payload = {
            "kind": MessageType.MESSAGE_OUTSIDE_EPISODE.value,
            "text": text,
            "recipients": tuple(recipients),
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def care_request(
        self,
        *,
        sender: str,
        patient: str,
        text: str,
        recipient: str,
        requested_start: date,
        episode_id: str | None = None,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish a care request to municipal home health care (*vårdbegäran*)."""
        payload = {
            "kind": MessageType.CARE_REQUEST.value,
            "text": text,
            "recipient": recipient,
            "requested_start": requested_start,
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def episode_updated(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        listed_health_centre: str | None = None,
        home_municipality: str | None = None,
        expected_discharge_date: date | None = None,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish changed facts of the stay (HL7 A08); at least one must be given."""
        payload = {
            "kind": MessageType.EPISODE_UPDATED.value,
            "listed_health_centre": listed_health_centre,
            "home_municipality": home_municipality,
            "expected_discharge_date": expected_discharge_date,
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )

    async def cancellation(
        self,
        *,
        sender: str,
        patient: str,
        episode_id: str,
        cancelled_message_id: UUID,
        reason: str,
        **meta: Unpack[MessageMeta],
    ) -> PublishReceipt:
        """Publish that one of the sender's earlier messages is withdrawn (*makulering*)."""
        payload = {
            "kind": MessageType.CANCELLATION.value,
            "cancelled_message_id": cancelled_message_id,
            "reason": reason,
        }
        return await self.send(
            payload, sender=sender, patient=patient, episode_id=episode_id, **meta
        )
