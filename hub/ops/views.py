"""What the ops API and the dashboard show, computed from the store and the directory.

Framework-free (no FastAPI here): the bodies are pydantic models and the queries take ``now``.
**Nothing in this module carries patient data**: a view names units, counts, ages, levels and
alert texts (already masked when the alert was validated), never a delivery's envelope. The
recipient API's delivery view, which does carry the envelope, is the one exception and is only
served to the unit's own credentials (``hub.ops.api``).

The backlog is what the regional project leads counted by hand every Sunday and holiday:
per unit, how many deliveries are unreceipted, how many of those arrived on a weekday and how
many on a weekend or holiday (Europe/Stockholm, the hub's holiday calendar), and how old the
oldest is. Every active unit that receives messages is listed, with zeros, so a unit that has
caught up is visibly at 0 rather than missing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict

from hub.calendar import require_aware
from hub.directory import Directory
from hub.store.repository import (
    DayKindCounts,
    OpsAlertRecord,
    Store,
    StoredDelivery,
    UnitBacklog,
    count_by_arrival_day_kind,
)
from topics.catalogue import UnitKind
from topics.messages import Envelope

__all__ = [
    "LEVELS",
    "RECIPIENT_KINDS",
    "AlertView",
    "BacklogView",
    "DeliveryPage",
    "DeliveryView",
    "LevelCount",
    "OpsQueries",
    "Overview",
    "SummaryView",
    "UnitBacklogView",
    "age_minutes",
    "backlog_views",
    "delivery_view",
    "summarise",
]

#: Unit kinds listed in the backlog even when they have nothing unreceipted.
RECIPIENT_KINDS: Final = frozenset(
    {
        UnitKind.HEALTH_CENTRE,
        UnitKind.HOME_HEALTH_CARE,
        UnitKind.ASSESSMENT_UNIT,
        UnitKind.OTHER_MUNICIPAL,
    }
)
#: Escalation levels of an overdue delivery: 0 not escalated yet, then the ladder's 1-3.
LEVELS: Final = (0, 1, 2, 3)
_PAGE: Final = 5000

_BODY = ConfigDict(frozen=True)


class UnitBacklogView(BaseModel):
    """One unit's unreceipted deliveries: counts and the age of the oldest, no patient data."""

    model_config = _BODY

    hsa_id: str
    name: str
    kind: str | None
    municipality_code: str | None
    municipality: str | None
    unreceipted: int
    weekday: int
    weekend_or_holiday: int
    oldest_routed_at: datetime | None
    oldest_age_minutes: int | None


class BacklogView(BaseModel):
    """Every recipient unit's backlog at ``generated_at``, the largest first."""

    model_config = _BODY

    generated_at: datetime
    units: list[UnitBacklogView]


class LevelCount(BaseModel):
    """How many overdue, unacknowledged deliveries have reached an escalation level."""

    model_config = _BODY

    level: int
    count: int


class SummaryView(BaseModel):
    """Totals over every unit at ``generated_at``."""

    model_config = _BODY

    generated_at: datetime
    units_with_backlog: int
    unreceipted: int
    weekday: int
    weekend_or_holiday: int
    oldest_age_minutes: int | None
    acknowledged: int
    overdue: int
    overdue_by_level: list[LevelCount]
    open_alerts: int
    open_alerts_by_severity: dict[str, int]


class AlertView(BaseModel):
    """An open ops alert (its texts were masked for personnummer when it was raised)."""

    model_config = _BODY

    alert_id: uuid.UUID
    kind: str
    severity: str
    summary: str
    details: dict[str, str]
    raised_at: datetime


class DeliveryView(BaseModel):
    """One delivery as its own recipient unit pulls it: the secure side, with the envelope."""

    model_config = _BODY

    delivery_id: uuid.UUID
    message_type: str
    role: str
    routed_at: datetime
    due_at: datetime
    receipted_at: datetime | None
    envelope: Envelope


class DeliveryPage(BaseModel):
    """A page of a unit's deliveries, oldest first; pass ``next_since``/``next_after`` on."""

    model_config = _BODY

    unit: str
    deliveries: list[DeliveryView]
    next_since: datetime | None
    next_after: uuid.UUID | None


