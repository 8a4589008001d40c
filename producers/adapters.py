"""What the HL7 v2 and FHIR adapters share: the sink they publish to, derived message ids, a
bounded memory of what was already published, and error text that names fields, never values.

Message ids of admissions and discharges
----------------------------------------
A cancellation (*makulering*) must name the message it cancels, but neither HL7 A11/A13 nor a
cancelled FHIR Encounter carries the id of the original. So the two messages that can be
cancelled from a journal system get ids derived from the stay itself, not from the transport:

* admission notice: ``uuid5(NS, "{episode_id}|admission_notice|{admitted_at}")``
* discharge notice: ``uuid5(NS, "{episode_id}|discharge_notice|{discharged_at}")``

with ``NS = EPISODE_EVENT_NAMESPACE`` and the instant in UTC, ISO 8601
(``2027-03-26T07:30:00+00:00``). The time is part of the name so that a stay cancelled by mistake
and admitted (or discharged) again at another time gets a new id: the router treats a known id
as a redelivery and would drop it silently. The patient is deliberately not part of the name:
uuid5 is a plain SHA-1 and a personnummer is easy to guess, so a message id must not be derived
from one. Because HL7 and FHIR use the same derivation, the same admission sent by both paths is
the same message, and the second is absorbed downstream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol
from uuid import UUID

from pydantic import ValidationError

from hub.calendar import require_aware
from topics.catalogue import MessageType
from topics.identifiers import IDENTIFIER_ERROR_TYPES, mask_identity_numbers
from topics.messages import MESSAGE_ERROR_TYPES, Envelope

__all__ = [
    "EPISODE_EVENT_NAMESPACE",
    "EnvelopeSink",
    "FieldProblem",
    "OncePublisher",
    "admission_message_id",
    "discharge_message_id",
    "field_problems",
]

#: uuid5 namespace of admission and discharge notice ids. Fixed for ever: tests pin examples.
EPISODE_EVENT_NAMESPACE: Final = UUID("2b0f6a52-8c1e-4f3d-9a7b-5e4c3d2a1f03")

_SAFE_ERROR_TYPES: Final = IDENTIFIER_ERROR_TYPES | MESSAGE_ERROR_TYPES
_MESSAGE_TYPE_VALUES: Final = frozenset(message_type.value for message_type in MessageType)


class EnvelopeSink(Protocol):
    """Where an adapter publishes: ``publish`` returns once the broker has acknowledged.

    ``producers.sdk.HubClient`` satisfies it; tests pass a thin wrapper over the hub's broker.
    """

    async def publish(self, envelope: Envelope) -> object:
        """Publish one envelope; return after the broker's ack, raise if it was not stored."""
        ...


def _derived_id(episode_id: str, kind: MessageType, at: datetime) -> UUID:
    instant = require_aware(at, "at").astimezone(UTC).isoformat()
    return uuid.uuid5(EPISODE_EVENT_NAMESPACE, f"{episode_id}|{kind.value}|{instant}")


def admission_message_id(episode_id: str, admitted_at: datetime) -> UUID:
    """The message id of the admission notice of ``episode_id`` admitted at ``admitted_at``."""
    return _derived_id(episode_id, MessageType.ADMISSION_NOTICE, admitted_at)


def discharge_message_id(episode_id: str, discharged_at: datetime) -> UUID:
    """The message id of the discharge notice of ``episode_id`` at ``discharged_at``."""
    return _derived_id(episode_id, MessageType.DISCHARGE_NOTICE, discharged_at)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One reason an input was refused: where (a field in the sender's terms) and which rule.

    ``message`` is fixed text from the contract, never an input value.
    """

    location: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def _envelope_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    previous: int | str | None = None
    for segment in loc:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif not (previous == "payload" and segment in _MESSAGE_TYPE_VALUES):
            # pydantic puts the discriminator tag after "payload"; it says nothing to a sender.
            text += f".{segment}" if text else segment
        previous = segment
    return text or "(envelope)"


def field_problems(
    exc: ValidationError, locations: Mapping[str, str], *, fallback: str
) -> tuple[FieldProblem, ...]:
    """Translate an envelope's validation error into the sender's field names.

    ``locations`` maps an envelope path (``payload.ward``) or an error type (``date_order``) to
    the sender's field (``PV1-3``, ``Encounter.serviceProvider``); anything unmapped is put at
    ``fallback``. Only the contract's own rules (whose messages interpolate nothing) keep their
    message; other pydantic errors are reported by type alone, since pydantic's text may quote
    the input.
    """
    problems: list[FieldProblem] = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        path = _envelope_path(error["loc"])
        rule = error["type"]
        location = locations.get(rule) or locations.get(path) or fallback
        message = error["msg"] if rule in _SAFE_ERROR_TYPES else rule.replace("_", " ")
        problems.append(FieldProblem(location, rule, mask_identity_numbers(message)))
    return tuple(problems)


class _RecentIds:
    """The most recent ``capacity`` ids, oldest forgotten first (an LRU set)."""

    __slots__ = ("_capacity", "_ids")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            msg = "capacity: must be at least 1"
            raise ValueError(msg)
        self._capacity = capacity
        self._ids: OrderedDict[UUID, None] = OrderedDict()

    def __contains__(self, message_id: UUID) -> bool:
        return message_id in self._ids

    def add(self, message_id: UUID) -> None:
        self._ids[message_id] = None
        self._ids.move_to_end(message_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class OncePublisher:
    """Publishes each message id at most once per process, as far as it remembers.

    Downstream consumers drop duplicate message ids anyway; this saves the broker round trip and
    the duplicate record when a sender resends (an HL7 sender that missed our ACK, a retried
    FHIR POST). It remembers the last ``capacity`` ids it published. Concurrent publishes of one
    id (the same message on two connections) wait for the first; if the first fails, the next
    one tries again. Each publish is bounded by ``timeout_s``.
    """

    def __init__(
        self, sink: EnvelopeSink, *, capacity: int = 10_000, timeout_s: float = 30.0
    ) -> None:
        if timeout_s <= 0:
            msg = "timeout_s: must be positive"
            raise ValueError(msg)
        self._sink = sink
        self._recent = _RecentIds(capacity)
        self._in_flight: dict[UUID, asyncio.Event] = {}
        self._timeout_s = timeout_s

    async def publish(self, envelope: Envelope) -> bool:
        """Publish ``envelope`` unless its id was published; True if this call published it."""
        message_id = envelope.message_id
        while True:
            if message_id in self._recent:
                return False
            pending = self._in_flight.get(message_id)
            if pending is None:
                break
            await pending.wait()
        done = asyncio.Event()
        self._in_flight[message_id] = done
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._sink.publish(envelope)
            self._recent.add(message_id)
        finally:
            del self._in_flight[message_id]
            done.set()
        return True
