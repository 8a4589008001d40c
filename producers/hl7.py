"""The HL7 v2 ADT adapter: hospital systems' admit/transfer/discharge events become envelopes.

Three layers, each usable alone:

* ``parse_adt(raw)`` reads one message (bytes) with python-hl7 (PyPI ``hl7``) into an
  ``AdtMessage``: it honours MSH-18 (the character set), checks the header and reads the fields
  the hub needs. ``adt_to_envelopes(message, today=...)`` maps it to envelopes. Both are pure.
* ``Hl7Intake`` ties them to an ``EnvelopeSink``: publish, then answer with an HL7 ACK (original
  mode): ``AA`` once every envelope is stored (the sink returned after the broker's ack), ``AE``
  when the content is wrong (resending it unchanged will not help), ``AR`` when the message is
  of a kind the hub does not take, or the hub could not store it now (resend later). The reason
  goes in MSA-3 and in one ERR segment per problem; it names fields and rules, never values.
* ``serve_mllp`` / ``start_mllp_server`` (MLLP over TCP, asyncio) and ``ingest_file`` (a batch
  file of several messages) are the ways in.

The field mapping is documented in ``docs/hl7-mapping.md``. In short: PID-3 personnummer or
samordningsnummer (by assigning authority OID), PV1-3.1 ward HSA-id, PV1-19.1 visit number
(the episode id), PV1-44/45 admit/discharge time, PV2-9 expected discharge date, PD1-3.10
listed health centre HSA-id, PID-11.9 home municipality code. HL7 times without a UTC offset
are Europe/Stockholm local time (DOMAIN.md).

Message ids: an admission (A01) or discharge (A03) notice gets the id derived from the stay
(``producers.adapters.admission_message_id`` / ``discharge_message_id``) so that A11/A13 can
name it; every other envelope gets ``uuid5(HL7_MESSAGE_NAMESPACE, "{MSH-4}|{MSH-10}")``. Either
way a message resent with the same control id yields the same envelope id, and ``OncePublisher``
keeps it from being published twice by this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import hl7
from pydantic import ValidationError

from hub.calendar import STOCKHOLM, local_date_of, local_to_utc
from hub.clock import Clock, SystemClock
from hub.errors import HubError, ValidationFailed
from hub.logs import get_logger
from producers.adapters import (
    EnvelopeSink,
    FieldProblem,
    OncePublisher,
    admission_message_id,
    discharge_message_id,
    field_problems,
)
from topics.catalogue import MessageType
from topics.identifiers import (
    TODAY_CONTEXT_KEY,
    mask_identity_numbers,
    normalise_personal_identity_number,
)
from topics.messages import Envelope

__all__ = [
    "END_BLOCK",
    "HL7_MESSAGE_NAMESPACE",
    "PERSONNUMMER_OID",
    "SAMORDNINGSNUMMER_OID",
    "START_BLOCK",
    "SUPPORTED_CHARSETS",
    "SUPPORTED_VERSIONS",
    "AckCode",
    "AdtMessage",
    "AdtTrigger",
    "EnvelopeSink",
    "Frame",
    "Hl7Config",
    "Hl7ErrorCode",
    "Hl7Intake",
    "Hl7Outcome",
    "Hl7Rejected",
    "MessageHeader",
    "MllpFrameReader",
    "OversizedFrame",
    "RestartedFrame",
    "TruncatedFrame",
    "adt_to_envelopes",
    "build_ack",
    "hl7_message_id",
    "ingest_file",
    "parse_adt",
    "serve_mllp",
    "split_batch",
    "start_mllp_server",
]

log = get_logger(__name__)

#: MLLP framing: a message travels as ``START_BLOCK + message + END_BLOCK``.
START_BLOCK: Final = b"\x0b"
END_BLOCK: Final = b"\x1c\x0d"

#: Assigning authorities (PID-3.4.2) of Swedish patient identifiers.
PERSONNUMMER_OID: Final = "1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_OID: Final = "1.2.752.129.2.1.3.3"
_NATIONAL_ID_TYPE: Final = "NNSWE"  # HL7 table 0203: national person identifier, Sweden

#: uuid5 namespace of envelope ids derived from (MSH-4, MSH-10). Fixed for ever.
HL7_MESSAGE_NAMESPACE: Final = UUID("8d3c1f27-6b4e-4a9d-b2c5-0e7f9a1d3c04")
_ACK_NAMESPACE: Final = UUID("5a7e2c19-3d8b-4f61-a0c4-9b2e6d1f7a05")

#: MSH-18 values (HL7 table 0211) the adapter reads, and their Python codecs. Only charsets in
#: which ASCII bytes mean ASCII, so segments can be found before the bytes are decoded.
SUPPORTED_CHARSETS: Final = {
    "ASCII": "ascii",
    "8859/1": "iso8859-1",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
}

#: MSH-12 versions whose PID/PV1/PV2/PD1/EVN fields sit where this adapter reads them.
SUPPORTED_VERSIONS: Final = frozenset(
    {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.9"}
)

_UTF8_BOM: Final = b"\xef\xbb\xbf"
_HL7_NULL: Final = '""'
_INPATIENT: Final = "I"
_ACK_TEXT_MAX: Final = 80  # MSA-3 is ST(80) in v2.5
_ERR_TEXT_MAX: Final = 250
_HEAD_BYTES: Final = 4096  # of an oversized frame, kept to answer it


class AckCode(StrEnum):
    """MSA-1 acknowledgement codes (HL7 table 0008, original mode)."""

    ACCEPT = "AA"  # stored: the broker has it
    ERROR = "AE"  # the content is wrong; do not resend unchanged
    REJECT = "AR"  # not a message the hub takes, or not storable now; resend later if so


class AdtTrigger(StrEnum):
    """The ADT trigger events (MSH-9.2) the hub maps."""

    A01 = "A01"  # admit / visit notification
    A02 = "A02"  # transfer
    A03 = "A03"  # discharge / end visit
    A08 = "A08"  # update patient information
    A11 = "A11"  # cancel admit
    A13 = "A13"  # cancel discharge


class Hl7ErrorCode(StrEnum):
    """ERR-3 error codes (HL7 table 0357)."""

    SEGMENT_SEQUENCE = "100"
    REQUIRED_FIELD_MISSING = "101"
    DATA_TYPE = "102"
    TABLE_VALUE_NOT_FOUND = "103"
    UNSUPPORTED_MESSAGE_TYPE = "200"
    UNSUPPORTED_EVENT = "201"
    UNSUPPORTED_PROCESSING_ID = "202"
    UNSUPPORTED_VERSION = "203"
    INTERNAL = "207"


_ERROR_NAMES: Final = {
    Hl7ErrorCode.SEGMENT_SEQUENCE: "Segment sequence error",
    Hl7ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    Hl7ErrorCode.DATA_TYPE: "Data type error",
    Hl7ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    Hl7ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    Hl7ErrorCode.UNSUPPORTED_EVENT: "Unsupported event code",
    Hl7ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    Hl7ErrorCode.UNSUPPORTED_VERSION: "Unsupported version id",
    Hl7ErrorCode.INTERNAL: "Application internal error",
}


@dataclass(frozen=True, slots=True)
class Hl7Config:
    """How the adapter reads messages and how the listener guards itself.

    ``default_charset`` applies when MSH-18 is empty. It is UTF-8 on purpose: UTF-8 is strict,
    so a sender that really sends 8859/1 without saying so gets an AE naming MSH-18, whereas the
    opposite default would turn UTF-8 "å" into "Ã¥" without a word. ``episode_id_prefix`` is put
    before PV1-19 so visit numbers of different hospital systems cannot collide.
    """

    default_charset: str = "UNICODE UTF-8"
    episode_id_prefix: str = ""
    processing_ids: frozenset[str] = frozenset({"P"})
    max_message_bytes: int = 1024 * 1024
    idle_timeout_s: float = 600.0  # between messages on an open connection
    frame_timeout_s: float = 30.0  # from a start block to its end block
    write_timeout_s: float = 10.0
    publish_timeout_s: float = 30.0
    max_connections: int = 64
    seen_capacity: int = 10_000

    def __post_init__(self) -> None:
        if self.default_charset not in SUPPORTED_CHARSETS:
            msg = f"default_charset: must be one of {', '.join(SUPPORTED_CHARSETS)}"
            raise ValueError(msg)
        for name in ("idle_timeout_s", "frame_timeout_s", "write_timeout_s", "publish_timeout_s"):
            if getattr(self, name) <= 0:
                msg = f"{name}: must be positive"
                raise ValueError(msg)
        if self.max_message_bytes < _HEAD_BYTES or self.max_connections < 1:
            msg = "max_message_bytes must be at least 4096 and max_connections at least 1"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The MSH fields an ACK echoes, as written (still HL7-escaped, in the bytes' own charset).

    They are read before the message is decoded (see ``parse_adt``), so they can answer even a
    message whose character set is wrong. MSH holds no patient data.
    """

    sending_application: str  # MSH-3
    sending_facility: str  # MSH-4
    receiving_application: str  # MSH-5
    receiving_facility: str  # MSH-6
    message_code: str  # MSH-9.1
    trigger: str  # MSH-9.2
    control_id: str  # MSH-10
    processing_id: str  # MSH-11
    version: str  # MSH-12.1
    country: str  # MSH-17
    declared_charset: str  # MSH-18, first repetition, as written (may be empty)
    charset: str  # the character set used: MSH-18, else the configured default