def age_minutes(age: timedelta) -> int:
    """Whole minutes of an age, never negative (a clock a little behind reads as 0)."""
    return max(0, int(age.total_seconds() // 60))


def delivery_view(row: StoredDelivery) -> DeliveryView:
    """The recipient's view of a stored delivery."""
    return DeliveryView(
        delivery_id=row.delivery_id,
        message_type=row.message_type,
        role=row.role,
        routed_at=row.routed_at,
        due_at=row.due_at,
        receipted_at=row.receipted_at,
        envelope=Envelope.model_validate_json(row.envelope_json),
    )


def backlog_views(
    backlogs: Iterable[UnitBacklog],
    day_kinds: Mapping[str, DayKindCounts],
    directory: Directory,
    *,
    include_empty: bool = True,
) -> list[UnitBacklogView]:
    """Per-unit rows, the most unreceipted first (then the oldest, then by name).

    With ``include_empty`` every active unit of a ``RECIPIENT_KINDS`` kind is listed, with
    zeros when it has nothing unreceipted; a unit the directory does not know is listed under
    its HSA-id.
    """
    by_unit = {backlog.unit: backlog for backlog in backlogs}
    units = set(by_unit)
    if include_empty:
        units |= {u.hsa_id for u in directory.units if u.active and u.kind in RECIPIENT_KINDS}
    rows = [_row(hsa_id, by_unit.get(hsa_id), day_kinds, directory) for hsa_id in units]
    rows.sort(key=lambda r: (-r.unreceipted, -(r.oldest_age_minutes or 0), r.name, r.hsa_id))
    return rows


def _row(
    hsa_id: str,
    backlog: UnitBacklog | None,
    day_kinds: Mapping[str, DayKindCounts],
    directory: Directory,
) -> UnitBacklogView:
    unit = directory.unit(hsa_id)
    municipality = directory.municipality(unit.municipality_code) if unit else None
    split = day_kinds.get(hsa_id, DayKindCounts())
    return UnitBacklogView(
        hsa_id=hsa_id,
        name=unit.name if unit else hsa_id,
        kind=unit.kind.value if unit else None,
        municipality_code=unit.municipality_code if unit else None,
        municipality=municipality.name if municipality else None,
        unreceipted=backlog.count if backlog else 0,
        weekday=split.weekday,
        weekend_or_holiday=split.weekend_or_holiday,
        oldest_routed_at=backlog.oldest_routed_at if backlog else None,
        oldest_age_minutes=age_minutes(backlog.oldest_age) if backlog else None,
    )


def _alert_view(alert: OpsAlertRecord) -> AlertView:
    return AlertView(
        alert_id=alert.alert_id,
        kind=alert.kind,
        severity=alert.severity,
        summary=alert.summary,
        details=dict(alert.details),
        raised_at=alert.raised_at,
    )


@dataclass(frozen=True, slots=True)
class Overview:
    """The three ops views of one instant (what the dashboard and ``/metrics`` show)."""

    backlog: BacklogView
    summary: SummaryView
    alerts: list[AlertView]


class OpsQueries:
    """The ops views over one store; the directory is read at each call (it may be reloaded)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def backlog(
        self, now: datetime, directory: Directory, *, include_empty: bool = True
    ) -> BacklogView:
        """Every recipient unit's backlog at ``now``."""
        now = require_aware(now, "now")
        backlogs = await self.store.unreceipted_by_unit(now)
        day_kinds = count_by_arrival_day_kind(await self.store.unreceipted_arrivals())
        units = backlog_views(backlogs, day_kinds, directory, include_empty=include_empty)
        return BacklogView(generated_at=now, units=units)

    async def alerts(self) -> list[AlertView]:
        """Open ops alerts, oldest first."""
        return [_alert_view(alert) for alert in await self.store.open_alerts()]

    async def overdue_by_level(self, now: datetime) -> list[LevelCount]:
        """Overdue, unacknowledged deliveries by the highest escalation level reached.

        Reads the open-and-due index page by page: cost follows the overdue deliveries.
        """
        levels: Counter[int] = Counter()
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            page = await self.store.open_deliveries_due_before(now, _PAGE, after=after)
            levels.update(row.highest_level_sent for row in page)
            if len(page) < _PAGE:
                break
            after = (page[-1].due_at, page[-1].delivery_id)
        return [LevelCount(level=level, count=levels[level]) for level in LEVELS]

    async def summary(self, now: datetime, directory: Directory) -> SummaryView:
        """Totals at ``now``: backlog, overdue by level, open alerts by severity."""
        return (await self.overview(now, directory)).summary

    async def overview(self, now: datetime, directory: Directory) -> Overview:
        """Backlog, summary and alerts at ``now``, each store query made once."""
        backlog = await self.backlog(now, directory)
        open_unacknowledged = await self.store.count_open()
        by_level = await self.overdue_by_level(now)
        alerts = await self.store.open_alerts()
        return Overview(
            backlog=backlog,
            summary=summarise(backlog.units, open_unacknowledged, by_level, alerts, now),
            alerts=[_alert_view(alert) for alert in alerts],
        )


def summarise(
    units: Sequence[UnitBacklogView],
    open_unacknowledged: int,
    by_level: Sequence[LevelCount],
    alerts: Sequence[OpsAlertRecord],
    now: datetime,
) -> SummaryView:
    """The summary of per-unit rows, the open count, the level counts and the open alerts."""
    unreceipted = sum(u.unreceipted for u in units)
    ages = [u.oldest_age_minutes for u in units if u.oldest_age_minutes is not None]
    return SummaryView(
        generated_at=now,
        units_with_backlog=sum(1 for u in units if u.unreceipted),
        unreceipted=unreceipted,
        weekday=sum(u.weekday for u in units),
        weekend_or_holiday=sum(u.weekend_or_holiday for u in units),
        oldest_age_minutes=max(ages) if ages else None,
        acknowledged=max(0, unreceipted - open_unacknowledged),
        overdue=sum(level.count for level in by_level),
        overdue_by_level=list(by_level),
        open_alerts=len(alerts),
        open_alerts_by_severity=dict(sorted(Counter(a.severity for a in alerts).items())),
    )
