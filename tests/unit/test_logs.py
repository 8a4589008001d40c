"""Logging: one chain for structlog and stdlib records, with personnummer masked everywhere."""

from __future__ import annotations

import io
import json
import logging

import structlog

from hub.logs import configure_logging, get_logger, redact_identity_numbers
from topics.identifiers import contains_identity_number

PNR_12 = "19121212-1212"  # Skatteverket's classic test number, Luhn-valid
PNR_10 = "121212-1212"
SAMORDNING = "19701063-2391"  # day 63 = 3 + 60


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_processor_masks_keys_values_and_nested_structures() -> None:
    """Every Luhn-valid personnummer in keys, values, lists and dicts becomes a mask."""
    event = {
        "event": f"patient {PNR_12} admitted",
        "nested": {"pnr": PNR_10, "list": [SAMORDNING, "fine"], PNR_12: "as a key"},
        "count": 3,
        "hsa": "SE2321000230-SYNHCHERTSO",
    }
    redacted = redact_identity_numbers(None, "info", event)
    text = json.dumps(redacted)
    assert not contains_identity_number(text)
    assert redacted["count"] == 3
    assert redacted["hsa"] == "SE2321000230-SYNHCHERTSO"  # organisation numbers are not masked


def test_processor_is_idempotent() -> None:
    """Redacting twice gives the same event as redacting once."""
    event = {"event": "x", "a": f"{PNR_12} and {PNR_10}"}
    once = redact_identity_numbers(None, "info", dict(event))
    assert redact_identity_numbers(None, "info", dict(once)) == once


def test_structlog_and_stdlib_records_come_out_redacted_as_json() -> None:
    """A structlog event, a stdlib record and a traceback all reach the stream without a number."""
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    get_logger("hub.test").info("router.routed", detail=f"for {PNR_12}")
    logging.getLogger("aiokafka.test").warning("library says %s", PNR_10)
    try:
        msg = f"bad patient {SAMORDNING}"
        raise ValueError(msg)  # noqa: TRY301 - raised to be logged
    except ValueError:
        get_logger("hub.test").exception("consume.failed")
    lines = _lines(stream)
    assert [line["event"] for line in lines][:2] == [
        "router.routed",
        "library says [personnummer]",
    ]
    assert not contains_identity_number(stream.getvalue())
    assert all("timestamp" in line for line in lines)


def test_faststream_loggers_go_through_the_same_chain() -> None:
    """FastStream's own logger no longer prints on its own handler; its records are redacted."""
    import faststream  # noqa: F401, PLC0415 - creates FastStream's module-level logger

    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    own = logging.getLogger("faststream")
    assert own.handlers == []
    own.warning("consumer for %s", PNR_12)
    assert _lines(stream)[-1]["event"] == "consumer for [personnummer]"
    structlog.reset_defaults()
