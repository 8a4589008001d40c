"""``/metrics``: the ops views in the Prometheus text format (prometheus-client).

Built per scrape from a snapshot of the views, in a registry of its own (no process-global
registry, no state between scrapes), so every replica answers the same figures from the store.
Labels are unit HSA-ids, unit kinds, municipality codes, levels, alert kinds and severities:
nothing about a patient.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from hub.ops.views import AlertView, BacklogView, SummaryView

__all__ = ["CONTENT_TYPE", "MetricsSnapshot", "render_metrics"]

#: The classic text format (0.0.4) that every Prometheus scrapes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything one scrape reports; ``dead_letters`` is None when it could not be read."""

    backlog: BacklogView
    summary: SummaryView
    alerts: Sequence[AlertView]
    dead_letters: int | None


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        unreceipted = GaugeMetricFamily(
            "hub_unreceipted_deliveries",
            "Unreceipted deliveries per recipient unit.",
            labels=["unit", "kind", "municipality"],
        )
        by_day = GaugeMetricFamily(
            "hub_unreceipted_deliveries_by_arrival_day",
            "Unreceipted deliveries per unit by the kind of Stockholm day they arrived on.",
            labels=["unit", "day_kind"],
        )
        oldest = GaugeMetricFamily(
            "hub_unreceipted_oldest_age_seconds",
            "Age of the oldest unreceipted delivery per unit (units with a backlog only).",
            labels=["unit"],
        )
        for row in snapshot.backlog.units:
            unreceipted.add_metric(
                [row.hsa_id, row.kind or "unknown", row.municipality_code or ""], row.unreceipted
            )
            by_day.add_metric([row.hsa_id, "weekday"], row.weekday)
            by_day.add_metric([row.hsa_id, "weekend_or_holiday"], row.weekend_or_holiday)
            if row.oldest_routed_at is not None:
                age_s = (snapshot.backlog.generated_at - row.oldest_routed_at).total_seconds()
                oldest.add_metric([row.hsa_id], max(0.0, age_s))
        yield unreceipted
        yield by_day
        yield oldest

        overdue = GaugeMetricFamily(
            "hub_overdue_deliveries",
            "Overdue, unacknowledged deliveries by the highest escalation level reached "
            "(0: not escalated yet).",
            labels=["level"],
        )
        for level in snapshot.summary.overdue_by_level:
            overdue.add_metric([str(level.level)], level.count)
        yield overdue
        yield GaugeMetricFamily(
            "hub_acknowledged_unreceipted_deliveries",
            "Unreceipted deliveries whose escalation on-call staff acknowledged.",
            value=snapshot.summary.acknowledged,
        )

        alerts = GaugeMetricFamily(
            "hub_open_alerts", "Open ops alerts by kind and severity.", labels=["kind", "severity"]
        )
        for (kind, severity), count in sorted(
            Counter((a.kind, a.severity) for a in snapshot.alerts).items()
        ):
            alerts.add_metric([kind, severity], count)
        yield alerts

        if snapshot.dead_letters is not None:
            yield GaugeMetricFamily(
                "hub_dead_letters",
                "Records held on the dead-letter topic (refused input, kept for ever).",
                value=snapshot.dead_letters,
            )
        yield GaugeMetricFamily(
            "hub_dead_letters_known",
            "1 when the dead-letter count could be read from the broker in this scrape.",
            value=0 if snapshot.dead_letters is None else 1,
        )


def render_metrics(snapshot: MetricsSnapshot) -> bytes:
    """The Prometheus text exposition of ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