class Hl7Rejected(ValidationFailed):
    """A message the adapter will not publish, with what to answer: ACK code and problems."""

    def __init__(
        self,
        problems: Iterable[FieldProblem],
        *,
        ack_code: AckCode = AckCode.ERROR,
        error_code: Hl7ErrorCode = Hl7ErrorCode.DATA_TYPE,
        header: MessageHeader | None = None,
    ) -> None:
        self.problems = tuple(problems)
        self.ack_code = ack_code
        self.error_code = error_code
        self.header = header
        super().__init__("; ".join(str(problem) for problem in self.problems))

    @classmethod
    def one(
        cls,
        *,
        at: str,
        why: str,
        ack_code: AckCode = AckCode.ERROR,
        error_code: Hl7ErrorCode = Hl7ErrorCode.DATA_TYPE,
        header: MessageHeader | None = None,
    ) -> Hl7Rejected:
        """A rejection for one problem; ``rule`` is the error code's name."""
        problem = FieldProblem(at, _ERROR_NAMES[error_code], why)
        return cls([problem], ack_code=ack_code, error_code=error_code, header=header)


@dataclass(frozen=True, slots=True)
class AdtMessage:
    """One ADT message, read and checked for shape; values not yet checked against the contract.

    Times are aware UTC; ``expected_discharge_date`` is the calendar date as the sender wrote it.
    ``patient`` is PID-3.1 as written (``repr`` hides it); ``patient_authority`` the assigning
    authority OID it came with (empty when only the NNSWE type code named it).
    """

    header: MessageHeader
    trigger: AdtTrigger
    sending_facility: str  # MSH-4, decoded in the message's charset
    sent_at: datetime  # MSH-7
    occurred_at: datetime  # EVN-6, else EVN-2, else MSH-7
    patient: str = field(repr=False)  # PID-3.1
    patient_authority: str  # PID-3.4.2
    patient_class: str | None  # PV1-2
    ward: str | None  # PV1-3.1
    episode_id: str | None  # prefix + PV1-19.1
    admitted_at: datetime | None  # PV1-44
    discharged_at: datetime | None  # PV1-45
    expected_discharge_date: date | None  # PV2-9
    listed_health_centre: str | None  # PD1-3.10, else PD1-3.3
    home_municipality: str | None  # PID-11.9, else PID-12


@dataclass(frozen=True, slots=True)
class Hl7Outcome:
    """What became of one message: the ACK sent back and the envelopes behind it.

    ``message_ids`` are the envelopes the message maps to, published now or earlier;
    ``published`` counts those this call published.
    """

    ack_code: AckCode
    control_id: str
    problems: tuple[FieldProblem, ...]
    message_ids: tuple[UUID, ...]
    published: int
    ack: bytes


