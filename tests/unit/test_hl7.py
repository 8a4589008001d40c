"""The HL7 v2 ADT adapter: parsing, mapping, ACKs, batch files and MLLP framing (no broker)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.clock import FixedClock
from hub.errors import TransientError, ValidationFailed
from producers.adapters import admission_message_id, discharge_message_id
from producers.hl7 import (
    AckCode,
    AdtMessage,
    Frame,
    Hl7Config,
    Hl7Intake,
    Hl7Outcome,
    Hl7Rejected,
    MllpFrameReader,
    OversizedFrame,
    RestartedFrame,
    TruncatedFrame,
    adt_to_envelopes,
    parse_adt,
    split_batch,
)
from tests.support.journal import (
    EPISODE,
    HEALTH_CENTRE,
    PATIENT,
    SAMO_OID,
    WARD,
    adt_bytes,
    adt_text,
    coordination_number,
)
from topics.catalogue import MessageType
from topics.messages import Envelope

TODAY = date(2027, 3, 26)
NOW = datetime(2027, 3, 26, 7, 45, tzinfo=UTC)
ADMITTED = datetime(2027, 3, 26, 7, 30, tzinfo=UTC)
DISCHARGED = datetime(2027, 4, 2, 9, 15, tzinfo=UTC)  # 11:15 CEST


class ListSink:
    """Records what it was asked to publish; optionally fails first."""

    def __init__(self, fail_with: list[BaseException] | None = None) -> None:
        self.published: list[Envelope] = []
        self._failures = list(fail_with or [])

    async def publish(self, envelope: Envelope) -> object:
        if self._failures:
            raise self._failures.pop(0)
        self.published.append(envelope)
        return None


def envelopes_of(raw: bytes, today: date = TODAY) -> list[Envelope]:
    return adt_to_envelopes(parse_adt(raw), today=today)


def rejection(raw: bytes, today: date = TODAY) -> Hl7Rejected:
    with pytest.raises(Hl7Rejected) as caught:
        envelopes_of(raw, today)
    return caught.value


def problems(exc: Hl7Rejected) -> list[str]:
    return [str(problem) for problem in exc.problems]


def ack_fields(outcome: Hl7Outcome) -> dict[str, str]:
    """The ACK read back with python-hl7 (ISO 8859-1, as it is written)."""
    ack = hl7.parse(outcome.ack.decode("iso8859-1"))
    fields = {
        "MSH-3": str(ack.segment("MSH")[3]),
        "MSH-4": str(ack.segment("MSH")[4]),
        "MSH-5": str(ack.segment("MSH")[5]),
        "MSH-6": str(ack.segment("MSH")[6]),
        "MSH-9": str(ack.segment("MSH")[9]),
        "MSA-1": ack.extract_field("MSA", 1, 1),
        "MSA-2": ack.extract_field("MSA", 1, 2),
        "MSA-3": ack.extract_field("MSA", 1, 3),
    }
    errors = [str(segment) for segment in ack if str(segment[0]) == "ERR"]
    return {**fields, "ERR": " / ".join(errors)}


# --- the envelope of each trigger ------------------------------------------------------------


def test_admission_id_is_the_documented_uuid5() -> None:
    """An admission notice id is uuid5(namespace, episode|admission_notice|UTC instant)."""
    namespace = UUID("2b0f6a52-8c1e-4f3d-9a7b-5e4c3d2a1f03")
    expected = uuid.uuid5(namespace, f"{EPISODE}|admission_notice|2027-03-26T07:30:00+00:00")
    assert admission_message_id(EPISODE, ADMITTED) == expected
    assert discharge_message_id(EPISODE, ADMITTED) == uuid.uuid5(
        namespace, f"{EPISODE}|discharge_notice|2027-03-26T07:30:00+00:00"
    )


def test_a01_becomes_the_admission_notice() -> None:
    """A01 maps PID-3, PV1-3, PV1-19, PV1-44, PV2-9, PD1-3.10 and PID-11.9 into a whole envelope."""
    assert envelopes_of(adt_bytes("A01")) == [
        Envelope.model_validate(
            {
                "message_id": str(admission_message_id(EPISODE, ADMITTED)),
                "message_type": "admission_notice",
                "episode_id": EPISODE,
                "sender": WARD,
                "patient": PATIENT,
                "occurred_at": "2027-03-26T07:40:00Z",  # EVN-2, 08:40 local
                "sent_at": "2027-03-26T07:41:00Z",  # MSH-7, 08:41 local
                "payload": {
                    "kind": "admission_notice",
                    "ward": WARD,
                    "admitted_at": "2027-03-26T07:30:00Z",
                    "expected_discharge_date": "2027-04-02",
                    "listed_health_centre": HEALTH_CENTRE,
                    "home_municipality": "2580",
                },
            }
        )
    ]


@pytest.mark.parametrize(
    ("trigger", "fields", "expected_type", "expected_payload"),
    [
        (
            "A02",
            {"pv1": {3: "SE2321000230-SYN9"}, "pv2": {9: "20270405"}},
            MessageType.EPISODE_UPDATED,
            {
                "kind": "episode_updated",
                "listed_health_centre": HEALTH_CENTRE,
                "home_municipality": "2580",
                "expected_discharge_date": date(2027, 4, 5),
            },
        ),
        (
            "A03",
            {"pv1": {45: "20270402111500"}},
            MessageType.DISCHARGE_NOTICE,
            {"kind": "discharge_notice", "discharged_at": DISCHARGED},
        ),
        (
            "A08",
            {"pd1": {3: None}, "pid": {11: "Storgatan 1^^Boden^^96131^SWE^H^^2582"}},
            MessageType.EPISODE_UPDATED,
            {
                "kind": "episode_updated",
                "listed_health_centre": None,
                "home_municipality": "2582",
                "expected_discharge_date": date(2027, 4, 2),
            },
        ),
    ],
)
def test_each_update_trigger_maps_to_its_message(
    trigger: str,
    fields: dict[str, Any],
    expected_type: MessageType,
    expected_payload: dict[str, Any],
) -> None:
    """A02 and A08 carry the stay's changed facts, A03 the discharge time (PV1-45)."""
    [envelope] = envelopes_of(adt_bytes(trigger, **fields))
    assert envelope.message_type == expected_type
    assert envelope.payload.model_dump() == expected_payload
    assert envelope.sender == fields.get("pv1", {}).get(3, WARD)


