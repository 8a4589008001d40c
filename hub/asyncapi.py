"""The AsyncAPI document of the hub's topics, generated from the contract (`topics/`).

Each topic of `topics.topics.TOPICS` is described with its key, partitions, retention and the
pydantic model of its records, through FastStream's AsyncAPI generator. The checked-in
`docs/asyncapi.json` is written by `python -m hub.asyncapi`; a test fails when it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from topics.messages import (
    SCHEMA_VERSION,
    DeadLetter,
    Delivery,
    Envelope,
    Escalation,
    OpsAlert,
    Receipt,
)
from topics.topics import TOPICS, TopicName

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"

#: The record model on each topic.
RECORDS: dict[TopicName, type[BaseModel]] = {
    TopicName.CARE_EPISODE_EVENTS: Envelope,
    TopicName.DELIVERIES: Delivery,
    TopicName.RECEIPTS: Receipt,
    TopicName.ESCALATIONS: Escalation,
    TopicName.DEAD_LETTER: DeadLetter,
    TopicName.OPS_ALERTS: OpsAlert,
}


def specification() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a dict (no broker connection is made)."""
    broker = KafkaBroker("kafka.example:9092", description="The hub's Kafka cluster")
    for spec in TOPICS:
        retention = (
            "kept for ever" if spec.retention_ms < 0 else f"{spec.retention_ms // 86_400_000} days"
        )
        broker.publisher(
            spec.name.value,
            title=spec.name.value,
            description=(
                f"{spec.description} Key: {spec.key}. {spec.partitions} partitions, "
                f"{retention}. Headers: schema-version={SCHEMA_VERSION}, message-type."
            ),
            schema=RECORDS[spec.name],
        )
    document = AsyncAPI(
        broker,
        title="Samordnad utskrivning – discharge-planning hub",
        version=f"schema {SCHEMA_VERSION}",
        description="Topics and records of the hub; see docs/contract.md for the evolution rule.",
    ).to_specification()
    result: dict[str, Any] = json.loads(document.to_json())
    return result


def render() -> str:
    """The document as the checked-in JSON text."""
    return json.dumps(specification(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main() -> None:
    """Write docs/asyncapi.json."""
    DOCUMENT.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