# What python-hl7 raises on input it cannot make sense of: it has no error class of its own for
# most of it, and some checks are bare asserts. Such input is answered as malformed.
_LIBRARY_ERRORS: Final = (
    hl7.HL7Exception,
    AssertionError,
    IndexError,
    KeyError,
    ValueError,
    TypeError,
    AttributeError,
)


# --- reading -------------------------------------------------------------------------------

_DTM = re.compile(
    r"(?P<year>[0-9]{4})(?P<month>[0-9]{2})(?P<day>[0-9]{2})"
    r"(?:(?P<hour>[0-9]{2})(?P<minute>[0-9]{2})(?:(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,4}))?)?)?"
    r"(?P<offset>[+-][0-9]{4})?",
    re.ASCII,
)
_LOCATION = re.compile(
    r"(?P<segment>[A-Z][A-Z0-9]{2})(?:-(?P<field>[0-9]+)(?:\.(?P<component>[0-9]+))?)?"
)


def _instant(value: str, location: str) -> datetime:
    """An HL7 DTM with at least minutes, as aware UTC; no offset means Stockholm local time.

    A local time in the spring-forward gap is read with the offset before the gap (02:30 is
    03:30 CEST), one in the autumn fold as its first occurrence, like ``hub.calendar``.
    """
    match = _DTM.fullmatch(value)
    if match is None or match["minute"] is None:
        msg = "must be an HL7 date/time YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]"
        raise Hl7Rejected.one(at=location, why=msg)
    fraction = match["fraction"] or ""
    try:
        day = date(int(match["year"]), int(match["month"]), int(match["day"]))
        clock = time(
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            int(fraction.ljust(6, "0")) if fraction else 0,
        )
    except ValueError:
        raise Hl7Rejected.one(at=location, why="is not a real calendar date and time") from None
    offset = match["offset"]
    if offset is None:
        return local_to_utc(day, clock)
    hours, minutes = int(offset[1:3]), int(offset[3:5])
    if hours > 14 or minutes > 59:
        raise Hl7Rejected.one(at=location, why="UTC offset out of range")
    sign = -1 if offset[0] == "-" else 1
    zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _calendar_date(value: str, location: str) -> date:
    """The date part of an HL7 DT/DTM, as written (a local date, not converted)."""
    match = _DTM.fullmatch(value)
    if match is None:
        raise Hl7Rejected.one(at=location, why="must be an HL7 date YYYYMMDD")
    try:
        return date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        raise Hl7Rejected.one(at=location, why="is not a real calendar date") from None


def _normalise_line_endings(raw: bytes) -> bytes:
    # Segments end in CR; files and some senders use CRLF or LF. Field content cannot hold a raw
    # CR or LF (HL7 escapes them), so this never changes a value.
    return raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r")


def _raw_field(segment: Any, number: int) -> str:
    return str(segment[number]) if number < len(segment) else ""


def _read_header(raw: bytes, config: Hl7Config) -> MessageHeader:
    """Read MSH from the first segment, decoded as ISO 8859-1, before the charset is known.

    Every supported charset writes ASCII as ASCII, and 8859/1 maps each byte to one character,
    so the fields come out exactly as sent and re-encode to the same bytes in the ACK.
    """
    first = raw.split(b"\r", 1)[0].decode("iso8859-1")
    try:
        parsed = hl7.parse(first)
        msh = parsed.segment("MSH")
        header = MessageHeader(
            sending_application=_raw_field(msh, 3),
            sending_facility=_raw_field(msh, 4),
            receiving_application=_raw_field(msh, 5),
            receiving_facility=_raw_field(msh, 6),
            message_code=_value(parsed, "MSH", 9, component=1),
            trigger=_value(parsed, "MSH", 9, component=2),
            control_id=_raw_field(msh, 10),
            processing_id=_value(parsed, "MSH", 11),
            version=_value(parsed, "MSH", 12),
            country=_raw_field(msh, 17),
            declared_charset=_value(parsed, "MSH", 18),
            charset=_value(parsed, "MSH", 18) or config.default_charset,
        )
    except _LIBRARY_ERRORS:
        raise Hl7Rejected.one(
            at="MSH",
            why="the header segment cannot be read",
            ack_code=AckCode.REJECT,
            error_code=Hl7ErrorCode.SEGMENT_SEQUENCE,
        ) from None
    return header


def _value(
    message: Any,
    segment: str,
    number: int,
    *,
    repeat: int = 1,
    component: int = 1,
    subcomponent: int = 1,
) -> str:
    """One value, unescaped; empty when absent or the HL7 null ``""``."""
    try:
        value = str(message.extract_field(segment, 1, number, repeat, component, subcomponent))
    except (IndexError, KeyError):
        return ""
    value = value.strip()
    return "" if value == _HL7_NULL else value


def _repetitions(message: Any, segment: str, number: int) -> int:
    try:
        found = message.segment(segment)
    except KeyError:
        return 0
    if number >= len(found):
        return 0
    return len(found[number]) if isinstance(found[number], hl7.Field) else 1


def _segment_count(message: Any, name: str) -> int:
    try:
        return len(message.segments(name))
    except KeyError:
        return 0


def _optional(message: Any, segment: str, number: int, *, component: int = 1) -> str | None:
    return _value(message, segment, number, component=component) or None


def _decode(raw: bytes, header: MessageHeader) -> str:
    codec = SUPPORTED_CHARSETS.get(header.charset.upper())
    if codec is None:
        raise Hl7Rejected.one(
            at="MSH-18",
            why=f"character set not supported (use one of {', '.join(SUPPORTED_CHARSETS)})",
            ack_code=AckCode.REJECT,
            error_code=Hl7ErrorCode.TABLE_VALUE_NOT_FOUND,
            header=header,
        )
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise Hl7Rejected.one(
            at="MSH-18",
            why=f"the bytes are not valid {header.charset} (MSH-18, or the configured default)",
            header=header,
        ) from None