def test_a03_id_is_the_derived_discharge_id() -> None:
    """The discharge notice is named by the stay and its discharge time, so A13 can cancel it."""
    [envelope] = envelopes_of(adt_bytes("A03", pv1={45: "20270402111500"}))
    assert envelope.message_id == discharge_message_id(EPISODE, DISCHARGED)


def test_a11_cancels_the_admission_notice_of_the_a01() -> None:
    """A11 names the id the A01 got: same visit number and admit time (PV1-44)."""
    [admission] = envelopes_of(adt_bytes("A01"))
    [cancel] = envelopes_of(adt_bytes("A11", msh={10: "CTRL0002"}, pd1={3: None}, pv2={9: None}))
    assert cancel.message_type == MessageType.CANCELLATION
    assert cancel.payload.model_dump() == {
        "kind": "cancellation",
        "cancelled_message_id": admission.message_id,
        "reason": "Inskrivningen makulerad i journalsystemet (HL7 ADT^A11).",
    }
    assert cancel.causation_id == admission.message_id
    assert cancel.message_id not in {admission.message_id}


def test_a13_cancels_the_discharge_notice_of_the_a03() -> None:
    """A13 names the id the A03 got: same visit number and discharge time (PV1-45)."""
    [discharge] = envelopes_of(adt_bytes("A03", pv1={45: "20270402111500"}))
    [cancel] = envelopes_of(adt_bytes("A13", msh={10: "CTRL0003"}, pv1={45: "20270402111500"}))
    assert cancel.payload.model_dump() == {
        "kind": "cancellation",
        "cancelled_message_id": discharge.message_id,
        "reason": "Utskrivningen makulerad i journalsystemet (HL7 ADT^A13).",
    }


def test_a02_without_a_contract_fact_publishes_nothing() -> None:
    """A transfer that changes only the ward maps to no envelope (the contract has no ward move)."""
    raw = adt_bytes("A02", pd1={3: None}, pid={11: None}, pv2={9: None})
    assert envelopes_of(raw) == []


def test_non_inpatient_visit_publishes_nothing() -> None:
    """A visit whose PV1-2 patient class is not I (inpatient) is not a discharge-planning stay."""
    assert envelopes_of(adt_bytes("A01", pv1={2: "O"})) == []


