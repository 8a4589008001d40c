"""Who receives each message of an inpatient stay: routing rules as data, applied by pure functions.

The admission notice (*inskrivningsmeddelande*) fixes the episode's **recipient set**: the
patient's listed health centre and the home health care and assessment unit of the patient's
home municipality, always in that order. The sending ward becomes the episode's ward. Together
they are the episode's **actors**. Later messages are routed against that stored set, not
re-derived from the directory, so a directory reload never moves a patient silently; only an
episode update (HL7 A08) moves the set, and then the units that join catch up through
`history` re-deliveries while the units that leave are told so.

Decisions taken here (see `ROUTING_RULES` for the per-type table):

* The sender never receives its own message.
* A general message (*meddelande*) may only name actors of the episode (the ward and the current
  recipient set). Naming any other unit, even one in the directory, is unroutable: the message
  carries patient information and must not reach a unit that has no part in the stay.
* A message outside an episode goes between health centres and home health care only; a care
  request (*vårdbegäran*) names exactly one home health care unit. Both leave episode state alone.
* A cancellation (*makulering*) goes to every unit that holds the original, including units that
  received it as history and units that have since left the recipient set. Only messages of the
  discharge process (table rows 1-8) can be cancelled, and each only once.
* History for a joining unit: every earlier message its predecessor in the same position held,
  except cancelled messages, cancellations and earlier episode updates; never one it already has.
* A message id already recorded for the episode is a redelivery: the decision is empty and marked
  `duplicate`. Callers must therefore publish a decision's deliveries before storing its state.
* Deliveries go to active directory units only. A current recipient that is no longer active
  makes the message unroutable (someone must fix the directory or move the episode); a leaving
  unit or a holder of a cancelled original that is no longer active is skipped, since it can no
  longer act on the news.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import NoReturn
from uuid import UUID

from hub.directory import Directory
from hub.errors import Unroutable
from topics.catalogue import MessageType, UnitKind
from topics.messages import DeliveryRole

__all__ = [
    "RECIPIENT_SET_KINDS",
    "ROUTING_RULES",
    "Audience",
    "DeliveredMessage",
    "DeliveryRole",
    "EpisodeState",
    "Redelivery",
    "RoutingDecision",
    "RoutingInput",
    "RoutingRule",
    "Target",
    "route",
]

RECIPIENT_SET_KINDS: tuple[UnitKind, UnitKind, UnitKind] = (
    UnitKind.HEALTH_CENTRE,
    UnitKind.HOME_HEALTH_CARE,
    UnitKind.ASSESSMENT_UNIT,
)
"""The kinds of `EpisodeState.recipients`, position by position."""


class Audience(StrEnum):
    """Where a message type's recipients come from."""

    EPISODE = "episode"  # the episode's actors of the rule's kinds
    NAMED = "named"  # the units the message names, restricted to the rule's kinds
    ORIGINAL = "original"  # every unit that holds the message being cancelled


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """How one message type is routed."""

    audience: Audience
    kinds: frozenset[UnitKind]
    in_episode: bool  # belongs to an inpatient stay and must follow its admission notice
    cancellable: bool  # may be cancelled (*makuleras*): DOMAIN.md rows 1-8


_SET = frozenset(RECIPIENT_SET_KINDS)
_ACTORS = frozenset({UnitKind.HOSPITAL_WARD, *RECIPIENT_SET_KINDS})


def _to_set(*, cancellable: bool = True) -> RoutingRule:
    return RoutingRule(Audience.EPISODE, _SET, in_episode=True, cancellable=cancellable)


ROUTING_RULES: Mapping[MessageType, RoutingRule] = MappingProxyType(
    {
        MessageType.ADMISSION_NOTICE: _to_set(),
        MessageType.PLANNING_DOCUMENT: _to_set(),
        MessageType.DISCHARGE_DATE_CHANGED: _to_set(),
        MessageType.GENERAL_MESSAGE: RoutingRule(
            Audience.NAMED, _ACTORS, in_episode=True, cancellable=True
        ),
        MessageType.READY_FOR_DISCHARGE: _to_set(),
        MessageType.READY_FOR_DISCHARGE_RETRACTED: _to_set(),
        MessageType.CARE_CONTACT_APPOINTED: RoutingRule(
            Audience.EPISODE,
            frozenset(
                {UnitKind.HOSPITAL_WARD, UnitKind.HOME_HEALTH_CARE, UnitKind.ASSESSMENT_UNIT}
            ),
            in_episode=True,
            cancellable=True,
        ),
        MessageType.SIP_INVITATION: _to_set(),
        MessageType.SIP_DECLINED: _to_set(),
        MessageType.DISCHARGE_NOTICE: _to_set(),
        MessageType.EPISODE_UPDATED: _to_set(cancellable=False),
        MessageType.CANCELLATION: RoutingRule(
            Audience.ORIGINAL, frozenset(), in_episode=True, cancellable=False
        ),
        MessageType.MESSAGE_OUTSIDE_EPISODE: RoutingRule(
            Audience.NAMED,
            frozenset({UnitKind.HEALTH_CENTRE, UnitKind.HOME_HEALTH_CARE}),
            in_episode=False,
            cancellable=False,
        ),
        MessageType.CARE_REQUEST: RoutingRule(
            Audience.NAMED,
            frozenset({UnitKind.HOME_HEALTH_CARE}),
            in_episode=False,
            cancellable=False,
        ),
    }
)
"""Which units receive each message type (DOMAIN.md, "The discharge process as messages")."""