def _patient(message: Any, header: MessageHeader) -> tuple[str, str]:
    """The first PID-3 repetition naming a Swedish personnummer or samordningsnummer."""
    for repeat in range(1, _repetitions(message, "PID", 3) + 1):
        number = _value(message, "PID", 3, repeat=repeat)
        authority = _value(message, "PID", 3, repeat=repeat, component=4, subcomponent=2)
        id_type = _value(message, "PID", 3, repeat=repeat, component=5)
        if number and (
            authority in {PERSONNUMMER_OID, SAMORDNINGSNUMMER_OID}
            or (not authority and id_type == _NATIONAL_ID_TYPE)
        ):
            return number, authority
    raise Hl7Rejected.one(
        at="PID-3",
        why=(
            f"no identifier with assigning authority {PERSONNUMMER_OID} (personnummer) or "
            f"{SAMORDNINGSNUMMER_OID} (samordningsnummer)"
        ),
        error_code=Hl7ErrorCode.REQUIRED_FIELD_MISSING,
        header=header,
    )


def _check_header(message: Any, text: str, header: MessageHeader, config: Hl7Config) -> AdtTrigger:
    """MSH-9/10/11/12 and the segments every mapped trigger needs."""

    def reject(*, at: str, why: str, code: Hl7ErrorCode) -> Hl7Rejected:
        return Hl7Rejected.one(
            at=at, why=why, ack_code=AckCode.REJECT, error_code=code, header=header
        )

    if "\rMSH" in text or _segment_count(message, "MSH") != 1:
        raise reject(
            at="MSH", why="one frame must hold one message", code=Hl7ErrorCode.SEGMENT_SEQUENCE
        )
    if header.message_code != "ADT":
        raise reject(
            at="MSH-9",
            why="only ADT messages are taken",
            code=Hl7ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
        )
    if header.trigger not in AdtTrigger.__members__:
        raise reject(
            at="MSH-9",
            why="trigger event not taken (A01, A02, A03, A08, A11, A13)",
            code=Hl7ErrorCode.UNSUPPORTED_EVENT,
        )
    if header.processing_id not in config.processing_ids:
        raise reject(
            at="MSH-11",
            why="processing id not accepted here",
            code=Hl7ErrorCode.UNSUPPORTED_PROCESSING_ID,
        )
    if header.version not in SUPPORTED_VERSIONS:
        raise reject(
            at="MSH-12",
            why="HL7 version not supported (2.3-2.9)",
            code=Hl7ErrorCode.UNSUPPORTED_VERSION,
        )
    if not _value(message, "MSH", 10):
        raise Hl7Rejected.one(
            at="MSH-10",
            why="required",
            error_code=Hl7ErrorCode.REQUIRED_FIELD_MISSING,
            header=header,
        )
    for name in ("PID", "PV1"):
        count = _segment_count(message, name)
        if count != 1:
            raise Hl7Rejected.one(
                at=name,
                why="segment missing" if count == 0 else "segment repeated",
                error_code=Hl7ErrorCode.SEGMENT_SEQUENCE,
                header=header,
            )
    return AdtTrigger(header.trigger)


def _home_municipality(message: Any) -> str | None:
    for repeat in range(1, _repetitions(message, "PID", 11) + 1):
        code = _value(message, "PID", 11, repeat=repeat, component=9)
        if code:
            return code
    return _optional(message, "PID", 12)


def parse_adt(raw: bytes, *, config: Hl7Config | None = None) -> AdtMessage:
    """Read one ADT message (without MLLP framing), honouring MSH-18.

    Raises ``Hl7Rejected`` with the ACK code to answer: ``AR`` for what the hub does not take
    (not ADT, another trigger, processing id, version, character set, not HL7 at all), ``AE``
    for a malformed message (missing segments, bad times, bytes not in the declared charset).
    Nothing else: whatever python-hl7 raises on hostile input becomes an ``AE``.
    """
    try:
        return _parse_adt(raw, config or Hl7Config())
    except Hl7Rejected:
        raise
    except _LIBRARY_ERRORS as exc:
        log.warning("hl7.unreadable", error_class=type(exc).__name__)
        raise Hl7Rejected.one(
            at="MSH", why="not a readable HL7 v2 message", error_code=Hl7ErrorCode.SEGMENT_SEQUENCE
        ) from None


def _parse_adt(raw: bytes, config: Hl7Config) -> AdtMessage:
    raw = _normalise_line_endings(raw).strip(b" \t\r\x0b\x1c")
    has_bom = raw.startswith(_UTF8_BOM)
    raw = raw.removeprefix(_UTF8_BOM)
    if not raw.startswith(b"MSH"):
        raise Hl7Rejected.one(
            at="MSH",
            why="the message must begin with an MSH segment",
            ack_code=AckCode.REJECT,
            error_code=Hl7ErrorCode.SEGMENT_SEQUENCE,
        )
    header = _read_header(raw, config)
    text = _decode(raw, header)
    if has_bom and SUPPORTED_CHARSETS.get(header.charset.upper()) != "utf-8":
        raise Hl7Rejected.one(
            at="MSH-18", why="a UTF-8 byte order mark in a non-UTF-8 message", header=header
        )
    try:
        message = hl7.parse(text)
    except _LIBRARY_ERRORS:
        raise Hl7Rejected.one(
            at="MSH",
            why="not an HL7 v2 message",
            error_code=Hl7ErrorCode.SEGMENT_SEQUENCE,
            header=header,
        ) from None
    trigger = _check_header(message, text, header, config)

    def instant(segment: str, number: int) -> datetime | None:
        value = _value(message, segment, number)
        if not value:
            return None
        try:
            return _instant(value, f"{segment}-{number}")
        except Hl7Rejected as exc:
            raise Hl7Rejected(exc.problems, header=header) from None

    sent_at = instant("MSH", 7)
    if sent_at is None:
        raise Hl7Rejected.one(
            at="MSH-7",
            why="required",
            error_code=Hl7ErrorCode.REQUIRED_FIELD_MISSING,
            header=header,
        )
    occurred_at = instant("EVN", 6) or instant("EVN", 2) or sent_at
    patient, authority = _patient(message, header)
    expected = _value(message, "PV2", 9)
    try:
        expected_discharge_date = _calendar_date(expected, "PV2-9") if expected else None
    except Hl7Rejected as exc:
        raise Hl7Rejected(exc.problems, header=header) from None
    visit = _value(message, "PV1", 19)
    return AdtMessage(
        header=header,
        trigger=trigger,
        sending_facility=_raw_field(message.segment("MSH"), 4),
        sent_at=sent_at,
        occurred_at=occurred_at,
        patient=patient,
        patient_authority=authority,
        patient_class=_optional(message, "PV1", 2),
        ward=_optional(message, "PV1", 3),
        episode_id=f"{config.episode_id_prefix}{visit}" if visit else None,
        admitted_at=instant("PV1", 44),
        discharged_at=instant("PV1", 45),
        expected_discharge_date=expected_discharge_date,
        listed_health_centre=(
            _optional(message, "PD1", 3, component=10) or _optional(message, "PD1", 3, component=3)
        ),
        home_municipality=_home_municipality(message),
    )


