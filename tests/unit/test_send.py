"""`hub send` without a broker: format detection and the files refused before publishing."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hub.settings import KafkaSettings, Settings
from producers.sdk import HubClient
from producers.send import Outcome, Rejected, SendSummary, detect_format, send_files
from topics.catalogue import MessageType
from topics.examples import example_path

ENVELOPE = example_path(MessageType.ADMISSION_NOTICE).read_bytes()
HL7 = b"MSH|^~\\&|COSMIC|SUNDERBY|HUB|NLL|20270326073000||ADT^A01|MSG00001|P|2.5\rPID|||..."
FHIR = json.dumps({"resourceType": "Encounter", "status": "in-progress"}).encode()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (ENVELOPE, "json"),
        (HL7, "hl7"),
        (b"\xef\xbb\xbf" + HL7, "hl7"),
        (b"\x0b" + HL7 + b"\x1c\r", "hl7"),
        (b"\r\n  " + HL7, "hl7"),
        (FHIR, "fhir"),
        (b"\xef\xbb\xbf  " + FHIR, "fhir"),
        (json.dumps({"resourceType": "Bundle", "entry": []}).encode(), "fhir"),
        (json.dumps({"payload": {"resourceType": "x"}}).encode(), "json"),
        (b"[]", "json"),
        (b"{ not json", "json"),
        (b"MSH^not-hl7", "json"),
        (b"", "json"),
    ],
    ids=[
        "envelope",
        "hl7",
        "hl7-bom",
        "hl7-mllp-framed",
        "hl7-leading-whitespace",
        "fhir",
        "fhir-bom",
        "fhir-bundle",
        "resource-type-not-top-level",
        "json-array",
        "broken-json",
        "msh-without-pipe",
        "empty",
    ],
)
def test_detect_format_by_content(content: bytes, expected: str) -> None:
    """HL7 starts with MSH|, FHIR is a JSON object with resourceType, the rest is JSON."""
    assert detect_format(content) == expected


def offline_client() -> HubClient:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=1000)
    )
    return HubClient(settings, attempts=1, backoff_s=0)


async def test_files_refused_before_publishing_say_why(tmp_path: Path) -> None:
    """Bad, unsupported, oversized and missing files are rejected in order, each with a reason."""
    files = {
        "truncated.json": ENVELOPE[:40],
        "bad-check-digit.json": ENVELOPE.replace(b"19121212-1212", b"19121212-1213"),
        "admit.hl7": HL7,
        "encounter.json": FHIR,
        "huge.json": b" " * (256 * 1024 + 1),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    paths = [tmp_path / name for name in files] + [tmp_path / "absent.json"]
    seen: list[Outcome] = []

    summary = await send_files(paths, offline_client(), progress=seen.append)

    assert summary == SendSummary(
        accepted=[],
        rejected=[
            # Cut inside the message_id string, which opens at line 2, column 17.
            Rejected(paths[0], "body: not JSON (line 2, column 17)"),
            Rejected(
                paths[1],
                "invalid Envelope: patient: personal_identity_number (check digit does not match)",
            ),
            Rejected(paths[2], "HL7 v2 files are not supported by hub send yet"),
            Rejected(paths[3], "FHIR files are not supported by hub send yet"),
            Rejected(paths[4], "file is 262145 bytes; at most 262144 are accepted"),
            Rejected(paths[5], "cannot read the file (No such file or directory)"),
        ],
    )
    assert seen == summary.rejected
    assert summary.ok is False


async def test_an_empty_list_sends_nothing() -> None:
    """No files: an empty, successful summary."""
    assert await send_files([], offline_client()) == SendSummary()
