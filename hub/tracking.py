"""The tracker's pure step: what a delivery means for the store and for the liability clock.

A delivery is due at the end of the first reading round (*läsrunda*) of its recipient's unit
kind that starts at or after it reached the unit (`hub.calendar.due_at`). A delivery to a
current recipient also carries a liability fact of its episode when its message is one of the
events the payment-liability clock (*betalningsansvar*) counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.calendar import CalendarPolicy, due_at
from hub.liability import FactKind
from topics.catalogue import MessageType
from topics.messages import (
    CareContactAppointed,
    Delivery,
    DeliveryRole,
    DischargeNotice,
    ReadyForDischarge,
    ReadyForDischargeRetracted,
    SipDeclined,
    SipInvitation,
)


@dataclass(frozen=True, slots=True)
class EpisodeFact:
    """One liability-relevant event of an episode, keyed by the message that carried it."""

    kind: FactKind
    at: datetime


def delivery_due_at(delivery: Delivery, calendar: CalendarPolicy) -> datetime:
    """When the recipient must have receipted this delivery (UTC)."""
    return due_at(delivery.routed_at, calendar.for_kind(delivery.recipient_kind))


def episode_fact(delivery: Delivery) -> EpisodeFact | None:
    """The liability fact this delivery's message carries, if any."""
    if delivery.role is not DeliveryRole.RECIPIENT or delivery.message.episode_id is None:
        return None
    message = delivery.message
    payload = message.payload
    if message.message_type is MessageType.ADMISSION_NOTICE:
        return EpisodeFact(FactKind.ADMISSION_NOTICE_SENT, message.sent_at)
    if isinstance(payload, ReadyForDischarge):
        return EpisodeFact(FactKind.READY_FOR_DISCHARGE, payload.assessed_at)
    if isinstance(payload, ReadyForDischargeRetracted):
        return EpisodeFact(FactKind.READY_FOR_DISCHARGE_RETRACTED, payload.retracted_at)
    if isinstance(payload, DischargeNotice):
        return EpisodeFact(FactKind.DISCHARGED, payload.discharged_at)
    if isinstance(payload, SipInvitation):
        return EpisodeFact(FactKind.SIP_INVITATION_SENT, message.sent_at)
    if isinstance(payload, SipDeclined):
        return EpisodeFact(FactKind.SIP_DECLINED, payload.declined_at)
    if isinstance(payload, CareContactAppointed):
        return EpisodeFact(FactKind.CARE_CONTACT_APPOINTED, message.occurred_at)
    return None
