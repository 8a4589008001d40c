"""The escalation scan: find what is overdue, decide who is told, record it, publish it.

`Scanner.scan(now)` is one scan, with `now` as an argument:

1. take the scan lease (`leases` table) so that with several hub replicas exactly one scans;
2. read the open deliveries due by `now` (the partial index: cost follows open deliveries,
   not history) and plan the digests with the pure ladder (`hub.escalation.plan_scan`);
3. resolve each digest's recipients (`escalation_message`, pure): the unit's functional mailbox,
   the on-call person of its group at `now` (the regional fallback in a roster gap, which also
   raises an ops alert), or the unit manager;
4. record each digest with its deliveries' level in one transaction (outbox row), then publish
   every unpublished digest to the escalations topic and mark it published.

A crash anywhere repeats safely: a digest id is derived from (unit, level, deliveries), a level
is recorded once per delivery, and the notifier drops a digest id it has already sent.

`build_scheduler` runs the scan on APScheduler in Europe/Stockholm with `coalesce`,
`max_instances=1` and a misfire grace time, plus a daily on-call coverage check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from hub.calendar import STOCKHOLM
from hub.clock import Clock
from hub.directory import Directory, DirectoryHistory
from hub.escalation import Digest, EscalationPolicy, PendingDelivery, plan_scan
from hub.logs import get_logger
from hub.oncall import OnCallConfig, gaps_within, resolve_contact
from hub.publishing import Outbox, Outgoing
from hub.store.repository import NewEscalation, Store
from topics.messages import AlertSeverity, Escalation, EscalationTarget, OpsAlert
from topics.topics import TopicName

log = get_logger(__name__)

LEASE_NAME = "escalation-scan"
PAGE = 5000


@dataclass(frozen=True, slots=True)
class Addressed:
    """A digest turned into the message for the notifier, and whether a fallback was used."""

    escalation: Escalation
    used_fallback: bool


def inbox_link(base_url: str, unit: str) -> str:
    """The sign-in link to a unit's inbox: names the unit only."""
    return f"{base_url.rstrip('/')}/enheter/{quote(unit)}/inkorg"