def test_same_control_id_gives_the_same_envelope_id() -> None:
    """A resent A08 (same MSH-4 and MSH-10) maps to the same envelope id; another id differs."""
    first = envelopes_of(adt_bytes("A08"))[0].message_id
    again = envelopes_of(adt_bytes("A08"))[0].message_id
    other = envelopes_of(adt_bytes("A08", msh={10: "CTRL0099"}))[0].message_id
    assert (first == again, first == other) == (True, False)


def test_samordningsnummer_under_its_own_oid_is_accepted() -> None:
    """PID-3 with assigning authority 1.2.752.129.2.1.3.3 carries a samordningsnummer."""
    number = coordination_number()
    [envelope] = envelopes_of(adt_bytes(pid={3: f"{number}^^^SE&{SAMO_OID}&ISO^NNSWE"}))
    assert envelope.patient == f"{number[:8]}-{number[8:]}"


@pytest.mark.parametrize(
    ("pid3", "expected"),
    [
        (
            "191212121213^^^SE&1.2.752.129.2.1.3.1&ISO^NNSWE",
            ["PID-3: check digit does not match"],
        ),
        (
            "X123^^^LOCAL",
            [
                "PID-3: no identifier with assigning authority 1.2.752.129.2.1.3.1 "
                "(personnummer) or 1.2.752.129.2.1.3.3 (samordningsnummer)"
            ],
        ),
        (
            f"{coordination_number()}^^^SE&1.2.752.129.2.1.3.1&ISO",
            ["PID-3: a samordningsnummer must have assigning authority 1.2.752.129.2.1.3.3"],
        ),
        (
            "191212121212^^^SE&1.2.752.129.2.1.3.3&ISO",
            ["PID-3: a personnummer must have assigning authority 1.2.752.129.2.1.3.1"],
        ),
        ("２０１２１２１２１２１２^^^SE&1.2.752.129.2.1.3.1&ISO", None),
    ],
)
def test_bad_patient_identifiers_are_refused_naming_pid3(
    pid3: str, expected: list[str] | None
) -> None:
    """Bad check digit, no Swedish OID, OID of the wrong kind, non-ASCII digits: AE at PID-3."""
    exc = rejection(adt_bytes(pid={3: pid3}))
    assert exc.ack_code == AckCode.ERROR
    if expected is not None:
        assert problems(exc) == expected
    assert [problem.location for problem in exc.problems] == ["PID-3"]


def test_missing_fields_are_all_named() -> None:
    """An A01 without PV2-9 and PD1 gets one problem per missing field."""
    exc = rejection(adt_bytes("A01", pv2={9: None}, omit=("PD1",)))
    assert problems(exc) == ["PV2-9: required in A01", "PD1-3: required in A01"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"pv1": {3: "WARD7"}},
            [
                "PV1-3: must be an HSA-id: SE, a 10-digit organisation number, '-', "
                "1-31 letters or digits",
            ]
            * 2,  # the envelope's sender and the payload's ward
        ),
        (
            {"pv2": {9: "20270325"}},
            ["PV2-9: expected_discharge_date must not be before the admission date"],
        ),
        (
            {"pid": {11: "^^Luleå^^^^H^^258"}},
            ["PID-11.9: must be a kommunkod: four ASCII digits, the first two a county code 01-25"],
        ),
    ],
)
def test_contract_rules_are_reported_at_hl7_fields(
    fields: dict[str, Any], expected: list[str]
) -> None:
    """Envelope rules (HSA-id, date order, kommunkod) are reported at their HL7 field."""
    assert problems(rejection(adt_bytes("A01", **fields))) == expected


