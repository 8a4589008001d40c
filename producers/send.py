"""``hub send FILE...``: publish message files through the SDK, with a summary of what happened.

Each file holds one message; its format is detected from its content, not its name
(``detect_format``): an HL7 v2 message starts with ``MSH|``, a FHIR resource is a JSON object
with ``resourceType``, anything else is read as one envelope (JSON object). HL7 and FHIR files
need a converter (``producers.hl7`` / ``producers.fhir``, passed in ``converters``); without
one they are rejected as not supported yet.

Order: every file is read and validated first; then messages with the same Kafka key (the
episode) are published one after another in the order the files were given, while different
episodes go out concurrently (``concurrency``). So an admission given before a discharge for
the same stay reaches the topic first. If Kafka becomes unavailable, the files not yet sent are
rejected with that reason instead of each waiting out its own retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, NamedTuple

from hub.calendar import STOCKHOLM
from hub.clock import Clock, SystemClock
from hub.errors import HubError, ValidationFailed
from producers.apikeys import DEFAULT_MAX_BODY_BYTES
from producers.sdk import BrokerUnavailable, HubClient, PublishReceipt, parse_envelope
from topics.codec import parse_json
from topics.messages import Envelope

__all__ = [
    "Accepted",
    "Converter",
    "FileFormat",
    "Outcome",
    "Rejected",
    "SendSummary",
    "detect_format",
    "send_files",
]

FileFormat = Literal["json", "hl7", "fhir"]

#: Turns the bytes of an HL7 or FHIR file into the envelopes it stands for; raises a
#: ``HubError`` (``ValidationFailed``, ...) whose message says why it cannot.
Converter = Callable[[bytes], Sequence[Envelope]]

_BOM: Final = b"\xef\xbb\xbf"
_MLLP_START: Final = b"\x0b"
_FORMAT_NAMES: Final[Mapping[FileFormat, str]] = {
    "json": "JSON",
    "hl7": "HL7 v2",
    "fhir": "FHIR",
}


class Accepted(NamedTuple):
    """A message from ``path`` that the broker acknowledged."""

    path: Path
    receipt: PublishReceipt


class Rejected(NamedTuple):
    """A file (or one message of it) that was not published, and why."""

    path: Path
    reason: str


Outcome = Accepted | Rejected


@dataclass(frozen=True, slots=True)
class SendSummary:
    """What ``send_files`` did: accepted messages and rejected files, each in input order."""

    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every file was published."""
        return not self.rejected


def detect_format(content: bytes) -> FileFormat:
    """What a file holds, from its first bytes: ``hl7``, ``fhir`` or (anything else) ``json``.

    A UTF-8 byte-order mark, leading whitespace and an MLLP start byte are skipped.
    """
    head = content.removeprefix(_BOM).lstrip().removeprefix(_MLLP_START)
    if head.startswith(b"MSH|"):
        return "hl7"
    if head.startswith(b"{"):
        try:
            parsed = parse_json(content.removeprefix(_BOM))
        except HubError:
            return "json"  # the JSON reader will say what is wrong with it
        if isinstance(parsed, dict) and "resourceType" in parsed:
            return "fhir"
    return "json"


@dataclass(frozen=True, slots=True)
class _Ready:
    index: int
    path: Path
    envelope: Envelope

    @property
    def key(self) -> str:
        return self.envelope.episode_id or str(self.envelope.message_id)


async def send_files(
    paths: Iterable[Path],
    client: HubClient,
    *,
    progress: Callable[[Outcome], None] | None = None,
    converters: Mapping[FileFormat, Converter] | None = None,
    concurrency: int = 8,
    max_file_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> SendSummary:
    """Publish every message file in ``paths``; ``progress`` is called once per outcome.

    Never raises for a bad file or an unavailable broker: those become ``Rejected`` entries.
    """
    if concurrency < 1:
        msg = "concurrency must be at least 1"
        raise ValueError(msg)
    outcomes: dict[int, list[Outcome]] = {}
    ready: list[_Ready] = []

    def record(index: int, outcome: Outcome) -> None:
        outcomes.setdefault(index, []).append(outcome)
        if progress is not None:
            progress(outcome)

    for index, path in enumerate(paths):
        try:
            envelopes = await asyncio.to_thread(_read, path, converters or {}, max_file_bytes)
        except HubError as exc:
            record(index, Rejected(path, str(exc)))
            continue
        ready.extend(_Ready(index, path, envelope) for envelope in envelopes)

    by_key: dict[str, list[_Ready]] = {}
    for item in ready:
        by_key.setdefault(item.key, []).append(item)

    slots = asyncio.Semaphore(concurrency)
    broker_down: list[str] = []

    async def publish_in_order(items: list[_Ready]) -> None:
        async with slots:
            for item in items:
                if broker_down:
                    record(item.index, Rejected(item.path, f"not sent: {broker_down[0]}"))
                    continue
                try:
                    receipt = await client.publish(item.envelope)
                except BrokerUnavailable as exc:
                    broker_down.append(str(exc))
                    record(item.index, Rejected(item.path, str(exc)))
                except HubError as exc:
                    record(item.index, Rejected(item.path, str(exc)))
                else:
                    record(item.index, Accepted(item.path, receipt))

    async with asyncio.TaskGroup() as group:
        for items in by_key.values():
            group.create_task(publish_in_order(items))

    summary = SendSummary()
    for index in sorted(outcomes):
        for outcome in outcomes[index]:
            if isinstance(outcome, Accepted):
                summary.accepted.append(outcome)
            else:
                summary.rejected.append(outcome)
    return summary


class _FileRefused(HubError):
    """A file that cannot be sent for a reason outside its content (size, unreadable)."""


def _read(
    path: Path, converters: Mapping[FileFormat, Converter], max_bytes: int
) -> Sequence[Envelope]:
    """The envelopes in one file (runs in a worker thread: file reads block)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            msg = f"file is {size} bytes; at most {max_bytes} are accepted"
            raise _FileRefused(msg)
        content = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read the file ({exc.strerror})"
        raise _FileRefused(msg) from exc
    if len(content) > max_bytes:  # it grew after stat
        msg = f"file is over {max_bytes} bytes"
        raise _FileRefused(msg)
    file_format = detect_format(content)
    if file_format == "json":
        return [parse_envelope(content.removeprefix(_BOM))]
    converter = converters.get(file_format)
    if converter is None:
        msg = f"{_FORMAT_NAMES[file_format]} files are not supported by hub send yet"
        raise _FileRefused(msg)
    return converter(content)


def default_converters(clock: Clock | None = None) -> dict[FileFormat, Converter]:
    """HL7 v2 ADT and FHIR R4 files converted by the hub's own adapters (`hub send`)."""
    from producers.fhir import fhir_to_envelopes  # noqa: PLC0415 - heavy models, load on use
    from producers.hl7 import adt_to_envelopes, parse_adt  # noqa: PLC0415

    clock = clock or SystemClock()

    def hl7(raw: bytes) -> Sequence[Envelope]:
        now = clock.now()
        return adt_to_envelopes(parse_adt(raw), today=now.astimezone(STOCKHOLM).date())

    def fhir(raw: bytes) -> Sequence[Envelope]:
        now = clock.now()
        resource = parse_json(raw)
        if not isinstance(resource, dict):
            msg = "resource: a FHIR file must hold one JSON object"
            raise ValidationFailed(msg)
        return fhir_to_envelopes(resource, today=now.astimezone(STOCKHOLM).date(), received_at=now)

    return {"hl7": hl7, "fhir": fhir}
