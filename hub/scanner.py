"""The escalation scan: find what is overdue, decide who is told, record it, publish it.

`Scanner.scan(now)` is one scan, with `now` as an argument:

1. take the scan lease (`leases` table) so that with several hub replicas exactly one scans;
2. read only the open deliveries that reach their next level at `now`
   (`hub.escalation.next_level_cutoffs`; one range of a small partial index per level sent:
   a scan with nothing new to send reads no row, whatever the backlog or history) and plan
   the digests with the pure ladder (`hub.escalation.plan_scan`);
3. resolve each digest's recipients (`escalation_message`, pure): the unit's functional mailbox,
   the on-call person of its group at `now` (the regional fallback in a roster gap, which also
   raises an ops alert), or the unit manager;
4. record the digests with their deliveries' level (outbox rows), in transactions of up to
   `RECORD_BATCH` deliveries, and publish each digest to the escalations topic as soon as its
   transaction committed, while the next batch is being recorded; once all are acknowledged by
   the broker, mark them published in one statement, then publish any digest an earlier,
   interrupted scan left unpublished.

The published message carries at most `hub.escalation.MAX_MESSAGE_IDS` delivery ids, so it stays
far below Kafka's 1 MB record limit however large the backlog; its `count` and oldest instants
are exact, its id is that of every delivery in the digest, and the store keeps every (delivery,
level) row, which is what acknowledging a digest acts on.

A crash anywhere repeats safely: a digest id is derived from (unit, level, deliveries), a level
is recorded once per delivery, and the notifier drops a digest id it has already sent.

`build_scheduler` runs the scan on APScheduler in Europe/Stockholm with `coalesce`,
`max_instances=1` and a misfire grace time, plus a daily on-call coverage check.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from hub.calendar import STOCKHOLM
from hub.clock import Clock
from hub.directory import Directory, DirectoryHistory
from hub.escalation import Digest, EscalationPolicy, next_level_cutoffs, plan_scan
from hub.logs import get_logger
from hub.oncall import OnCallConfig, gaps_within, resolve_contact
from hub.publishing import Outbox, Outgoing
from hub.store.repository import NewEscalation, Store
from topics.messages import AlertSeverity, Escalation, EscalationTarget, OpsAlert
from topics.topics import TopicName

log = get_logger(__name__)

LEASE_NAME = "escalation-scan"
#: Outbox rows published per round by `Scanner.publish_pending`.
PUBLISH_PAGE = 500
#: Digests are recorded in transactions of up to this many deliveries (a larger digest is one
#: transaction on its own). Fewer commits, since a commit writes (and on SQLite syncs) every page
#: it touched; bounded, since the transaction holds SQLite's write lock while it runs.
RECORD_BATCH = 20_000


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
        delivery_ids=digest.message_ids,
        count=digest.count,
        oldest_arrived_at=digest.oldest_arrived_at,
        oldest_due_at=digest.oldest_due_at,
        scanned_at=now,
        link=inbox_link(base_url, digest.unit),
    )
    return Addressed(escalation, used_fallback)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scan did.

    ``open_due``: open deliveries that reached their next level (those the scan read);
    ``digests``: digests planned; ``published``: digests published, including any left over by
    an earlier scan.
    """

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
        record_batch: int = RECORD_BATCH,
    ) -> None:
        self.store = store
        self.directory = directory
        self.oncall = oncall
        self.outbox = outbox
        self.policy = policy or EscalationPolicy()
        self.base_url = base_url
        self.holder = holder or f"scanner-{uuid.uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl
        self.record_batch = record_batch

    async def scan(self, now: datetime) -> ScanResult:
        """One scan at `now` (see the module docstring)."""
        if not await self.store.acquire_lease(LEASE_NAME, self.holder, now, self.lease_ttl):
            return ScanResult(leased=False)
        pending = await self.store.deliveries_due_for_next_level(
            next_level_cutoffs(now, self.policy)
        )
        digests = plan_scan(pending, now, self.policy)
        directory = self.directory.current
        alerts: list[Outgoing] = []
        sends: list[asyncio.Task[uuid.UUID]] = []
        try:
            for batch in _batches(digests, self.record_batch):
                messages = []
                for digest in batch:
                    addressed = escalation_message(
                        digest, directory, self.oncall, now, self.base_url
                    )
                    messages.append(addressed.escalation)
                    if addressed.used_fallback:
                        alerts.append(_fallback_alert(digest, now))
                recorded = await self.store.record_escalations(
                    (
                        NewEscalation.from_digest(
                            digest, scanned_at=now, payload_json=message.model_dump_json()
                        ),
                        digest.delivery_ids,
                        digest.skipped,
                    )
                    for digest, message in zip(batch, messages, strict=True)
                )
                # Committed: publish now, while the next batch is recorded. A digest recorded
                # before (a repeated scan) is left to publish_pending below.
                sends += [
                    asyncio.create_task(self._publish(message))
                    for message, result in zip(messages, recorded, strict=True)
                    if result.new
                ]
        finally:
            # Never leave a send behind: wait for every one, also when recording failed.
            outcomes = await asyncio.gather(*sends, return_exceptions=True)
        sent = [o for o in outcomes if isinstance(o, uuid.UUID)]
        await self.store.mark_escalations_published(sent, now)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            # The unsent digests stay in the outbox; the next scan publishes them.
            raise failures[0]
        published = len(sent) + await self.publish_pending(now)
        if alerts:
            await self.outbox.send_many(alerts)
        log.info(
            "escalation.scanned",
            open_due=len(pending),
            digests=len(digests),
            published=published,
        )
        return ScanResult(True, len(pending), len(digests), published)

    async def _publish(self, escalation: Escalation) -> uuid.UUID:
        await self.outbox.send(TopicName.ESCALATIONS, escalation, escalation.unit)
        return escalation.escalation_id

    async def publish_pending(self, now: datetime) -> int:
        """Publish every recorded but unpublished digest (the outbox), then mark it published."""
        count = 0
        while rows := await self.store.unpublished_escalations(limit=PUBLISH_PAGE):
            escalations = [Escalation.model_validate_json(row.payload_json) for row in rows]
            await self.outbox.send_many(
                Outgoing(TopicName.ESCALATIONS, e, e.unit) for e in escalations
            )
            await self.store.mark_escalations_published([row.escalation_id for row in rows], now)
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


def _batches(digests: Sequence[Digest], limit: int) -> Iterator[list[Digest]]:
    """Consecutive digests, grouped while their deliveries add up to at most ``limit``."""
    batch: list[Digest] = []
    size = 0
    for digest in digests:
        if batch and size + digest.count > limit:
            yield batch
            batch, size = [], 0
        batch.append(digest)
        size += digest.count
    if batch:
        yield batch


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