def escalation_message(
    digest: Digest, directory: Directory, oncall: OnCallConfig, now: datetime, base_url: str
) -> Addressed:
    """The escalation to publish for a planned digest (pure: `now` is an argument)."""
    unit = directory.unit(digest.unit)
    fallback = oncall.regional_fallback
    recipients: list[str] = []
    used_fallback = False
    if unit is None:
        recipients, used_fallback = [fallback.email], True
    elif digest.target is EscalationTarget.UNIT_MAILBOX:
        recipients = [unit.functional_mailbox, *([unit.webhook_url] if unit.webhook_url else [])]
    elif digest.target is EscalationTarget.ON_CALL:
        person, used_fallback = resolve_contact(oncall.rosters, unit.on_call_group, now, fallback)
        recipients = [person.email]
    else:
        recipients = [unit.manager_email]
    escalation = Escalation(
        escalation_id=digest.escalation_id,
        unit=digest.unit,
        unit_name=unit.name if unit else digest.unit,
        level=digest.level,
        target=digest.target,
        recipients=tuple(recipients),
        delivery_ids=digest.delivery_ids,
        count=digest.count,
        oldest_arrived_at=digest.oldest_arrived_at,
        oldest_due_at=digest.oldest_due_at,
        scanned_at=now,
        link=inbox_link(base_url, digest.unit),
    )
    return Addressed(escalation, used_fallback)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scan did."""

    leased: bool
    open_due: int = 0
    digests: int = 0
    published: int = 0


class Scanner:
    """Runs escalation scans against the store and publishes digests."""

    def __init__(
        self,
        store: Store,
        directory: DirectoryHistory,
        oncall: OnCallConfig,
        outbox: Outbox,
        *,
        policy: EscalationPolicy | None = None,
        base_url: str,
        holder: str | None = None,
        lease_ttl: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.directory = directory
        self.oncall = oncall
        self.outbox = outbox
        self.policy = policy or EscalationPolicy()
        self.base_url = base_url
        self.holder = holder or f"scanner-{uuid.uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl

    async def scan(self, now: datetime) -> ScanResult:
        """One scan at `now` (see the module docstring)."""
        if not await self.store.acquire_lease(LEASE_NAME, self.holder, now, self.lease_ttl):
            return ScanResult(leased=False)
        pending: list[PendingDelivery] = []
        after = None
        while True:
            page = await self.store.open_deliveries_due_before(
                now, PAGE, after=after, below_level=self.policy.top_level
            )
            pending.extend(row.as_pending() for row in page)
            if len(page) < PAGE:
                break
            after = (page[-1].due_at, page[-1].delivery_id)
        digests = plan_scan(pending, now, self.policy)
        directory = self.directory.current
        alerts: list[Outgoing] = []
        for digest in digests:
            addressed = escalation_message(digest, directory, self.oncall, now, self.base_url)
            await self.store.record_escalation(
                NewEscalation.from_digest(
                    digest, scanned_at=now, payload_json=addressed.escalation.model_dump_json()
                ),
                digest.delivery_ids,
                skipped=digest.skipped,
            )
            if addressed.used_fallback:
                alerts.append(_fallback_alert(digest, now))
        published = await self.publish_pending(now)
        if alerts:
            await self.outbox.send_many(alerts)
        log.info(
            "escalation.scanned",
            open_due=len(pending),
            digests=len(digests),
            published=published,
        )
        return ScanResult(True, len(pending), len(digests), published)

    async def publish_pending(self, now: datetime) -> int:
        """Publish every recorded but unpublished digest (the outbox), then mark it published."""
        count = 0
        while rows := await self.store.unpublished_escalations(limit=500):
            escalations = [Escalation.model_validate_json(row.payload_json) for row in rows]
            await self.outbox.send_many(
                Outgoing(TopicName.ESCALATIONS, e, e.unit) for e in escalations
            )
            for row in rows:
                await self.store.mark_escalation_published(row.escalation_id, now)
            count += len(rows)
        return count

    async def check_coverage(self, now: datetime, days: int = 14) -> int:
        """Raise an ops alert for every on-call gap within `days`; returns how many groups."""
        gaps = gaps_within(self.oncall.rosters, now, days)
        alerts = [
            Outgoing(
                TopicName.OPS_ALERTS,
                OpsAlert(
                    alert_id=uuid.uuid5(
                        uuid.NAMESPACE_URL,
                        f"oncall-gap:{group}:{group_gaps[0].start_utc.isoformat()}",
                    ),
                    kind="oncall.gap",
                    severity=AlertSeverity.WARNING,
                    summary=f"Jourschemat {group} saknar bemanning ({len(group_gaps)} luckor)",
                    raised_at=now,
                    details={
                        "group": group,
                        "first_gap_start": group_gaps[0].start_utc.isoformat(),
                        "first_gap_end": group_gaps[0].end_utc.isoformat(),
                        "holidays": ", ".join(group_gaps[0].holidays),
                    },
                ),
                "oncall.gap",
            )
            for group, group_gaps in sorted(gaps.items())
        ]
        await self.outbox.send_many(alerts)
        return len(alerts)


def _fallback_alert(digest: Digest, now: datetime) -> Outgoing:
    return Outgoing(
        TopicName.OPS_ALERTS,
        OpsAlert(
            alert_id=uuid.uuid5(uuid.NAMESPACE_URL, f"escalation-fallback:{digest.escalation_id}"),
            kind="escalation.fallback_used",
            severity=AlertSeverity.WARNING,
            summary="Ingen i jour: eskaleringen gick till regional reserv",
            raised_at=now,
            details={"unit": digest.unit, "level": str(digest.level)},
        ),
        "escalation.fallback_used",
    )


def build_scheduler(
    scanner: Scanner, clock: Clock, *, interval_s: float = 60.0
) -> AsyncIOScheduler:
    """APScheduler running the scan every `interval_s` and the coverage check daily at 07:00."""
    scheduler = AsyncIOScheduler(timezone=STOCKHOLM)

    async def scan_job() -> None:
        await scanner.scan(clock.now())

    async def coverage_job() -> None:
        await scanner.check_coverage(clock.now())

    scheduler.add_job(
        scan_job,
        IntervalTrigger(seconds=interval_s, timezone=STOCKHOLM),
        id="escalation-scan",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=int(max(1, interval_s)),
    )
    scheduler.add_job(
        coverage_job,
        CronTrigger(hour=7, minute=0, timezone=STOCKHOLM),
        id="oncall-coverage",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    return scheduler