# Messages a unit joining the recipient set needs to catch up on: the state of the planning.
# Cancellations and cancelled messages tell it nothing; an older update is superseded by the
# update that brought it in.
_NOT_HISTORY = frozenset({MessageType.CANCELLATION, MessageType.EPISODE_UPDATED})


@dataclass(frozen=True, slots=True)
class RoutingInput:
    """The few facts of a message that routing needs, independent of the envelope class.

    `listed_health_centre` and `home_municipality` come from an admission notice (both required)
    or an episode update (either may be None: unchanged). `recipients` are the named units of a
    general message, a message outside an episode, or a care request (exactly one).
    `cancelled_message_id` is the original of a cancellation.
    """

    message_id: UUID
    message_type: MessageType
    episode_id: str | None
    sender: str
    listed_health_centre: str | None = None
    home_municipality: str | None = None
    recipients: tuple[str, ...] = ()
    cancelled_message_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One unit a message is delivered to, and in which role."""

    unit_hsa_id: str
    kind: UnitKind
    role: DeliveryRole


@dataclass(frozen=True, slots=True)
class Redelivery:
    """An earlier message of the episode to deliver again to a unit that joined (`role` history)."""

    message_id: UUID
    target: Target


@dataclass(frozen=True, slots=True)
class DeliveredMessage:
    """A message routed within the episode and every unit that holds it, in any role."""

    message_id: UUID
    message_type: MessageType
    units: tuple[str, ...]
    cancels: UUID | None = None


@dataclass(frozen=True, slots=True)
class EpisodeState:
    """What routing remembers of an inpatient stay (*vårdtillfälle*) between messages.

    `recipients` is (health centre, home health care, assessment unit), see
    `RECIPIENT_SET_KINDS`; `listed_health_centre` and `home_municipality` are what it was
    derived from. `delivered` is every routed message of the episode in routing order.
    """

    episode_id: str
    ward: str
    listed_health_centre: str
    home_municipality: str
    recipients: tuple[str, ...]
    delivered: tuple[DeliveredMessage, ...]
    discharged: bool = False

    @property
    def actors(self) -> tuple[str, ...]:
        """The ward followed by the recipient set."""
        return (self.ward, *self.recipients)

    def record(self, message_id: UUID) -> DeliveredMessage | None:
        """The record of a routed message of this episode, or None."""
        return next((d for d in self.delivered if d.message_id == message_id), None)

    def is_cancelled(self, message_id: UUID) -> bool:
        """Whether a cancellation of `message_id` has been routed in this episode."""
        return any(d.cancels == message_id for d in self.delivered)


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """The deliveries one message causes and the episode state after it.

    `history` are extra deliveries of earlier messages (role history) to units that joined the
    recipient set; they are only ever produced by an episode update.
    """

    targets: tuple[Target, ...]
    new_state: EpisodeState | None
    history: tuple[Redelivery, ...] = ()
    duplicate: bool = False


def route(inp: RoutingInput, state: EpisodeState | None, directory: Directory) -> RoutingDecision:
    """Decide the recipients of one message given the episode so far and the directory.

    Raises `Unroutable` (reason without patient data) when the recipients cannot be determined.
    `state` must be the state of `inp.episode_id` (or None before its first message).
    """
    rule = ROUTING_RULES[inp.message_type]
    if not rule.in_episode:
        targets = _named_targets(inp, rule, directory, allowed=None)
        return RoutingDecision(targets=targets, new_state=state)
    if inp.episode_id is None:
        _refuse(f"episode_id: required for {inp.message_type.value}")
    if state is not None and state.episode_id != inp.episode_id:
        msg = "route: the state passed belongs to another episode"
        raise ValueError(msg)
    if state is not None and state.record(inp.message_id) is not None:
        return RoutingDecision(targets=(), new_state=state, duplicate=True)
    if inp.message_type is MessageType.ADMISSION_NOTICE:
        return _admit(inp, inp.episode_id, state, directory)
    if state is None:
        _refuse(
            f"{inp.message_type.value}: the episode has no admission notice "
            "(a message before the admission notice)"
        )
    if inp.message_type is MessageType.EPISODE_UPDATED:
        return _move(inp, state, directory)
    if inp.message_type is MessageType.CANCELLATION:
        return _cancel(inp, state, directory)
    if rule.audience is Audience.NAMED:
        targets = _named_targets(inp, rule, directory, allowed=state.actors)
    else:
        targets = _episode_targets(inp, rule, state, directory)
    discharged = state.discharged or inp.message_type is MessageType.DISCHARGE_NOTICE
    return RoutingDecision(
        targets=targets,
        new_state=_with_record(state, inp, targets, discharged=discharged),
    )


# --- per-audience helpers -----------------------------------------------------------------------


def _admit(
    inp: RoutingInput, episode_id: str, state: EpisodeState | None, directory: Directory
) -> RoutingDecision:
    if state is not None and any(
        d.message_type is MessageType.ADMISSION_NOTICE and not state.is_cancelled(d.message_id)
        for d in state.delivered
    ):
        _refuse(
            "admission_notice: the episode already has an admission notice; "
            "an episode update changes its recipients"
        )
    ward = directory.unit(inp.sender)
    if ward is None or ward.kind is not UnitKind.HOSPITAL_WARD or not ward.active:
        _refuse("sender: an admission notice must come from an active hospital ward")
    if inp.listed_health_centre is None:
        _refuse("listed_health_centre: required in an admission notice")
    if inp.home_municipality is None:
        _refuse("home_municipality: required in an admission notice")
    recipients = _recipient_set(inp.listed_health_centre, inp.home_municipality, directory)
    targets = tuple(
        Target(unit, kind, DeliveryRole.RECIPIENT)
        for unit, kind in zip(recipients, RECIPIENT_SET_KINDS, strict=True)
        if unit != inp.sender
    )
    record = DeliveredMessage(inp.message_id, inp.message_type, _units(targets))
    new_state = EpisodeState(
        episode_id=episode_id,
        ward=ward.hsa_id,
        listed_health_centre=inp.listed_health_centre,
        home_municipality=inp.home_municipality,
        recipients=recipients,
        delivered=(*(state.delivered if state is not None else ()), record),
        discharged=False,
    )
    return RoutingDecision(targets=targets, new_state=new_state)


def _move(inp: RoutingInput, state: EpisodeState, directory: Directory) -> RoutingDecision:
    """An episode update: route it, and move the recipient set if its inputs changed."""
    health_centre = inp.listed_health_centre or state.listed_health_centre
    municipality = inp.home_municipality or state.home_municipality
    new = _recipient_set(health_centre, municipality, directory)
    old = state.recipients
    staying = tuple(
        Target(unit, kind, DeliveryRole.RECIPIENT)
        for unit, kind in zip(new, RECIPIENT_SET_KINDS, strict=True)
        if unit != inp.sender
    )
    leaving = tuple(
        Target(unit, kind, DeliveryRole.LEFT_RECIPIENT_SET)
        for unit, kind in zip(old, RECIPIENT_SET_KINDS, strict=True)
        if unit not in new and unit != inp.sender and _is_active(unit, directory)
    )
    # Position i of the new set replaces position i of the old one.
    joined = [
        (old_unit, Target(new_unit, kind, DeliveryRole.HISTORY))
        for old_unit, new_unit, kind in zip(old, new, RECIPIENT_SET_KINDS, strict=True)
        if new_unit not in old
    ]
    history: list[Redelivery] = []
    delivered: list[DeliveredMessage] = []
    for record in state.delivered:
        units = record.units
        if record.message_type not in _NOT_HISTORY and not state.is_cancelled(record.message_id):
            for predecessor, target in joined:
                if predecessor in units and target.unit_hsa_id not in units:
                    history.append(Redelivery(record.message_id, target))
                    units = (*units, target.unit_hsa_id)
        delivered.append(replace(record, units=units))
    targets = (*staying, *leaving)
    delivered.append(DeliveredMessage(inp.message_id, inp.message_type, _units(targets)))
    new_state = replace(
        state,
        listed_health_centre=health_centre,
        home_municipality=municipality,
        recipients=new,
        delivered=tuple(delivered),
    )
    return RoutingDecision(targets=targets, new_state=new_state, history=tuple(history))


def _cancel(inp: RoutingInput, state: EpisodeState, directory: Directory) -> RoutingDecision:
    if inp.cancelled_message_id is None:
        _refuse("cancelled_message_id: required in a cancellation")
    original = state.record(inp.cancelled_message_id)
    if original is None:
        _refuse("cancelled_message_id: no such message in this episode")
    if not ROUTING_RULES[original.message_type].cancellable:
        _refuse(
            f"cancelled_message_id: a message of type {original.message_type.value} "
            "cannot be cancelled"
        )
    if state.is_cancelled(original.message_id):
        _refuse("cancelled_message_id: the message is already cancelled")
    targets = tuple(
        Target(unit.hsa_id, unit.kind, DeliveryRole.RECIPIENT)
        for unit in (directory.unit(hsa_id) for hsa_id in original.units)
        if unit is not None and unit.active and unit.hsa_id != inp.sender
    )
    discharged = state.discharged and original.message_type is not MessageType.DISCHARGE_NOTICE
    record = DeliveredMessage(
        inp.message_id, inp.message_type, _units(targets), cancels=original.message_id
    )
    new_state = replace(state, delivered=(*state.delivered, record), discharged=discharged)
    return RoutingDecision(targets=targets, new_state=new_state)


def _episode_targets(
    inp: RoutingInput, rule: RoutingRule, state: EpisodeState, directory: Directory
) -> tuple[Target, ...]:
    kinds = (UnitKind.HOSPITAL_WARD, *RECIPIENT_SET_KINDS)
    targets: list[Target] = []
    for unit, kind in zip(state.actors, kinds, strict=True):
        if kind not in rule.kinds or unit == inp.sender:
            continue
        if not _is_active(unit, directory):
            _refuse(
                f"{inp.message_type.value}: the episode's {kind.value} is no longer an active "
                "unit in the directory; update the directory or the episode"
            )
        targets.append(Target(unit, kind, DeliveryRole.RECIPIENT))
    if not targets:
        _refuse(f"{inp.message_type.value}: no recipient besides the sender")
    return tuple(targets)


def _named_targets(
    inp: RoutingInput,
    rule: RoutingRule,
    directory: Directory,
    allowed: tuple[str, ...] | None,
) -> tuple[Target, ...]:
    """Named recipients, in the order named, without repeats or the sender."""
    name = inp.message_type.value
    if not inp.recipients:
        _refuse(f"recipients: a {name} must name at least one unit")
    if inp.message_type is MessageType.CARE_REQUEST and len(inp.recipients) != 1:
        _refuse("recipients: a care_request names exactly one home health care unit")
    kinds = ", ".join(sorted(k.value for k in rule.kinds))
    targets: list[Target] = []
    for index, hsa_id in enumerate(inp.recipients):
        path = f"recipients[{index}]"
        unit = directory.unit(hsa_id)
        if unit is None:
            _refuse(f"{path}: unknown unit")
        if not unit.active:
            _refuse(f"{path}: the unit is inactive")
        if allowed is not None and hsa_id not in allowed:
            _refuse(f"{path}: the unit is not an actor of the episode")
        if unit.kind not in rule.kinds:
            _refuse(f"{path}: a {name} goes to a unit of kind {kinds}")
        if hsa_id == inp.sender or any(t.unit_hsa_id == hsa_id for t in targets):
            continue
        targets.append(Target(hsa_id, unit.kind, DeliveryRole.RECIPIENT))
    if not targets:
        _refuse(f"recipients: a {name} must name a unit other than the sender")
    return tuple(targets)


def _recipient_set(
    health_centre_id: str, municipality_code: str, directory: Directory
) -> tuple[str, str, str]:
    health_centre = directory.health_centre(health_centre_id)
    if health_centre is None:
        _refuse("listed_health_centre: unknown health centre")
    if not health_centre.active:
        _refuse("listed_health_centre: the health centre is inactive")
    municipal = directory.municipal_units(municipality_code)
    if municipal is None:
        _refuse("home_municipality: unknown municipality")
    return (
        health_centre.hsa_id,
        municipal.home_health_care.hsa_id,
        municipal.assessment_unit.hsa_id,
    )


def _refuse(reason: str) -> NoReturn:
    """Raise `Unroutable`; every reason names a field or rule and never carries patient data."""
    raise Unroutable(reason)


def _is_active(hsa_id: str, directory: Directory) -> bool:
    unit = directory.unit(hsa_id)
    return unit is not None and unit.active


def _units(targets: Iterable[Target]) -> tuple[str, ...]:
    return tuple(t.unit_hsa_id for t in targets)


def _with_record(
    state: EpisodeState, inp: RoutingInput, targets: tuple[Target, ...], *, discharged: bool
) -> EpisodeState:
    record = DeliveredMessage(inp.message_id, inp.message_type, _units(targets))
    return replace(state, delivered=(*state.delivered, record), discharged=discharged)
