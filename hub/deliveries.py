"""From one envelope to its deliveries: the router's pure step, between `topics` and `hub.routing`.

`plan(envelope, episode, directory, now)` applies the routing rules and returns the `Delivery`
records to publish and the episode's next stored form. The episode record keeps the routing
state and the envelopes routed so far (the secure-side copy needed to send history to a unit
that joins the recipient set). It is serialised as JSON by `EpisodeRecord.to_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.directory import Directory
from hub.routing import DeliveredMessage, EpisodeState, RoutingInput, Target, route
from topics.catalogue import MessageType, UnitKind
from topics.ids import delivery_id_text
from topics.messages import (
    AdmissionNotice,
    Cancellation,
    CareRequest,
    Delivery,
    DeliveryRole,
    Envelope,
    EpisodeUpdated,
    GeneralMessage,
    MessageOutsideEpisode,
)


def routing_input(envelope: Envelope) -> RoutingInput:
    """The facts of an envelope that routing needs."""
    payload = envelope.payload
    listed: str | None = None
    municipality: str | None = None
    recipients: tuple[str, ...] = ()
    cancelled: UUID | None = None
    if isinstance(payload, AdmissionNotice | EpisodeUpdated):
        listed, municipality = payload.listed_health_centre, payload.home_municipality
    elif isinstance(payload, GeneralMessage | MessageOutsideEpisode):
        recipients = tuple(payload.recipients)
    elif isinstance(payload, CareRequest):
        recipients = (payload.recipient,)
    elif isinstance(payload, Cancellation):
        cancelled = payload.cancelled_message_id
    return RoutingInput(
        message_id=envelope.message_id,
        message_type=envelope.message_type,
        episode_id=envelope.episode_id,
        sender=envelope.sender,
        listed_health_centre=listed,
        home_municipality=municipality,
        recipients=recipients,
        cancelled_message_id=cancelled,
    )


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """What the router stores per episode: routing state and the envelopes routed so far."""

    state: EpisodeState
    envelopes: dict[str, str] = field(default_factory=dict)  # message id -> envelope JSON

    def to_json(self) -> str:
        s = self.state
        state = {
            "episode_id": s.episode_id,
            "ward": s.ward,
            "listed_health_centre": s.listed_health_centre,
            "home_municipality": s.home_municipality,
            "recipients": list(s.recipients),
            "delivered": [
                {
                    "message_id": str(d.message_id),
                    "message_type": d.message_type.value,
                    "units": list(d.units),
                    "cancels": str(d.cancels) if d.cancels else None,
                }
                for d in s.delivered
            ],
            "discharged": s.discharged,
        }
        return json.dumps({"state": state, "envelopes": self.envelopes})

    @staticmethod
    def from_json(text: str) -> EpisodeRecord:
        raw: dict[str, Any] = json.loads(text)
        s = raw["state"]
        state = EpisodeState(
            episode_id=s["episode_id"],
            ward=s["ward"],
            listed_health_centre=s["listed_health_centre"],
            home_municipality=s["home_municipality"],
            recipients=tuple(s["recipients"]),
            delivered=tuple(
                DeliveredMessage(
                    message_id=UUID(d["message_id"]),
                    message_type=MessageType(d["message_type"]),
                    units=tuple(d["units"]),
                    cancels=UUID(d["cancels"]) if d.get("cancels") else None,
                )
                for d in s["delivered"]
            ),
            discharged=bool(s.get("discharged", False)),
        )
        return EpisodeRecord(state=state, envelopes=dict(raw.get("envelopes", {})))


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One delivery to publish: the message (as canonical envelope JSON) to one unit.

    ``delivery_key`` is the delivery id as text (what the router writes); ``delivery_id`` the
    same as a `UUID`.
    """

    delivery_key: str
    message_id: UUID
    envelope_json: str
    recipient: str
    kind: UnitKind
    role: DeliveryRole

    @property
    def delivery_id(self) -> UUID:
        return UUID(self.delivery_key)

    def to_model(self, routed_at: datetime, directory_version: int) -> Delivery:
        """The `Delivery` record this becomes (the router encodes it without the model)."""
        return Delivery(
            delivery_id=self.delivery_id,
            message=Envelope.model_validate_json(self.envelope_json),
            recipient=self.recipient,
            recipient_kind=self.kind,
            role=self.role,
            routed_at=routed_at,
            directory_version=directory_version,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """The deliveries of one envelope and what to store for its episode afterwards."""

    deliveries: tuple[PlannedDelivery, ...]
    record: EpisodeRecord | None  # None: nothing to store (outside an episode, or a duplicate)
    duplicate: bool = False


def _planned(message_id: UUID, envelope_json: str, target: Target) -> PlannedDelivery:
    return PlannedDelivery(
        delivery_key=delivery_id_text(message_id, target.unit_hsa_id),
        message_id=message_id,
        envelope_json=envelope_json,
        recipient=target.unit_hsa_id,
        kind=target.kind,
        role=target.role,
    )


def plan(envelope: Envelope, episode: EpisodeRecord | None, directory: Directory) -> Plan:
    """Route one envelope. Raises `hub.errors.Unroutable` when recipients cannot be determined."""
    decision = route(routing_input(envelope), episode.state if episode else None, directory)
    if decision.duplicate:
        return Plan(deliveries=(), record=None, duplicate=True)
    envelope_json = envelope.model_dump_json()
    deliveries = [_planned(envelope.message_id, envelope_json, t) for t in decision.targets]
    envelopes = dict(episode.envelopes) if episode else {}
    for redelivery in decision.history:
        original = envelopes[str(redelivery.message_id)]
        deliveries.append(_planned(redelivery.message_id, original, redelivery.target))
    if decision.new_state is None:
        return Plan(deliveries=tuple(deliveries), record=None)
    envelopes[str(envelope.message_id)] = envelope_json
    return Plan(deliveries=tuple(deliveries), record=EpisodeRecord(decision.new_state, envelopes))
