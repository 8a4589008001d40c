"""Every Kafka topic of the hub: name, key, partitions and retention. Nothing else names a topic.

Names are versioned (``.v1``): an incompatible change of a topic's key or records is a new topic,
so old and new consumers can run side by side during a migration. The replication factor and
``min.insync.replicas`` are per environment (``Settings.kafka``), not per topic: 3 and 2 in
production, 1 and 1 on a local single node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

DAY_MS = 24 * 60 * 60 * 1000


class TopicName(StrEnum):
    """The contract names of the hub's topics (without an environment prefix)."""

    CARE_EPISODE_EVENTS = "care-episode-events.v1"
    DELIVERIES = "deliveries.v1"
    RECEIPTS = "receipts.v1"
    ESCALATIONS = "escalations.v1"
    DEAD_LETTER = "dead-letter.v1"
    OPS_ALERTS = "ops-alerts.v1"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: what its key is, how it is split and how long it keeps records."""

    name: TopicName
    key: str
    partitions: int
    retention_ms: int  # -1 keeps records for ever
    description: str
    cleanup_policy: str = "delete"
    extra_configs: dict[str, str] = field(default_factory=dict)

    def configs(self, min_insync_replicas: int) -> dict[str, str]:
        """The topic-level configuration the broker should hold for this topic."""
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(min_insync_replicas),
            **self.extra_configs,
        }


# Source-of-truth topics keep 400 days, so the store can be rebuilt by replaying them and a year
# of figures can be recomputed. Dead letters are kept until someone has looked at them.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        TopicName.CARE_EPISODE_EVENTS,
        key="episode_id (message_id for messages outside an episode): order per stay",
        partitions=6,
        retention_ms=400 * DAY_MS,
        description="Messages from journal systems as validated envelopes (Envelope).",
    ),
    TopicSpec(
        TopicName.DELIVERIES,
        key="recipient unit HSA-id: each unit's inbox in order",
        partitions=6,
        retention_ms=400 * DAY_MS,
        description="One record per (message, recipient unit) (topics.messages.Delivery).",
    ),
    TopicSpec(
        TopicName.RECEIPTS,
        key="recipient unit HSA-id",
        partitions=6,
        retention_ms=400 * DAY_MS,
        description="Receipts (kvittenser) from recipient units (topics.messages.Receipt).",
    ),
    TopicSpec(
        TopicName.ESCALATIONS,
        key="unit HSA-id",
        partitions=3,
        retention_ms=90 * DAY_MS,
        description="Escalation digests for the notifier (topics.messages.Escalation).",
    ),
    TopicSpec(
        TopicName.DEAD_LETTER,
        key="the original record's key",
        partitions=1,
        retention_ms=-1,
        description="Refused input with the reason (topics.messages.DeadLetter).",
    ),
    TopicSpec(
        TopicName.OPS_ALERTS,
        key="alert kind",
        partitions=1,
        retention_ms=30 * DAY_MS,
        description="Operations alerts: unroutable messages, roster gaps (OpsAlert).",
    ),
)

SPECS: dict[TopicName, TopicSpec] = {spec.name: spec for spec in TOPICS}
