"""The escalation ladder for unreceipted deliveries (*eskalering*), as pure planning.

A delivery that is not receipted by its due time climbs a ladder of levels, each reached a fixed
absolute duration after the due time: the unit's functional mailbox, then the on-call staff of
the unit's municipality or health centre (*jour / beredskap*), then the unit manager
(*enhetschef*). DOMAIN.md "Default policies" §2 and "Precise readings" are the specification.

This module only decides *what* a scan must send. It reads no clock, no store and no scheduler:
the caller passes ``now`` and the pending deliveries with the highest level already sent, and
records what it sent (``highest_level_sent``) before the next scan. The caller need not pass
every open delivery: :func:`next_level_cutoffs` tells which ones can need a digest at ``now``
(the store selects only those, so a scan that has nothing new to send reads nothing), and
:func:`plan_scan` gives the same digests for those as for all of them. The ids it returns are
deterministic, so a crashed and repeated scan produces the same ids and the notifier drops the
duplicates: a digest's id is the contract's ``topics.ids.escalation_id_for``, and the id of one
(delivery, level) pair is :func:`per_delivery_escalation_id`. A :class:`Digest` maps onto the
``topics.messages.Escalation`` message; the caller adds the unit name, recipients, scan time and
link.

Catching up after a missed scan
-------------------------------
If the scheduler was down and a delivery has passed several levels since the last level sent,
a scan sends **only the highest level reached** and reports the lower ones as skipped
(:attr:`Digest.skipped`). Why not all of them:

* each level exists to give the one before it time to act; once that time is over, the lower
  audience has no longer a chance to act before the higher one is told anyway;
* three messages about the same overdue work arriving in the same minute (reminder, on-call,
  manager) read as noise and teach people to ignore the ladder;
* the higher digest already carries the age of the oldest delivery, so nothing is hidden;
* the skipped levels are returned to the caller, so the store can record them and a report can
  show that a scan was missed, instead of pretending the ladder ran normally.

Once a higher level has been sent, a lower one is never sent afterwards, and no level is ever
sent twice for the same delivery.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hub.errors import ConfigurationError
from topics.identifiers import is_hsa_id
from topics.ids import escalation_id_for
from topics.messages import EscalationTarget

__all__ = [
    "MAX_LEVELS",
    "MAX_MESSAGE_IDS",
    "NORRBOTTEN_STEPS",
    "PER_DELIVERY_NAMESPACE",
    "Digest",
    "EscalationPolicy",
    "EscalationStep",
    "PendingDelivery",
    "SkippedLevel",
    "highest_level_reached",
    "level_reached_at",
    "next_escalation_at",
    "next_level_cutoffs",
    "per_delivery_escalation_id",
    "plan_scan",
]

# Fixed for ever: changing it changes every (delivery, level) id and so the store's uniqueness
# across a deploy. It is uuid5(NAMESPACE_URL, "urn:dischargehub:escalation:delivery-level").
PER_DELIVERY_NAMESPACE = uuid.UUID("29a11bef-3464-5aa0-9f46-6388f5d2cfb3")

#: The escalation message (``topics.messages.Escalation``) carries levels 1 to 3 only.
MAX_LEVELS = 3

#: At most this many delivery ids travel in one escalation message (about 39 bytes each in
#: JSON, so some 40 kB): a digest of a large backlog must stay far below Kafka's 1 MB record
#: limit. ``count`` and the oldest instants stay exact, and the store keeps every (delivery,
#: level) row of the digest, so acknowledging it still covers all of its deliveries.
MAX_MESSAGE_IDS = 1000


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """One rung of the ladder: reached ``offset`` after the due time, notifying ``target``."""

    level: int
    offset: timedelta
    target: EscalationTarget


NORRBOTTEN_STEPS: tuple[EscalationStep, ...] = (
    EscalationStep(level=1, offset=timedelta(0), target=EscalationTarget.UNIT_MAILBOX),
    EscalationStep(level=2, offset=timedelta(minutes=60), target=EscalationTarget.ON_CALL),
    EscalationStep(level=3, offset=timedelta(hours=24), target=EscalationTarget.MANAGER),
)


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """The ladder as configuration; the default is the Norrbotten reference policy.

    Offsets are absolute durations added to the UTC due instant, not local wall-clock steps:
    across a daylight-saving change "24 hours later" lands at a different local clock time,
    which is what the regional agreement means by "24 h".
    """

    steps: tuple[EscalationStep, ...] = NORRBOTTEN_STEPS

    def __post_init__(self) -> None:
        if not 1 <= len(self.steps) <= MAX_LEVELS:
            msg = f"escalation.steps: must have 1 to {MAX_LEVELS} levels"
            raise ConfigurationError(msg)
        previous = timedelta(0)
        for index, step in enumerate(self.steps):
            if step.level != index + 1:
                msg = (
                    f"escalation.steps[{index}].level: levels must be numbered 1, 2, 3, ... "
                    "in order"
                )
                raise ConfigurationError(msg)
            if step.offset < previous:
                msg = (
                    f"escalation.steps[{index}].offset: must not be negative nor earlier than "
                    "the level before"
                )
                raise ConfigurationError(msg)
            previous = step.offset

    @property
    def top_level(self) -> int:
        """The highest level of the ladder (3 in Norrbotten)."""
        return len(self.steps)

    def step(self, level: int) -> EscalationStep:
        """The step for ``level``; ``ValueError`` if the ladder has no such level."""
        if not 1 <= level <= self.top_level:
            msg = f"level: must be between 1 and {self.top_level}, got {level}"
            raise ValueError(msg)
        return self.steps[level - 1]


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """What a scan needs to know about one delivery to a recipient unit.

    ``unit`` is the recipient unit's HSA-id. ``highest_level_sent`` is 0 when nothing has been
    sent. ``acknowledged`` means the on-call person acknowledged an escalation covering this
    delivery: the ladder stops there, although the delivery is still unreceipted. ``receipted``
    means its own recipient unit sent a receipt (*kvittens*); the store decides that (DOMAIN.md:
    only a receipt by the delivery's own recipient counts), this module only obeys it.
    """

    delivery_id: uuid.UUID
    unit: str
    arrived_at: datetime
    due_at: datetime
    highest_level_sent: int = 0
    acknowledged: bool = False
    receipted: bool = False

    def __post_init__(self) -> None:
        # A scan builds one per due delivery (a million after a long outage): the checks are
        # kept, but skip work where they can (instants from the store are UTC already, and a
        # scan sees the same few units over and over).
        # UTC in data: digests copy these instants into messages that require UTC.
        if self.arrived_at.tzinfo is not UTC:
            _require_aware("arrived_at", self.arrived_at)
            object.__setattr__(self, "arrived_at", self.arrived_at.astimezone(UTC))
        if self.due_at.tzinfo is not UTC:
            _require_aware("due_at", self.due_at)
            object.__setattr__(self, "due_at", self.due_at.astimezone(UTC))
        if not _is_unit(self.unit):
            msg = "unit: must be an HSA-id"
            raise ValueError(msg)
        if self.highest_level_sent < 0:
            msg = "highest_level_sent: must be 0 (nothing sent) or a level"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True, order=True)
class SkippedLevel:
    """A level a delivery passed while no scan ran; recorded, never sent afterwards."""

    delivery_id: uuid.UUID
    level: int


@dataclass(frozen=True, slots=True)
class Digest:
    """One notification for one unit and one level, covering all its deliveries at that level.

    Carries no patient data: ids, a count and two instants. ``escalation_id`` is
    ``topics.ids.escalation_id_for(unit, level, delivery_ids)``: it depends only on the unit,
    the level and the set of deliveries, so a repeated scan gives the same id.
    """

    escalation_id: uuid.UUID
    unit: str
    level: int
    target: EscalationTarget
    delivery_ids: tuple[uuid.UUID, ...]
    count: int
    oldest_arrived_at: datetime
    oldest_due_at: datetime
    skipped: tuple[SkippedLevel, ...] = field(default=())

    @property
    def message_ids(self) -> tuple[uuid.UUID, ...]:
        """The ids the escalation message carries: the first :data:`MAX_MESSAGE_IDS` in order.

        A bounded sample, so the message stays small however large the backlog;
        ``escalation_id`` and ``count`` are still those of every delivery in the digest.
        """
        return self.delivery_ids[:MAX_MESSAGE_IDS]


def per_delivery_escalation_id(delivery_id: uuid.UUID, level: int) -> uuid.UUID:
    """The deterministic id of "level ``level`` sent for this delivery", unique per pair.

    The store keys its escalation rows by it, so recording the same level twice for a delivery
    is a no-op even when two scans race.
    """
    if not 1 <= level <= MAX_LEVELS:
        msg = f"level: must be between 1 and {MAX_LEVELS}, got {level}"
        raise ValueError(msg)
    return uuid.uuid5(PER_DELIVERY_NAMESPACE, f"{delivery_id}|{level}")


def level_reached_at(due_at: datetime, level: int, policy: EscalationPolicy) -> datetime:
    """The instant at which a delivery due at ``due_at`` reaches ``level`` (inclusive)."""
    _require_aware("due_at", due_at)
    return due_at + policy.step(level).offset


def highest_level_reached(due_at: datetime, now: datetime, policy: EscalationPolicy) -> int:
    """The highest level reached at ``now`` (0 before due); a level counts *at* its instant."""
    _require_aware("due_at", due_at)
    _require_aware("now", now)
    reached = 0
    for step in policy.steps:
        if due_at + step.offset <= now:
            reached = step.level
    return reached


def next_level_cutoffs(now: datetime, policy: EscalationPolicy) -> dict[int, datetime]:
    """Which deliveries can need a digest at ``now``: ``{highest_level_sent: latest due_at}``.

    A delivery whose highest level sent is ``h`` (below the top) reaches its next level ``h + 1``
    when ``due_at + offset(h + 1) <= now``, i.e. ``due_at <= now - offset(h + 1)``; one that has
    not reached its next level has not reached any higher one either (offsets only grow). So
    the deliveries with ``due_at <= cutoffs[h]`` for their ``h`` are exactly those
    :func:`plan_scan` puts in a digest (before it drops receipted and acknowledged ones), and
    the store can select only them, with one index range per level.
    """
    _require_aware("now", now)
    return {level - 1: now - policy.step(level).offset for level in range(1, policy.top_level + 1)}


def plan_scan(
    pending: Iterable[PendingDelivery], now: datetime, policy: EscalationPolicy
) -> list[Digest]:
    """What one scan at ``now`` must send: one digest per (unit, level), sorted by both.

    Each unreceipted, unacknowledged delivery joins the digest of the highest level it has
    reached, if that level is above the highest one already sent; lower levels it passed in the
    meantime are reported in ``skipped`` (see the module docstring for why they are not sent).
    A delivery listed twice is a caller bug and raises ``ValueError``, since it could otherwise
    appear in two digests.
    """
    _require_aware("now", now)
    seen: set[uuid.UUID] = set()
    groups: defaultdict[tuple[str, int], list[PendingDelivery]] = defaultdict(list)
    skipped: defaultdict[tuple[str, int], list[SkippedLevel]] = defaultdict(list)
    for delivery in pending:
        if delivery.delivery_id in seen:
            msg = "pending: a delivery id is listed more than once"
            raise ValueError(msg)
        seen.add(delivery.delivery_id)
        if delivery.receipted or delivery.acknowledged:
            continue
        reached = highest_level_reached(delivery.due_at, now, policy)
        if reached <= delivery.highest_level_sent:
            continue
        key = (delivery.unit, reached)
        groups[key].append(delivery)
        skipped[key].extend(
            SkippedLevel(delivery.delivery_id, level)
            for level in range(delivery.highest_level_sent + 1, reached)
        )
    return [
        _digest(unit, level, policy, groups[(unit, level)], skipped[(unit, level)])
        for unit, level in sorted(groups)
    ]


def next_escalation_at(
    pending: Iterable[PendingDelivery], policy: EscalationPolicy
) -> datetime | None:
    """The earliest instant at which a scan would send something, or ``None`` if never.

    It is the instant of the next unsent level of the most urgent delivery and may lie in the
    past (an overdue scan): the scheduler should then run a scan at once. Receipted and
    acknowledged deliveries and those at the top of the ladder never need a scan.
    """
    candidates = [
        level_reached_at(d.due_at, d.highest_level_sent + 1, policy)
        for d in pending
        if not (d.receipted or d.acknowledged) and d.highest_level_sent < policy.top_level
    ]
    return min(candidates, default=None)


def _digest(
    unit: str,
    level: int,
    policy: EscalationPolicy,
    deliveries: Sequence[PendingDelivery],
    skipped: Sequence[SkippedLevel],
) -> Digest:
    # By the 128-bit integer: UUID order, compared in C rather than by UUID.__lt__ (a digest
    # after an outage may hold a hundred thousand ids).
    ids = tuple(sorted((d.delivery_id for d in deliveries), key=_uuid_int))
    return Digest(
        escalation_id=escalation_id_for(unit, level, ids),
        unit=unit,
        level=level,
        target=policy.step(level).target,
        delivery_ids=ids,
        count=len(ids),
        oldest_arrived_at=min(d.arrived_at for d in deliveries),
        oldest_due_at=min(d.due_at for d in deliveries),
        skipped=tuple(sorted(skipped)),
    )


_uuid_int = operator.attrgetter("int")


@functools.lru_cache(maxsize=4096)
def _is_unit(value: str) -> bool:
    return is_hsa_id(value)


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{name}: must be a timezone-aware datetime (UTC)"
        raise ValueError(msg)
