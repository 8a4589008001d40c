"""The checked-in JSON Schemas match the models, and say what the models require."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from topics.catalogue import MessageType
from topics.examples import example_path
from topics.messages import EPISODELESS_MESSAGE_TYPES, PAYLOAD_CLASSES
from topics.schemas import SCHEMA_DIR, SCHEMA_SUFFIX, json_schemas, write_json_schemas

EXPECTED_FILES = sorted(
    [f"{m.value}{SCHEMA_SUFFIX}" for m in MessageType]
    + [
        f"{name}{SCHEMA_SUFFIX}"
        for name in ("envelope", "delivery", "receipt", "escalation", "dead_letter", "ops_alert")
    ]
)


def read_dir(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.json"))}


def test_checked_in_schemas_are_current(tmp_path: Path) -> None:
    """Regenerating the schemas changes nothing; if this fails run python -m topics.schemas."""
    write_json_schemas(tmp_path)
    assert read_dir(SCHEMA_DIR) == read_dir(tmp_path)


def test_write_json_schemas_writes_every_file_and_removes_stale_ones(tmp_path: Path) -> None:
    """One file per message type plus the envelope and internal records; old files go."""
    (tmp_path / f"retired{SCHEMA_SUFFIX}").write_text("{}", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("kept", encoding="utf-8")
    written = write_json_schemas(tmp_path)
    assert [p.name for p in written] == EXPECTED_FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*EXPECTED_FILES, "notes.txt"])


@functools.cache
def generated() -> dict[str, dict[str, Any]]:
    """Generating takes a moment; the result is read-only data, so generate once per run."""
    return json_schemas()


def schema_of(message_type: MessageType) -> dict[str, Any]:
    return generated()[f"{message_type.value}{SCHEMA_SUFFIX}"]


@pytest.mark.parametrize("message_type", list(MessageType))
def test_type_schema_fixes_type_and_payload(message_type: MessageType) -> None:
    """A type's schema pins message_type and refers to that type's payload only."""
    schema = schema_of(message_type)
    payload_name = PAYLOAD_CLASSES[message_type].__name__
    assert schema["properties"]["message_type"]["const"] == message_type.value
    assert schema["properties"]["payload"] == {"$ref": f"#/$defs/{payload_name}"}
    assert schema["$defs"][payload_name]["required"][0] == "kind"
    assert schema["$defs"][payload_name]["additionalProperties"] is False
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("message_type", list(MessageType))
def test_type_schema_requires_episode_where_the_model_does(message_type: MessageType) -> None:
    """episode_id is required in the schema exactly when the model requires it."""
    required = schema_of(message_type)["required"]
    assert ("episode_id" in required) == (message_type not in EPISODELESS_MESSAGE_TYPES)


@pytest.mark.parametrize("message_type", list(MessageType))
def test_examples_have_the_shape_their_schema_describes(message_type: MessageType) -> None:
    """Each example has every required property and no property the schema does not list."""
    schema = schema_of(message_type)
    example = json.loads(example_path(message_type).read_text(encoding="utf-8"))
    payload_schema = schema["$defs"][PAYLOAD_CLASSES[message_type].__name__]
    for document, part in ((example, schema), (example["payload"], payload_schema)):
        assert set(part["required"]) <= set(document)
        assert set(document) <= set(part["properties"])


def test_envelope_schema_discriminates_payloads_by_kind() -> None:
    """The all-types schema maps every kind to its payload class."""
    payload = generated()[f"envelope{SCHEMA_SUFFIX}"]["properties"]["payload"]
    assert payload["discriminator"]["propertyName"] == "kind"
    assert payload["discriminator"]["mapping"] == {
        m.value: f"#/$defs/{cls.__name__}" for m, cls in PAYLOAD_CLASSES.items()
    }


def test_escalation_schema_has_no_patient_property() -> None:
    """The schema given to notification channels has no patient field."""
    properties = generated()[f"escalation{SCHEMA_SUFFIX}"]["properties"]
    assert "patient" not in properties
    assert properties["recipients"]["minItems"] == 1