# --- mapping -------------------------------------------------------------------------------

#: Where each envelope field comes from, to name it in an error.
_HL7_LOCATIONS: Final = {
    "patient": "PID-3",
    "episode_id": "PV1-19",
    "sender": "PV1-3",
    "occurred_at": "EVN-6",
    "sent_at": "MSH-7",
    "payload.ward": "PV1-3",
    "payload.admitted_at": "PV1-44",
    "payload.discharged_at": "PV1-45",
    "payload.expected_discharge_date": "PV2-9",
    "payload.listed_health_centre": "PD1-3",
    "payload.home_municipality": "PID-11.9",
    "date_order": "PV2-9",
}

_CANCEL_ADMIT_REASON: Final = "Inskrivningen makulerad i journalsystemet (HL7 ADT^A11)."
_CANCEL_DISCHARGE_REASON: Final = "Utskrivningen makulerad i journalsystemet (HL7 ADT^A13)."

_REQUIRED: Final = {
    AdtTrigger.A01: ("PV1-44", "PV2-9", "PD1-3", "PID-11.9"),
    AdtTrigger.A03: ("PV1-45",),
    AdtTrigger.A11: ("PV1-44",),
    AdtTrigger.A13: ("PV1-45",),
}


def hl7_message_id(message: AdtMessage) -> UUID:
    """The envelope id of a message named by its sending facility (MSH-4) and control id."""
    name = f"{message.sending_facility}|{message.header.control_id}"
    return uuid.uuid5(HL7_MESSAGE_NAMESPACE, name)


def _checked_patient(message: AdtMessage, today: date) -> str:
    try:
        patient = normalise_personal_identity_number(message.patient, today=today)
    except ValidationFailed as exc:
        raise Hl7Rejected.one(at="PID-3", why=str(exc), header=message.header) from None
    coordination = int(patient[6:8]) > 60
    if message.patient_authority == PERSONNUMMER_OID and coordination:
        msg = f"a samordningsnummer must have assigning authority {SAMORDNINGSNUMMER_OID}"
        raise Hl7Rejected.one(at="PID-3", why=msg, header=message.header)
    if message.patient_authority == SAMORDNINGSNUMMER_OID and not coordination:
        msg = f"a personnummer must have assigning authority {PERSONNUMMER_OID}"
        raise Hl7Rejected.one(at="PID-3", why=msg, header=message.header)
    return patient


def _missing(message: AdtMessage) -> list[FieldProblem]:
    present = {
        "PV1-3": message.ward,
        "PV1-19": message.episode_id,
        "PV1-44": message.admitted_at,
        "PV1-45": message.discharged_at,
        "PV2-9": message.expected_discharge_date,
        "PD1-3": message.listed_health_centre,
        "PID-11.9": message.home_municipality,
    }
    needed = ("PV1-3", "PV1-19", *_REQUIRED.get(message.trigger, ()))
    rule = _ERROR_NAMES[Hl7ErrorCode.REQUIRED_FIELD_MISSING]
    return [
        FieldProblem(location, rule, f"required in {message.trigger.value}")
        for location in needed
        if present[location] is None
    ]


def _payload(message: AdtMessage) -> tuple[UUID, MessageType, dict[str, object]] | None:
    """The envelope id, type and payload the trigger calls for; None when there is none."""
    episode = str(message.episode_id)
    admitted, discharged = message.admitted_at, message.discharged_at
    match message.trigger:
        case AdtTrigger.A01 if admitted is not None:
            payload: dict[str, object] = {
                "ward": message.ward,
                "admitted_at": admitted,
                "expected_discharge_date": message.expected_discharge_date,
                "listed_health_centre": message.listed_health_centre,
                "home_municipality": message.home_municipality,
            }
            return admission_message_id(episode, admitted), MessageType.ADMISSION_NOTICE, payload
        case AdtTrigger.A03 if discharged is not None:
            payload = {"discharged_at": discharged}
            return discharge_message_id(episode, discharged), MessageType.DISCHARGE_NOTICE, payload
        case AdtTrigger.A11 if admitted is not None:
            payload = {
                "cancelled_message_id": admission_message_id(episode, admitted),
                "reason": _CANCEL_ADMIT_REASON,
            }
            return hl7_message_id(message), MessageType.CANCELLATION, payload
        case AdtTrigger.A13 if discharged is not None:
            payload = {
                "cancelled_message_id": discharge_message_id(episode, discharged),
                "reason": _CANCEL_DISCHARGE_REASON,
            }
            return hl7_message_id(message), MessageType.CANCELLATION, payload
        case AdtTrigger.A02 | AdtTrigger.A08:
            # The facts of the stay that the contract carries (a new ward is not one of them).
            updates: dict[str, object] = {
                "listed_health_centre": message.listed_health_centre,
                "home_municipality": message.home_municipality,
                "expected_discharge_date": message.expected_discharge_date,
            }
            if all(value is None for value in updates.values()):
                return None
            return hl7_message_id(message), MessageType.EPISODE_UPDATED, updates
    return None  # unreachable: _missing() refused a message without the fields it needs


