"""Envelopes for tests, built from the checked-in examples (one coherent Luleå episode)."""

from __future__ import annotations

import uuid
from typing import Any

from topics.catalogue import MessageType
from topics.examples import load_example
from topics.messages import Envelope


def make_envelope(message_type: MessageType, **overrides: Any) -> Envelope:
    """The example of a type with fresh ids (or the given overrides) and payload changes."""
    example = load_example(message_type)
    data = example.model_dump(mode="json")
    payload = overrides.pop("payload", None)
    data["message_id"] = str(overrides.pop("message_id", uuid.uuid4()))
    data.update({k: str(v) if isinstance(v, uuid.UUID) else v for k, v in overrides.items()})
    if payload:
        data["payload"] = {**data["payload"], **payload}
    return Envelope.model_validate(data)