# --- local time to UTC -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pv1_44", "expected_utc"),
    [
        ("20270326083000", "2027-03-26T07:30:00+00:00"),  # CET, winter
        ("202707011200", "2027-07-01T10:00:00+00:00"),  # CEST, minutes only
        ("20270328015959", "2027-03-28T00:59:59+00:00"),  # last second of CET
        ("20270328030000", "2027-03-28T01:00:00+00:00"),  # first local time of CEST
        ("20270328023000", "2027-03-28T01:30:00+00:00"),  # in the gap: read as 03:30 CEST
        ("20271031023000", "2027-10-31T00:30:00+00:00"),  # in the fold: first (CEST) occurrence
        ("20271031033000", "2027-10-31T02:30:00+00:00"),  # after the fold, CET
        ("20270326083000+0000", "2027-03-26T08:30:00+00:00"),  # explicit offset wins
        ("20270326083000.25-0500", "2027-03-26T13:30:00.250000+00:00"),
    ],
)
def test_hl7_times_without_offset_are_stockholm_local(pv1_44: str, expected_utc: str) -> None:
    """PV1-44 without a UTC offset is Europe/Stockholm local time, across both DST switches."""
    message = parse_adt(adt_bytes(pv1={44: pv1_44}))
    assert message.admitted_at is not None
    assert message.admitted_at.isoformat() == expected_utc


@pytest.mark.parametrize("pv1_44", ["2027032608", "20270230083000", "2027-03-26T08:30", "２０２７"])
def test_malformed_times_are_refused(pv1_44: str) -> None:
    """Hour-only precision, impossible dates, ISO text and non-ASCII digits are AE at PV1-44."""
    with pytest.raises(Hl7Rejected) as caught:
        parse_adt(adt_bytes(pv1={44: pv1_44}))
    assert [p.location for p in caught.value.problems] == ["PV1-44"]
    assert caught.value.ack_code == AckCode.ERROR


# --- character sets (MSH-18) -----------------------------------------------------------------


def test_iso_8859_1_bytes_with_swedish_letters_are_decoded() -> None:
    """8859/1 bytes (å ä ö as single bytes) and the UTF-8 message read the same."""
    latin = adt_bytes("A08", charset="8859/1", msh={4: "Sjukhus Öjebyn"})
    assert "Ö".encode("iso8859-1") in latin
    assert "Ö".encode() not in latin
    utf8 = adt_bytes("A08", charset="UNICODE UTF-8", msh={4: "Sjukhus Öjebyn"})
    from_latin, from_utf8 = parse_adt(latin), parse_adt(utf8)
    assert (from_latin.sending_facility, from_utf8.sending_facility) == (
        "Sjukhus Öjebyn",
        "Sjukhus Öjebyn",
    )
    # So the envelope id, derived from MSH-4, does not depend on the character set.
    assert envelopes_of(latin)[0].message_id == envelopes_of(utf8)[0].message_id


@pytest.mark.parametrize(
    ("raw", "config", "expected"),
    [
        # 8859/1 bytes declared as UTF-8.
        (
            adt_bytes(charset="8859/1").replace(b"8859/1", b"UNICODE UTF-8"),
            Hl7Config(),
            (AckCode.ERROR, "MSH-18"),
        ),
        # No MSH-18: the configured default (UTF-8) applies, and these bytes are not UTF-8.
        (
            adt_bytes(charset="8859/1").replace(b"|8859/1", b""),
            Hl7Config(),
            (AckCode.ERROR, "MSH-18"),
        ),
        # A charset the adapter does not read.
        (adt_bytes(msh={18: "UNICODE UTF-16"}), Hl7Config(), (AckCode.REJECT, "MSH-18")),
    ],
)
def test_wrong_or_unknown_charsets_are_refused(
    raw: bytes, config: Hl7Config, expected: tuple[AckCode, str]
) -> None:
    """Bytes that do not decode in the declared (or default) charset are AE; unknown ones AR."""
    with pytest.raises(Hl7Rejected) as caught:
        parse_adt(raw, config=config)
    assert (caught.value.ack_code, caught.value.problems[0].location) == expected


def test_default_charset_applies_when_msh18_is_empty() -> None:
    """With default_charset 8859/1, an undeclared ISO 8859-1 message is read as such."""
    raw = adt_bytes("A08", charset="8859/1", msh={4: "Sjukhus Öjebyn"}).replace(b"|8859/1", b"")
    message = parse_adt(raw, config=Hl7Config(default_charset="8859/1"))
    assert message.sending_facility == "Sjukhus Öjebyn"


