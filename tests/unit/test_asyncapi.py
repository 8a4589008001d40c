"""The checked-in AsyncAPI document is the one the contract generates."""

from __future__ import annotations

from hub.asyncapi import DOCUMENT, RECORDS, render, specification
from topics.topics import TOPICS


def test_checked_in_document_is_current() -> None:
    """docs/asyncapi.json equals a fresh render (run `python -m hub.asyncapi` after a change)."""
    assert DOCUMENT.read_text(encoding="utf-8") == render()


def test_every_topic_has_a_channel_and_a_record_schema() -> None:
    """Each contract topic appears as a channel, and each record model as a schema."""
    document = specification()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {spec.name.value for spec in TOPICS}
    schemas = set(document["components"]["schemas"])
    assert {model.__name__ for model in RECORDS.values()} <= schemas