def adt_to_envelopes(message: AdtMessage, *, today: date) -> list[Envelope]:
    """The envelopes one ADT message stands for (none, or one).

    A01 admission notice, A03 discharge notice, A11/A13 cancellation of the admission/discharge
    notice (named by its derived id), A02/A08 episode update with whichever of PD1-3, PID-11.9
    and PV2-9 the message carries (none of them: nothing to publish). A visit whose patient
    class (PV1-2) is given and is not ``I`` (inpatient) publishes nothing. ``today`` (the local
    date) resolves 10-digit patient numbers and refuses birth dates in the future.

    Raises ``Hl7Rejected`` (AE) naming the HL7 field of every problem.
    """
    if message.patient_class is not None and message.patient_class != _INPATIENT:
        return []
    missing = _missing(message)
    if missing:
        raise Hl7Rejected(
            missing, error_code=Hl7ErrorCode.REQUIRED_FIELD_MISSING, header=message.header
        )
    patient = _checked_patient(message, today)
    mapped = _payload(message)
    if mapped is None:
        return []
    message_id, message_type, payload = mapped
    data: dict[str, object] = {
        "message_id": message_id,
        "message_type": message_type,
        "episode_id": message.episode_id,
        "sender": message.ward,
        "patient": patient,
        "occurred_at": message.occurred_at,
        "sent_at": message.sent_at,
        "payload": {"kind": message_type.value, **payload},
    }
    if message_type is MessageType.CANCELLATION:
        data["causation_id"] = payload["cancelled_message_id"]
    try:
        envelope = Envelope.model_validate(data, context={TODAY_CONTEXT_KEY: today})
    except ValidationError as exc:
        problems = field_problems(exc, _HL7_LOCATIONS, fallback="MSH-9")
        raise Hl7Rejected(problems, header=message.header) from None
    return [envelope]


# --- acknowledgements ----------------------------------------------------------------------


def _hl7_timestamp(now: datetime) -> str:
    local = now.astimezone(STOCKHOLM)
    return local.strftime("%Y%m%d%H%M%S%z")


_CODE = re.compile(r"[^A-Za-z0-9_.]", re.ASCII)


def _echo(raw: str) -> str:
    """A header field to copy into the ACK: as sent, unless it holds a field/segment separator
    of the ACK (the sender used other separators), which would shift every later field."""
    return "" if any(char in raw for char in "|\r\n") else raw


def _code(value: str) -> str:
    return _CODE.sub("", value)


def _ascii(text: str, limit: int) -> str:
    return text.encode("ascii", "replace").decode("ascii")[:limit]


def _error_location(location: str) -> str:
    match = _LOCATION.fullmatch(location)
    if match is None:
        return ""
    parts = [match["segment"], "1"]
    if match["field"]:
        parts += [match["field"], "1"]
        if match["component"]:
            parts.append(match["component"])
    return "^".join(parts)


def build_ack(
    header: MessageHeader | None,
    ack_code: AckCode,
    *,
    now: datetime,
    problems: Iterable[FieldProblem] = (),
    error_code: Hl7ErrorCode | None = None,
) -> bytes:
    """An ACK (original mode) for ``header``'s message, as bytes without MLLP framing.

    python-hl7 builds it (``Message.create_ack`` swaps sender and receiver and fills MSA-1/2);
    MSH-7 is set to ``now`` in Stockholm time with its offset, MSH-17/18 echo the message's, and
    each problem adds an ERR segment. The echoed MSH fields are the original bytes (see
    ``MessageHeader``), so the ACK is encoded as ISO 8859-1, which gives them back unchanged.
    """
    h = header or MessageHeader("", "", "", "", "", "", "", "P", "2.5", "", "", "")
    source = hl7.parse(
        "|".join(
            [
                "MSH",
                "^~\\&",
                _echo(h.sending_application),
                _echo(h.sending_facility),
                _echo(h.receiving_application),
                _echo(h.receiving_facility),
                "",
                "",
                f"{_code(h.message_code) or 'ADT'}^{_code(h.trigger)}",
                _echo(h.control_id),
                _code(h.processing_id) or "P",
                _code(h.version) or "2.5",
            ]
        )
    )
    name = f"{h.sending_facility}|{h.control_id}|{ack_code.value}|{now.isoformat()}"
    ack_id = uuid.uuid5(_ACK_NAMESPACE, name).hex[:20].upper()
    ack = source.create_ack(ack_code.value, message_id=ack_id)
    ack.assign_field(_hl7_timestamp(now), "MSH", 1, 7)
    if h.declared_charset.upper() in SUPPORTED_CHARSETS:
        ack.assign_field(h.declared_charset, "MSH", 1, 18)
    if _code(h.country):
        ack.assign_field(_code(h.country), "MSH", 1, 17)
    problems = tuple(problems)
    if problems:
        ack.assign_field(ack.escape(_ascii(str(problems[0]), _ACK_TEXT_MAX)), "MSA", 1, 3)
    code = error_code or Hl7ErrorCode.INTERNAL
    text = str(ack)
    for problem in problems:
        fields = [
            "ERR",
            "",
            _error_location(problem.location),
            f"{code.value}^{_ERROR_NAMES[code]}^HL70357",
            "E",
            "",
            "",
            "",
            ack.escape(_ascii(str(problem), _ERR_TEXT_MAX)),
        ]
        text += "|".join(fields) + "\r"
    return text.encode("iso8859-1", "replace")


# --- the intake: publish, then acknowledge -------------------------------------------------