# --- header checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            adt_bytes(msh={9: "ORU^R01^ORU_R01"}),
            (AckCode.REJECT, "MSH-9", "Unsupported message type"),
        ),
        (
            adt_bytes(msh={9: "ADT^A04^ADT_A01"}),
            (AckCode.REJECT, "MSH-9", "Unsupported event code"),
        ),
        (adt_bytes(msh={11: "T"}), (AckCode.REJECT, "MSH-11", "Unsupported processing id")),
        (adt_bytes(msh={12: "2.2"}), (AckCode.REJECT, "MSH-12", "Unsupported version id")),
        (adt_bytes(msh={10: None}), (AckCode.ERROR, "MSH-10", "Required field missing")),
        (adt_bytes(msh={7: None}), (AckCode.ERROR, "MSH-7", "Required field missing")),
        (adt_bytes(omit=("PV1",)), (AckCode.ERROR, "PV1", "Segment sequence error")),
        (b"hello, this is not HL7", (AckCode.REJECT, "MSH", "Segment sequence error")),
        (adt_bytes() + adt_bytes(), (AckCode.REJECT, "MSH", "Segment sequence error")),
    ],
)
def test_header_and_structure_problems(raw: bytes, expected: tuple[AckCode, str, str]) -> None:
    """What the hub does not take is AR; a malformed message AE; each names its field."""
    with pytest.raises(Hl7Rejected) as caught:
        parse_adt(raw)
    exc = caught.value
    assert (exc.ack_code, exc.problems[0].location, exc.problems[0].rule) == expected


def test_lf_and_crlf_segment_separators_are_accepted() -> None:
    """Segments separated by LF or CRLF read like CR-separated ones."""
    expected = envelopes_of(adt_bytes())
    for separator in ("\n", "\r\n"):
        raw = adt_text(separator=separator).encode()
        assert envelopes_of(raw) == expected


# --- the intake and its ACKs -----------------------------------------------------------------


def intake(sink: ListSink, **config: Any) -> Hl7Intake:
    return Hl7Intake(sink, config=Hl7Config(**config), clock=FixedClock(NOW))


async def test_accepted_message_gets_aa_after_publish() -> None:
    """AA comes back once the sink returned; the ACK swaps sender and receiver and echoes MSH-10."""
    sink = ListSink()
    outcome = await intake(sink).handle(adt_bytes())
    assert [e.message_id for e in sink.published] == [admission_message_id(EPISODE, ADMITTED)]
    assert ack_fields(outcome) == {
        "MSH-3": "DISCHARGEHUB",
        "MSH-4": "REGION",
        "MSH-5": "JOURNAL",
        "MSH-6": "SE2321000230-SYNSUN",
        "MSH-9": "ACK^A01^ACK",
        "MSA-1": "AA",
        "MSA-2": "CTRL0001",
        "MSA-3": "",
        "ERR": "",
    }
    ack = hl7.parse(outcome.ack.decode("iso8859-1"))
    assert ack.extract_field("MSH", 1, 7) == "20270326084500+0100"  # Stockholm time, with offset
    assert ack.extract_field("MSH", 1, 18) == "UNICODE UTF-8"


async def test_bad_check_digit_gets_ae_with_reason_and_no_number() -> None:
    """AE names PID-3 and the rule in MSA-3 and ERR; neither the number nor a digit run leaks."""
    sink = ListSink()
    raw = adt_bytes(pid={3: "191212121213^^^SE&1.2.752.129.2.1.3.1&ISO^NNSWE"})
    outcome = await intake(sink).handle(raw)
    assert sink.published == []
    assert ack_fields(outcome) == {
        "MSH-3": "DISCHARGEHUB",
        "MSH-4": "REGION",
        "MSH-5": "JOURNAL",
        "MSH-6": "SE2321000230-SYNSUN",
        "MSH-9": "ACK^A01^ACK",
        "MSA-1": "AE",
        "MSA-2": "CTRL0001",
        "MSA-3": "PID-3: check digit does not match",
        "ERR": "ERR||PID^1^3^1|102^Data type error^HL70357|E||||PID-3: check digit does not match",
    }
    assert b"1212121213" not in outcome.ack


async def test_resent_message_is_published_once() -> None:
    """The same message twice (the sender missed our ACK): AA both times, one publish."""
    sink = ListSink()
    adapter = intake(sink)
    first = await adapter.handle(adt_bytes("A08"))
    second = await adapter.handle(adt_bytes("A08"))
    assert (first.ack_code, second.ack_code) == (AckCode.ACCEPT, AckCode.ACCEPT)
    assert (first.published, second.published, len(sink.published)) == (1, 0, 1)
    assert first.message_ids == second.message_ids


