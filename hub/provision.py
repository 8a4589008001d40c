"""Create the hub's topics when missing; report, never silently change, topics that differ.

A topic whose partition count or configuration differs from ``topics.topics`` is listed in the
report with the expected and actual values. Changing a live topic (fewer partitions is
impossible, more partitions moves keys) is an operator's decision, not a start-up side effect.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from hub.settings import Settings
from topics.topics import TOPICS, TopicSpec


@dataclass(frozen=True, slots=True)
class Difference:
    """One setting of an existing topic that is not what the contract says."""

    topic: str
    setting: str
    expected: str
    actual: str


@dataclass(slots=True)
class ProvisionReport:
    """What `ensure_topics` found and did."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def _new_topic(spec: TopicSpec, settings: Settings) -> NewTopic:
    return NewTopic(
        settings.topic(spec.name),
        spec.partitions,
        settings.kafka.replication_factor,
        topic_configs=spec.configs(settings.kafka.min_insync_replicas),
    )


async def ensure_topics(
    settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS
) -> ProvisionReport:
    """Create every missing topic of the contract and compare the existing ones."""
    report = ProvisionReport()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        request_timeout_ms=settings.kafka.request_timeout_ms,
        client_id=f"{settings.kafka.client_id}-provision",
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if settings.topic(s.name) not in existing]
        if missing:
            # Another process may create them between our list and create: compare next time.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([_new_topic(s, settings) for s in missing])
            report.created.extend(settings.topic(s.name) for s in missing)
            await _wait_for_leaders(admin, [settings.topic(s.name) for s in missing])
        present = [s for s in specs if settings.topic(s.name) in existing]
        if present:
            report.differences.extend(await _compare(admin, present, settings))
            differing = {d.topic for d in report.differences}
            report.unchanged.extend(
                settings.topic(s.name) for s in present if settings.topic(s.name) not in differing
            )
    finally:
        await admin.close()
    return report


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30
) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            described = await admin.describe_topics(names)
            if all(
                t.get("partitions") and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.1)


async def _compare(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], settings: Settings
) -> list[Difference]:
    names = [settings.topic(s.name) for s in specs]
    described = {t["topic"]: t for t in await admin.describe_topics(names)}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    responses = await admin.describe_configs(resources)
    actual_configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            # (error_code, error_message, resource_type, resource_name, configs)
            name, entries = resource[3], resource[4]
            actual_configs[name] = {entry[0]: entry[1] for entry in entries}
    differences: list[Difference] = []
    for spec in specs:
        name = settings.topic(spec.name)
        partitions = len(described.get(name, {}).get("partitions", []))
        if partitions != spec.partitions:
            differences.append(
                Difference(name, "partitions", str(spec.partitions), str(partitions))
            )
        replicas = {len(p["replicas"]) for p in described.get(name, {}).get("partitions", [])}
        if replicas and replicas != {settings.kafka.replication_factor}:
            differences.append(
                Difference(
                    name,
                    "replication.factor",
                    str(settings.kafka.replication_factor),
                    ",".join(str(r) for r in sorted(replicas)),
                )
            )
        actual = actual_configs.get(name, {})
        for key, expected in spec.configs(settings.kafka.min_insync_replicas).items():
            if actual.get(key) != expected:
                differences.append(Difference(name, key, expected, str(actual.get(key))))
    return differences