class Hl7Intake:
    """Reads, maps and publishes HL7 messages, answering each with an ACK.

    One instance serves every connection of a listener and every file, so its memory of
    published ids (``OncePublisher``) covers them all.
    """

    def __init__(
        self,
        sink: EnvelopeSink,
        *,
        config: Hl7Config | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or Hl7Config()
        self._clock = clock or SystemClock()
        self._publisher = OncePublisher(
            sink, capacity=self.config.seen_capacity, timeout_s=self.config.publish_timeout_s
        )
        self._connections = 0

    async def handle(self, raw: bytes) -> Hl7Outcome:
        """Parse, map and publish one message; the outcome holds the ACK to send back."""
        return await self._finish(_parse_or_rejection(raw, self.config))

    def reject_oversized(self, head: bytes) -> Hl7Outcome:
        """The answer to a frame over ``max_message_bytes``, from the header in its first bytes."""
        try:
            header: MessageHeader | None = _read_header(
                _normalise_line_endings(head).lstrip(b" \t\r"), self.config
            )
        except Hl7Rejected:
            header = None
        problem = FieldProblem(
            "MSH", "message too large", f"larger than {self.config.max_message_bytes} bytes"
        )
        return self._answer(
            Hl7Rejected(
                [problem], ack_code=AckCode.REJECT, error_code=Hl7ErrorCode.INTERNAL, header=header
            )
        )

    async def ingest_file(self, path: Path) -> list[Hl7Outcome]:
        """Every message of a batch file, in order; parsing runs in a worker thread."""
        data = await asyncio.to_thread(path.read_bytes)
        config = self.config
        parsed = await asyncio.to_thread(
            lambda: [_parse_or_rejection(raw, config) for raw in split_batch(data)]
        )
        return [await self._finish(item) for item in parsed]

    async def start_server(self, host: str, port: int) -> asyncio.Server:
        """Listen for MLLP connections on ``host:port`` (0: any free port); see ``serve_mllp``."""
        return await asyncio.start_server(self._serve_connection, host, port)

    # ---

    def _answer(
        self,
        rejection: Hl7Rejected,
        *,
        message_ids: tuple[UUID, ...] = (),
    ) -> Hl7Outcome:
        header = rejection.header
        log.info(
            "hl7.rejected",
            ack_code=rejection.ack_code.value,
            control_id=header.control_id if header else "",
            trigger=header.trigger if header else "",
            problems=[f"{p.location}: {p.rule}" for p in rejection.problems],
        )
        ack = build_ack(
            header,
            rejection.ack_code,
            now=self._clock.now(),
            problems=rejection.problems,
            error_code=rejection.error_code,
        )
        return Hl7Outcome(
            ack_code=rejection.ack_code,
            control_id=header.control_id if header else "",
            problems=rejection.problems,
            message_ids=message_ids,
            published=0,
            ack=ack,
        )

    async def _finish(self, parsed: AdtMessage | Hl7Rejected) -> Hl7Outcome:
        if isinstance(parsed, Hl7Rejected):
            return self._answer(parsed)
        now = self._clock.now()
        try:
            envelopes = adt_to_envelopes(parsed, today=local_date_of(now))
        except Hl7Rejected as exc:
            return self._answer(exc)
        ids = tuple(envelope.message_id for envelope in envelopes)
        published = 0
        try:
            for envelope in envelopes:
                published += await self._publisher.publish(envelope)
        except TimeoutError:
            return self._answer(
                _not_stored(parsed.header, "the broker did not confirm in time"), message_ids=ids
            )
        except HubError as exc:
            if exc.retriable:
                return self._answer(
                    _not_stored(parsed.header, "the hub is unavailable"), message_ids=ids
                )
            problem = FieldProblem("MSH", type(exc).__name__, mask_identity_numbers(str(exc)))
            return self._answer(Hl7Rejected([problem], header=parsed.header), message_ids=ids)
        except Exception as exc:  # noqa: BLE001 - the sink's own errors (aiokafka ...): answer AR
            log.warning(
                "hl7.publish_failed",
                error_class=type(exc).__name__,
                control_id=parsed.header.control_id,
            )
            return self._answer(
                _not_stored(parsed.header, "the hub could not store it"), message_ids=ids
            )
        log.info(
            "hl7.accepted",
            control_id=parsed.header.control_id,
            trigger=parsed.trigger.value,
            episode_id=parsed.episode_id,
            message_ids=[str(i) for i in ids],
            published=published,
        )
        return Hl7Outcome(
            ack_code=AckCode.ACCEPT,
            control_id=parsed.header.control_id,
            problems=(),
            message_ids=ids,
            published=published,
            ack=build_ack(parsed.header, AckCode.ACCEPT, now=self._clock.now()),
        )

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        if self._connections >= self.config.max_connections:
            log.warning("mllp.connection_refused", peer=str(peer), open=self._connections)
            writer.close()
            return
        self._connections += 1
        log.info("mllp.connection_opened", peer=str(peer))
        try:
            await self._converse(MllpFrameReader(reader, self.config.max_message_bytes), writer)
        except (ConnectionError, OSError) as exc:
            log.info("mllp.connection_lost", peer=str(peer), error_class=type(exc).__name__)
        finally:
            self._connections -= 1
            writer.close()
            # The peer may already be gone; closing is best effort and bounded.
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                async with asyncio.timeout(self.config.write_timeout_s):
                    await writer.wait_closed()
            log.info("mllp.connection_closed", peer=str(peer))

    async def _converse(self, frames: MllpFrameReader, writer: asyncio.StreamWriter) -> None:
        config = self.config
        while True:
            if not frames.in_frame:
                try:
                    async with asyncio.timeout(config.idle_timeout_s):
                        found, discarded = await frames.wait_for_start()
                except TimeoutError:
                    log.info("mllp.idle_timeout")
                    return
                if discarded:
                    log.warning("mllp.garbage_discarded", bytes=discarded)
                if not found:
                    return  # the peer closed between messages: the normal end
            try:
                async with asyncio.timeout(config.frame_timeout_s):
                    event = await frames.read_body()
            except TimeoutError:
                log.warning("mllp.frame_timeout")
                return
            if isinstance(event, TruncatedFrame):
                log.warning("mllp.frame_truncated", bytes=event.size)
                return
            if isinstance(event, RestartedFrame):
                log.warning("mllp.frame_restarted", discarded=event.size)
                continue
            if isinstance(event, OversizedFrame):
                log.warning("mllp.frame_oversized")
                outcome = self.reject_oversized(event.head)
            else:
                outcome = await self._guarded(event.body)
            writer.write(START_BLOCK + outcome.ack + END_BLOCK)
            async with asyncio.timeout(config.write_timeout_s):
                await writer.drain()

    async def _guarded(self, raw: bytes) -> Hl7Outcome:
        try:
            return await self.handle(raw)
        except Exception:  # the listener's boundary: a bug answers AR and never kills it
            log.exception("hl7.internal_error")
            problem = FieldProblem(
                "MSH", "internal error", "internal error; the message was not stored"
            )
            return self._answer(
                Hl7Rejected([problem], ack_code=AckCode.REJECT, error_code=Hl7ErrorCode.INTERNAL)
            )


def _not_stored(header: MessageHeader, why: str) -> Hl7Rejected:
    problem = FieldProblem("MSH", "not stored", f"not stored: {why}; send it again later")
    return Hl7Rejected(
        [problem], ack_code=AckCode.REJECT, error_code=Hl7ErrorCode.INTERNAL, header=header
    )


def _parse_or_rejection(raw: bytes, config: Hl7Config) -> AdtMessage | Hl7Rejected:
    try:
        return parse_adt(raw, config=config)
    except Hl7Rejected as exc:
        return exc


# --- batch files ---------------------------------------------------------------------------

_BATCH_SEGMENTS: Final = (b"FHS", b"BHS", b"BTS", b"FTS")


def split_batch(data: bytes) -> list[bytes]:
    """The messages of a batch file: each starts at an MSH segment.

    Segments may end in CR, CRLF or LF; blank lines, MLLP framing bytes and the batch envelope
    segments (FHS, BHS, BTS, FTS) are dropped. Works on bytes, before any decoding, because each
    message may declare its own MSH-18.
    """
    messages: list[list[bytes]] = []
    for line in _normalise_line_endings(data).split(b"\r"):
        segment = line.strip(b" \t\x0b\x1c")
        if not segment or segment[:3] in _BATCH_SEGMENTS:
            continue
        if segment.startswith(b"MSH") or not messages:
            messages.append([segment])
        else:
            messages[-1].append(segment)
    return [b"\r".join(segments) + b"\r" for segments in messages]


async def ingest_file(
    path: Path,
    sink: EnvelopeSink,
    *,
    config: Hl7Config | None = None,
    clock: Clock | None = None,
) -> list[Hl7Outcome]:
    """Publish every message of an HL7 batch file (CR, CRLF or LF separated), in order."""
    return await Hl7Intake(sink, config=config, clock=clock).ingest_file(path)


async def start_mllp_server(
    host: str,
    port: int,
    sink: EnvelopeSink,
    *,
    config: Hl7Config | None = None,
    clock: Clock | None = None,
) -> asyncio.Server:
    """Start an MLLP listener and return the asyncio server (its sockets tell the port)."""
    return await Hl7Intake(sink, config=config, clock=clock).start_server(host, port)


async def serve_mllp(
    host: str,
    port: int,
    sink: EnvelopeSink,
    *,
    config: Hl7Config | None = None,
    clock: Clock | None = None,
    on_started: Callable[[asyncio.Server], None] | None = None,
) -> None:
    """Serve MLLP on ``host:port`` until cancelled.

    Each connection is read frame by frame (``0x0B message 0x1C 0x0D``), one message answered
    before the next is read, so a sender's messages are published in the order sent. Framing
    faults never stop the listener: bytes before a start block are discarded, a start block
    inside a frame (the end block was lost) starts the frame anew, a frame over
    ``max_message_bytes`` is skipped to its end block and answered AR, and a connection that is
    idle too long, stalls inside a frame or closes inside one is closed.
    """
    server = await start_mllp_server(host, port, sink, config=config, clock=clock)
    async with server:
        if on_started is not None:
            on_started(server)
        await server.serve_forever()


# --- MLLP framing --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete frame: the message between the start and end blocks."""

    body: bytes


@dataclass(frozen=True, slots=True)
class OversizedFrame:
    """A frame over the size limit, skipped to its end; ``head`` keeps its first 4096 bytes."""

    head: bytes


@dataclass(frozen=True, slots=True)
class RestartedFrame:
    """A start block came before the end block: the ``size`` bytes before it were dropped."""

    size: int


@dataclass(frozen=True, slots=True)
class TruncatedFrame:
    """The peer closed inside a frame after ``size`` bytes."""

    size: int


class MllpFrameReader:
    """MLLP frames from a stream, in bounded memory whatever the peer sends.

    Memory stays under ``max_bytes`` plus one read chunk (64 KiB): an oversized frame is
    dropped as it arrives, keeping only its head.
    """

    _CHUNK = 64 * 1024

    def __init__(self, reader: asyncio.StreamReader, max_bytes: int) -> None:
        self._reader = reader
        self._max = max_bytes
        self._buffer = bytearray()
        self.in_frame = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes read from the stream and not yet handed out or dropped."""
        return len(self._buffer)

    async def _fill(self) -> bool:
        chunk = await self._reader.read(self._CHUNK)
        self._buffer += chunk
        return bool(chunk)

    async def wait_for_start(self) -> tuple[bool, int]:
        """Consume up to and including the next start block.

        Returns whether one was found (False: the stream ended) and how many bytes before it
        were discarded.
        """
        discarded = 0
        while True:
            index = self._buffer.find(START_BLOCK)
            if index >= 0:
                discarded += index
                del self._buffer[: index + 1]
                self.in_frame = True
                return True, discarded
            discarded += len(self._buffer)
            self._buffer.clear()
            if not await self._fill():
                return False, discarded

    async def read_body(self) -> Frame | OversizedFrame | RestartedFrame | TruncatedFrame:
        """The rest of the current frame, once its end block (or a fault) is seen."""
        head: bytes | None = None  # set once the frame is known to be too large
        skipped = 0
        while True:
            end = self._buffer.find(END_BLOCK)
            start = self._buffer.find(START_BLOCK, 0, end if end >= 0 else len(self._buffer))
            if start >= 0:
                # A new frame began before this one ended: its end block was lost.
                size = skipped + start
                del self._buffer[: start + 1]
                return OversizedFrame(head) if head is not None else RestartedFrame(size)
            if end >= 0:
                body = bytes(self._buffer[:end])
                del self._buffer[: end + len(END_BLOCK)]
                self.in_frame = False
                if head is not None or end > self._max:
                    return OversizedFrame(head if head is not None else body[:_HEAD_BYTES])
                return Frame(body)
            if head is None and len(self._buffer) > self._max:
                head = bytes(self._buffer[:_HEAD_BYTES])
            if head is not None:
                # Keep the last byte: it may be the first half of the end block.
                skipped += len(self._buffer) - 1
                del self._buffer[:-1]
            if not await self._fill():
                size = skipped + len(self._buffer)
                self._buffer.clear()
                self.in_frame = False
                return TruncatedFrame(size)
