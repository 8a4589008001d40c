"""JSON Schemas of the contract, generated from the pydantic models and checked in.

``topics/schemas/`` holds one schema per message type (the envelope with that type's payload,
``message_type`` fixed, ``episode_id`` required where the type needs it), ``envelope`` (all
types), and one per internal record. A unit test regenerates them and fails when the checked-in
files are stale; regenerate with ``python -m topics.schemas``. They describe validation (input)
and are what partners and the AsyncAPI document are given; the pydantic models stay the truth
(rules such as the Luhn check or "at least one field set" are not expressible in the schema).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, Field, create_model

from topics.catalogue import MessageType
from topics.codec import RECORD_TYPES
from topics.identifiers import EpisodeId
from topics.messages import (
    EPISODELESS_MESSAGE_TYPES,
    PAYLOAD_CLASSES,
    SCHEMA_VERSION,
    Envelope,
)

__all__ = ["SCHEMA_DIR", "SCHEMA_SUFFIX", "json_schemas", "write_json_schemas"]

#: Where the checked-in schemas live.
SCHEMA_DIR: Final = Path(__file__).parent / "schemas"
SCHEMA_SUFFIX: Final = ".schema.json"

_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def _envelope_model_for(message_type: MessageType) -> type[BaseModel]:
    """A subclass of ``Envelope`` whose payload is the one class of ``message_type``."""
    payload_cls = PAYLOAD_CLASSES[message_type]
    fields: dict[str, Any] = {"payload": (payload_cls, ...)}
    if message_type not in EPISODELESS_MESSAGE_TYPES:
        fields["episode_id"] = (EpisodeId, Field())
    return create_model(f"{payload_cls.__name__}Envelope", __base__=Envelope, **fields)


def _referenced_defs(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            found.add(ref.removeprefix("#/$defs/"))
        for value in node.values():
            _referenced_defs(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced_defs(value, found)


def _prune_defs(schema: dict[str, Any]) -> None:
    """Drop ``$defs`` nothing refers to (the ``MessageType`` enum once the type is a const)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    used: set[str] = set()
    _referenced_defs({k: v for k, v in schema.items() if k != "$defs"}, used)
    frontier = set(used)
    while frontier:
        newly: set[str] = set()
        for name in frontier:
            _referenced_defs(defs.get(name, {}), newly)
        frontier = newly - used
        used |= newly
    kept = {name: value for name, value in defs.items() if name in used}
    if kept:
        schema["$defs"] = kept
    else:
        schema.pop("$defs", None)


def _finish(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": _DIALECT,
        "$id": f"urn:dischargehub:topics:v{SCHEMA_VERSION}:{name}",
        **schema,
    }


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every schema by file name (``admission_notice.schema.json``, ...)."""
    schemas: dict[str, dict[str, Any]] = {}
    for message_type in MessageType:
        schema = _envelope_model_for(message_type).model_json_schema()
        schema["properties"]["message_type"] = {
            "const": message_type.value,
            "title": "Message Type",
            "type": "string",
        }
        _prune_defs(schema)
        schemas[f"{message_type.value}{SCHEMA_SUFFIX}"] = _finish(message_type.value, schema)
    schemas[f"envelope{SCHEMA_SUFFIX}"] = _finish("envelope", Envelope.model_json_schema())
    for model_cls, record_type in RECORD_TYPES.items():
        schemas[f"{record_type}{SCHEMA_SUFFIX}"] = _finish(
            record_type, model_cls.model_json_schema()
        )
    return schemas


def _render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory`` and delete stale ``*.schema.json`` files there.

    Returns the paths written, sorted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rendered = {name: _render(schema) for name, schema in json_schemas().items()}
    for stale in directory.glob(f"*{SCHEMA_SUFFIX}"):
        if stale.name not in rendered:
            stale.unlink()
    written: list[Path] = []
    for name, text in sorted(rendered.items()):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    write_json_schemas(SCHEMA_DIR)
