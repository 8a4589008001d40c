"""The FHIR R4 adapter: Encounters (contained, Bundle, logical references) to envelopes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from hub.clock import FixedClock
from hub.errors import TransientError, ValidationFailed
from producers.adapters import admission_message_id, discharge_message_id
from producers.fhir import (
    EncounterFacts,
    FhirIntake,
    FhirRejected,
    fhir_to_envelopes,
    operation_outcome,
    read_encounters,
)
from tests.support.journal import (
    EPISODE,
    HEALTH_CENTRE,
    PATIENT,
    WARD,
    coordination_number,
    encounter_bundle,
    encounter_resource,
    patient_resource,
)
from topics.catalogue import MessageType
from topics.messages import Envelope

TODAY = date(2027, 3, 26)
RECEIVED = datetime(2027, 3, 26, 7, 45, tzinfo=UTC)
ADMITTED = datetime(2027, 3, 26, 7, 30, tzinfo=UTC)
EXPECTED_URL = "https://example.se/fhir/StructureDefinition/expected-discharge-date"
EXPECTED_PATH = f"Encounter.hospitalization.extension('{EXPECTED_URL}')"


def envelopes(resource: dict[str, Any], **kwargs: Any) -> list[Envelope]:
    return fhir_to_envelopes(resource, today=TODAY, received_at=RECEIVED, **kwargs)


def outcome_of(resource: Any) -> dict[str, object]:
    with pytest.raises(FhirRejected) as caught:
        envelopes(resource)
    outcome = operation_outcome(caught.value)
    OperationOutcome.model_validate(outcome)  # a valid R4 OperationOutcome
    return outcome


def issue(code: str, expression: str, diagnostics: str) -> dict[str, object]:
    return {
        "severity": "error",
        "code": code,
        "diagnostics": f"{expression}: {diagnostics}",
        "expression": [expression],
    }


def contained(patient: dict[str, Any] | None = None, **organizations: str) -> list[Any]:
    """The Encounter's contained list with a changed Patient or Organization HSA-ids."""
    ids = {"hc": HEALTH_CENTRE, "ward": WARD, **organizations}
    return [
        patient or patient_resource(),
        *(
            {
                "resourceType": "Organization",
                "id": key,
                "identifier": [{"system": "urn:oid:1.2.752.29.4.19", "value": value}],
            }
            for key, value in ids.items()
        ),
    ]


ADMISSION = {
    "message_type": "admission_notice",
    "episode_id": EPISODE,
    "sender": WARD,
    "patient": PATIENT,
    "occurred_at": "2027-03-26T07:40:00Z",  # meta.lastUpdated
    "sent_at": "2027-03-26T07:45:00Z",  # received_at
    "payload": {
        "kind": "admission_notice",
        "ward": WARD,
        "admitted_at": "2027-03-26T07:30:00Z",
        "expected_discharge_date": "2027-04-02",
        "listed_health_centre": HEALTH_CENTRE,
        "home_municipality": "2580",
    },
}


def test_encounter_with_contained_resources_becomes_the_admission_notice() -> None:
    """An in-progress Encounter maps status, period.start, the extension and the Patient."""
    expected = Envelope.model_validate(
        {"message_id": str(admission_message_id(EPISODE, ADMITTED)), **ADMISSION}
    )
    assert envelopes(encounter_resource()) == [expected]


def test_bundle_gives_the_same_envelope_as_contained_resources() -> None:
    """Patient and Organizations as Bundle entries (Type/id, absolute and urn:uuid fullUrls)."""
    assert envelopes(encounter_bundle()) == envelopes(encounter_resource())


def test_logical_references_by_identifier_are_enough() -> None:
    """serviceProvider and generalPractitioner may carry the HSA-id in Reference.identifier."""
    hsa = "urn:oid:1.2.752.29.4.19"
    patient = patient_resource(
        generalPractitioner=[{"identifier": {"system": hsa, "value": HEALTH_CENTRE}}]
    )
    resource = encounter_resource(
        contained=[patient],
        serviceProvider={"identifier": {"system": hsa, "value": WARD}},
    )
    assert envelopes(resource) == envelopes(encounter_resource())


@pytest.mark.parametrize("status", ["planned", "arrived", "triaged", "in-progress", "onleave"])
def test_active_statuses_give_the_admission_notice_on_first_sight(status: str) -> None:
    """Every status of a stay that has begun (or is about to) is an admission notice."""
    [envelope] = envelopes(encounter_resource(status=status))
    assert (envelope.message_type, envelope.message_id) == (
        MessageType.ADMISSION_NOTICE,
        admission_message_id(EPISODE, ADMITTED),
    )