async def test_broker_failure_gets_ar_and_a_resend_publishes() -> None:
    """A retriable sink error answers AR (send again); the resent message is then published."""
    sink = ListSink(fail_with=[TransientError("broker: not reachable")])
    adapter = intake(sink)
    failed = await adapter.handle(adt_bytes())
    retried = await adapter.handle(adt_bytes())
    assert (ack_fields(failed)["MSA-1"], ack_fields(failed)["MSA-3"]) == (
        "AR",
        "MSH: not stored: the hub is unavailable; send it again later",
    )
    assert (retried.ack_code, retried.published, len(sink.published)) == (AckCode.ACCEPT, 1, 1)


async def test_sink_validation_error_gets_ae() -> None:
    """A non-retriable hub error from the sink is AE with its (patient-free) message."""
    sink = ListSink(fail_with=[ValidationFailed("sender: not allowed for this system")])
    outcome = await intake(sink).handle(adt_bytes())
    assert (outcome.ack_code, [str(p) for p in outcome.problems]) == (
        AckCode.ERROR,
        ["MSH: sender: not allowed for this system"],
    )


async def test_slow_sink_gets_ar_after_the_publish_timeout() -> None:
    """A publish that does not return within publish_timeout_s is answered AR."""

    class SlowSink(ListSink):
        async def publish(self, envelope: Envelope) -> object:
            await asyncio.Event().wait()
            return None

    outcome = await intake(SlowSink(), publish_timeout_s=0.05).handle(adt_bytes())
    assert [str(p) for p in outcome.problems] == [
        "MSH: not stored: the broker did not confirm in time; send it again later"
    ]


async def test_ack_echoes_header_bytes_in_the_message_charset() -> None:
    """MSH-3/4 with Swedish letters come back byte for byte, in 8859/1 and in UTF-8."""
    for charset, codec in (("8859/1", "iso8859-1"), ("UNICODE UTF-8", "utf-8")):
        raw = adt_bytes("A08", charset=charset, msh={3: "Journal Åre"})
        outcome = await intake(ListSink()).handle(raw)
        assert outcome.ack_code == AckCode.ACCEPT
        assert "|Journal Åre|".encode(codec) in outcome.ack


async def test_garbage_gets_ar_with_an_empty_msa2() -> None:
    """A frame that is no HL7 message at all still gets an ACK: AR, nothing to echo."""
    outcome = await intake(ListSink()).handle(b"\x00\xff garbage")
    fields = ack_fields(outcome)
    assert (fields["MSA-1"], fields["MSA-2"], fields["MSA-3"]) == (
        "AR",
        "",
        "MSH: the message must begin with an MSH segment",
    )


async def test_oversized_frame_answer_names_the_limit() -> None:
    """The answer to a too-large frame is AR built from its header."""
    outcome = intake(ListSink()).reject_oversized(adt_bytes()[:300])
    assert (ack_fields(outcome)["MSA-2"], ack_fields(outcome)["MSA-3"]) == (
        "CTRL0001",
        "MSH: larger than 1048576 bytes",
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.integers(min_value=0, max_value=400),
    noise=st.binary(max_size=40),
    cut=st.integers(min_value=0, max_value=60),
)
def test_mangled_messages_always_get_an_ack(prefix: int, noise: bytes, cut: int) -> None:
    """Any mangling of a valid message (bytes replaced) ends in an ACK, never an exception."""
    valid = adt_bytes()
    raw = valid[:prefix] + noise + valid[prefix + cut :]
    outcome = asyncio.run(intake(ListSink()).handle(raw))
    ack = hl7.parse(outcome.ack.decode("iso8859-1"))
    assert ack.extract_field("MSA", 1, 1) == outcome.ack_code.value


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_rejections(raw: bytes) -> None:
    """parse_adt on any bytes returns a message or raises Hl7Rejected, nothing else."""
    codes = set()
    try:
        parse_adt(raw)
    except Hl7Rejected as exc:
        codes.add(exc.ack_code)
    assert codes <= {AckCode.ERROR, AckCode.REJECT}


# --- batch files -----------------------------------------------------------------------------


