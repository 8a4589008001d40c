"""One valid example envelope per message type, as it travels on the wire.

The patient numbers are Skatteverket's well-known test numbers and the HSA-ids are synthetic
(``SE2321000230-SYN1`` ...), so the examples can be copied into tests, docs and simulators.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from topics.catalogue import MessageType
from topics.messages import Envelope

__all__ = ["EXAMPLE_DIR", "example_path", "load_example"]

EXAMPLE_DIR: Final = Path(__file__).parent


def example_path(message_type: MessageType) -> Path:
    """The example file of ``message_type``."""
    return EXAMPLE_DIR / f"{message_type.value}.json"


def load_example(message_type: MessageType) -> Envelope:
    """The example envelope of ``message_type``, validated."""
    return Envelope.model_validate_json(example_path(message_type).read_bytes())