def test_finished_gives_the_discharge_notice() -> None:
    """finished with period.end is the discharge notice, named by stay and discharge time."""
    period = {"start": "2027-03-26T08:30:00+01:00", "end": "2027-04-02T11:15:00+02:00"}
    [envelope] = envelopes(encounter_resource(status="finished", period=period))
    discharged = datetime(2027, 4, 2, 9, 15, tzinfo=UTC)
    assert (envelope.message_id, envelope.payload.model_dump()) == (
        discharge_message_id(EPISODE, discharged),
        {"kind": "discharge_notice", "discharged_at": discharged},
    )


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_cancelled_statuses_cancel_the_admission_notice(status: str) -> None:
    """cancelled / entered-in-error cancel the admission notice this stay produced."""
    [admission] = envelopes(encounter_resource())
    [cancel] = envelopes(encounter_resource(status=status))
    assert (cancel.message_type, cancel.causation_id, cancel.payload.model_dump()) == (
        MessageType.CANCELLATION,
        admission.message_id,
        {
            "kind": "cancellation",
            "cancelled_message_id": admission.message_id,
            "reason": "Vårdkontakten makulerad i journalsystemet "
            f"(FHIR Encounter.status {status}).",
        },
    )


_NOT_IN_VALUE_SET = issue(
    "code-invalid",
    "Encounter.status",
    "must be one of planned, arrived, triaged, in-progress, onleave, finished, "
    "cancelled, entered-in-error, unknown",
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ongoing", _NOT_IN_VALUE_SET),
        ("IN-PROGRESS", _NOT_IN_VALUE_SET),  # codes are case-sensitive
        # The R4B code type itself refuses surrounding whitespace.
        ("in-progress ", issue("value", "Encounter.status", "string pattern mismatch")),
        (
            "unknown",
            issue("not-supported", "Encounter.status", "unknown cannot be mapped to a message"),
        ),
    ],
)
def test_invalid_status_is_rejected(status: str, expected: dict[str, object]) -> None:
    """R4B accepts any code as status; the adapter refuses what is not in the R4 value set."""
    outcome = outcome_of(encounter_resource(status=status))
    assert outcome == {"resourceType": "OperationOutcome", "issue": [expected]}


def test_unchanged_stay_seen_again_publishes_nothing() -> None:
    """With the stay's previous facts given, the same Encounter maps to nothing."""
    [facts] = read_encounters(encounter_resource(), today=TODAY)
    assert envelopes(encounter_resource(), previous={EPISODE: facts}) == []


def test_changed_expected_date_after_first_sight_is_an_episode_update() -> None:
    """A later version with a new expected discharge date updates only that field."""
    [facts] = read_encounters(encounter_resource(), today=TODAY)
    later = encounter_resource(
        meta={"versionId": "4", "lastUpdated": "2027-03-27T10:00:00+01:00"},
        hospitalization={"extension": [{"url": EXPECTED_URL, "valueDate": "2027-04-05"}]},
    )
    [update] = envelopes(later, previous={EPISODE: facts})
    assert (update.message_type, update.payload.model_dump()) == (
        MessageType.EPISODE_UPDATED,
        {
            "kind": "episode_updated",
            "listed_health_centre": None,
            "home_municipality": None,
            "expected_discharge_date": date(2027, 4, 5),
        },
    )
    assert envelopes(later, previous={EPISODE: facts})[0].message_id == update.message_id