def test_split_batch_keeps_each_message_and_drops_batch_segments() -> None:
    """A CRLF file with FHS/BHS/BTS/FTS and blank lines splits into its messages, bytes intact."""
    one = adt_bytes("A01", charset="8859/1")
    two = adt_bytes("A08", msh={10: "CTRL0002"})
    data = b"FHS|^~\\&\r\nBHS|^~\\&\r\n" + one.replace(b"\r", b"\r\n") + b"\r\n"
    data += two.replace(b"\r", b"\n") + b"BTS|2\r\nFTS|1\r\n"
    assert split_batch(data) == [one, two]


async def test_ingest_file_answers_each_message(tmp_path: Path) -> None:
    """A file of three messages (8859/1, UTF-8, and one broken) gives AA, AA, AE in order."""
    path = tmp_path / "batch.hl7"
    path.write_bytes(
        b"\r\n".join(
            [
                adt_bytes("A01", charset="8859/1"),
                adt_bytes("A08", msh={10: "CTRL0002"}),
                adt_bytes("A08", msh={10: "CTRL0003"}, pid={3: "X^^^LOCAL"}),
            ]
        )
    )
    sink = ListSink()
    outcomes = await intake(sink).ingest_file(path)
    assert [(o.control_id, o.ack_code) for o in outcomes] == [
        ("CTRL0001", AckCode.ACCEPT),
        ("CTRL0002", AckCode.ACCEPT),
        ("CTRL0003", AckCode.ERROR),
    ]
    assert [e.message_type for e in sink.published] == [
        MessageType.ADMISSION_NOTICE,
        MessageType.EPISODE_UPDATED,
    ]


# --- MLLP framing ----------------------------------------------------------------------------


async def frames_of(data: bytes, max_bytes: int = 4096) -> list[object]:
    """Feed bytes to a frame reader and collect what it reports until the stream ends."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = MllpFrameReader(reader, max_bytes)
    events: list[object] = []
    while True:
        if not frames.in_frame:
            found, discarded = await frames.wait_for_start()
            if discarded:
                events.append(("garbage", discarded))
            if not found:
                return events
        event = await frames.read_body()
        events.append(event)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x0bMSH|a\r\x1c\x0d", [Frame(b"MSH|a\r")]),
        (b"\x0bone\x1c\x0d\x0btwo\x1c\x0d", [Frame(b"one"), Frame(b"two")]),
        (b"junk\x0bone\x1c\x0d", [("garbage", 4), Frame(b"one")]),
        (b"\x0blost end\x0bnext\x1c\x0d", [RestartedFrame(8), Frame(b"next")]),
        (b"\x0btruncated", [TruncatedFrame(9)]),
        (b"\x0bcarriage\x1cnot an end\x1c\x0d", [Frame(b"carriage\x1cnot an end")]),
        (b"no frame at all", [("garbage", 15)]),
        (
            b"\x0b" + b"x" * 5000 + b"\x1c\x0d\x0bok\x1c\x0d",
            [OversizedFrame(b"x" * 4096), Frame(b"ok")],
        ),
    ],
)
async def test_frame_reader_resyncs_on_framing_errors(data: bytes, expected: list[object]) -> None:
    """Frames end at 0x1C 0x0D; garbage, lost end blocks and oversize are reported and resynced."""
    assert await frames_of(data) == expected


async def test_oversized_frame_is_skipped_in_bounded_memory() -> None:
    """A 3 MB frame fed in chunks is skipped to its end block; the next frame is intact."""
    reader = asyncio.StreamReader()
    frames = MllpFrameReader(reader, 8192)

    async def feed() -> None:
        reader.feed_data(b"\x0bMSH|big")
        for _ in range(48):
            reader.feed_data(b"y" * 65536)
            await asyncio.sleep(0)
            assert frames.buffered_bytes <= 8192 + 65536
        reader.feed_data(b"\x1c\x0d\x0bsmall\x1c\x0d")
        reader.feed_eof()

    async with asyncio.TaskGroup() as group:
        group.create_task(feed())
        assert await frames.wait_for_start() == (True, 0)
        first = await frames.read_body()
        assert await frames.wait_for_start() == (True, 0)
        second = await frames.read_body()
    head = (b"MSH|big" + b"y" * 4096)[:4096]  # the first 4096 bytes are kept to answer it
    assert (first, second) == (OversizedFrame(head), Frame(b"small"))


def test_adt_message_repr_hides_the_patient() -> None:
    """The parsed message's repr (what a traceback or log shows) carries no personnummer."""
    message: AdtMessage = parse_adt(adt_bytes())
    assert "191212121212" not in repr(message)