def test_samordningsnummer_system_is_accepted() -> None:
    """The samordningsnummer system urn:oid:1.2.752.129.2.1.3.3 carries a coordination number."""
    number = coordination_number()
    patient = patient_resource(
        identifier=[{"system": "urn:oid:1.2.752.129.2.1.3.3", "value": number}]
    )
    [envelope] = envelopes(encounter_resource(contained=contained(patient)))
    assert envelope.patient == f"{number[:8]}-{number[8:]}"


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        (
            {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": "191212121213"},
            issue("value", "Patient.identifier", "check digit does not match"),
        ),
        (
            {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": coordination_number()},
            issue(
                "value",
                "Patient.identifier",
                "a samordningsnummer must use system urn:oid:1.2.752.129.2.1.3.3",
            ),
        ),
        (
            {"system": "https://example.se/local-patient-id", "value": "191212121212"},
            issue(
                "required",
                "Patient.identifier",
                "needs an identifier with system urn:oid:1.2.752.129.2.1.3.1 (personnummer) "
                "or urn:oid:1.2.752.129.2.1.3.3 (samordningsnummer)",
            ),
        ),
    ],
)
def test_bad_patient_identifier_is_an_operation_outcome_without_the_number(
    identifier: dict[str, str], expected: dict[str, object]
) -> None:
    """Bad check digit, wrong system or none: one issue at Patient.identifier, no number in it."""
    patient = patient_resource(identifier=[identifier])
    outcome = outcome_of(encounter_resource(contained=contained(patient)))
    assert outcome == {"resourceType": "OperationOutcome", "issue": [expected]}
    assert identifier["value"] not in json.dumps(outcome)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"period": {"start": "2027-03-26T08:30:00"}},
            [issue("value", "Encounter.period.start", "value error")],
        ),
        (
            {"period": {"start": "2027-03-26"}},
            [
                issue(
                    "value",
                    "Encounter.period.start",
                    "must be a dateTime with a time and a UTC offset",
                )
            ],
        ),
        ({"bogus": 1}, [issue("structure", "Encounter.bogus", "extra forbidden")]),
        (
            {"identifier": None},
            [
                issue(
                    "required",
                    "Encounter.identifier",
                    "needs exactly one identifier (the visit number)",
                )
            ],
        ),
        (
            {"subject": {"reference": "Patient/elsewhere"}},
            [
                issue(
                    "not-found",
                    "Encounter.subject",
                    "reference cannot be resolved (use a contained resource, a Bundle entry "
                    "or Reference.identifier)",
                )
            ],
        ),
        (
            {"hospitalization": None, "period": None},
            [
                issue("required", "Encounter.period.start", "required when status is in-progress"),
                issue("required", EXPECTED_PATH, "required when status is in-progress"),
            ],
        ),
        (
            {"contained": contained(ward="WARD7")},
            [
                issue(
                    "value",
                    "Encounter.serviceProvider",
                    "must be an HSA-id: SE, a 10-digit organisation number, '-', "
                    "1-31 letters or digits",
                )
            ]
            * 2,  # the envelope's sender and the payload's ward
        ),
        (
            {"hospitalization": {"extension": [{"url": EXPECTED_URL, "valueDate": "2027-03-20"}]}},
            [
                issue(
                    "value",
                    EXPECTED_PATH,
                    "expected_discharge_date must not be before the admission date",
                )
            ],
        ),
    ],
)
def test_invalid_encounters_name_the_element(
    overrides: dict[str, Any], expected: list[dict[str, object]]
) -> None:
    """Each problem is an issue with a FHIRPath expression and the rule, never a value."""
    outcome = outcome_of(encounter_resource(**overrides))
    assert outcome == {"resourceType": "OperationOutcome", "issue": expected}


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            {"resourceType": "Patient"},
            issue("not-supported", "resourceType", "must be Encounter or Bundle"),
        ),
        ([1, 2], issue("structure", "(body)", "must be a JSON object")),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": []},
            issue("required", "Bundle.entry", "holds no Encounter"),
        ),
    ],
)
def test_resources_that_are_not_encounters_are_refused(
    resource: Any, expected: dict[str, object]
) -> None:
    """Only an Encounter or a Bundle holding one is taken."""
    assert outcome_of(resource) == {"resourceType": "OperationOutcome", "issue": [expected]}


def test_non_inpatient_encounter_publishes_nothing() -> None:
    """An ambulatory Encounter (class AMB) is not a discharge-planning stay."""
    code = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
    assert envelopes(encounter_resource(**{"class": code})) == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            TransientError("broker down"),
            {
                "severity": "error",
                "code": "transient",
                "diagnostics": "not stored now; send it again later",
            },
        ),
        (
            TimeoutError(),
            {
                "severity": "error",
                "code": "transient",
                "diagnostics": "not stored now; send it again later",
            },
        ),
        (
            ValidationFailed("sender: 19121212-1212 not allowed"),
            {
                "severity": "error",
                "code": "value",
                "diagnostics": "sender: [personnummer] not allowed",
            },
        ),
        (
            RuntimeError("boom 19121212-1212"),
            {"severity": "fatal", "code": "exception", "diagnostics": "internal error; not stored"},
        ),
    ],
)
def test_operation_outcome_of_other_errors(error: BaseException, expected: dict[str, str]) -> None:
    """Transient errors say try again; unknown errors say nothing of their text."""
    outcome = operation_outcome(error)
    OperationOutcome.model_validate(outcome)
    assert outcome == {"resourceType": "OperationOutcome", "issue": [expected]}


class ListSink:
    def __init__(self) -> None:
        self.published: list[Envelope] = []

    async def publish(self, envelope: Envelope) -> object:
        self.published.append(envelope)
        return None


async def test_intake_remembers_stays_between_submissions() -> None:
    """First sight admits; a resubmission publishes nothing; a changed date publishes an update."""
    sink = ListSink()
    intake = FhirIntake(sink, clock=FixedClock(RECEIVED))
    first = await intake.submit(encounter_resource())
    again = await intake.submit(encounter_resource())
    moved = await intake.submit(
        encounter_resource(
            hospitalization={"extension": [{"url": EXPECTED_URL, "valueDate": "2027-04-05"}]}
        )
    )
    assert (first.published, again.published, moved.published) == (1, 0, 1)
    assert [e.message_type for e in sink.published] == [
        MessageType.ADMISSION_NOTICE,
        MessageType.EPISODE_UPDATED,
    ]


def test_facts_repr_hides_the_patient() -> None:
    """EncounterFacts' repr carries no personnummer."""
    facts: EncounterFacts = read_encounters(encounter_resource(), today=TODAY)[0]
    assert "19121212" not in repr(facts)
