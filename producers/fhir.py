"""The FHIR R4 adapter: an Encounter (alone or in a Bundle) becomes envelopes.

The resource is validated with ``fhir.resources.R4B`` (the R4 models; the package's top level is
R5), then read into ``EncounterFacts`` and mapped. The status is checked here against the R4
value set, because the R4B model accepts any code (``"ongoing"`` passes; DOMAIN.md pitfall).

* ``planned``, ``arrived``, ``triaged``, ``in-progress``, ``onleave`` (the patient is, or is
  about to be, in the stay): an admission notice the first time the stay is seen; after that an
  episode update when the listed health centre, home municipality or expected discharge date
  changed (nothing when none did). The pure functions take what was seen before as
  ``previous``; ``FhirIntake`` remembers it.
* ``finished``: a discharge notice.
* ``cancelled``, ``entered-in-error``: a cancellation of the admission notice.
* ``unknown``, or anything else: refused.

Errors are answered as an OperationOutcome (``operation_outcome``) whose issues name the element
with a FHIRPath expression and the rule, never a value. The mapping is in
``docs/fhir-mapping.md``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final
from uuid import UUID

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from hub.calendar import local_date_of
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
    "ACTIVE_STATUSES",
    "EXPECTED_DISCHARGE_DATE_URL",
    "FHIR_MESSAGE_NAMESPACE",
    "HSA_ID_SYSTEM",
    "INPATIENT_CLASS_CODES",
    "MUNICIPALITY_CODE_URL",
    "PERSONNUMMER_SYSTEM",
    "SAMORDNINGSNUMMER_SYSTEM",
    "EncounterFacts",
    "EncounterStatus",
    "EnvelopeSink",
    "FhirConfig",
    "FhirIntake",
    "FhirIssue",
    "FhirRejected",
    "FhirResult",
    "IssueType",
    "facts_to_envelopes",
    "fhir_to_envelopes",
    "operation_outcome",
    "read_encounters",
]

log = get_logger(__name__)

PERSONNUMMER_SYSTEM: Final = "urn:oid:1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_SYSTEM: Final = "urn:oid:1.2.752.129.2.1.3.3"
HSA_ID_SYSTEM: Final = "urn:oid:1.2.752.29.4.19"

#: Extension on ``Encounter.hospitalization``: the expected discharge date, ``valueDate``.
EXPECTED_DISCHARGE_DATE_URL: Final = (
    "https://example.se/fhir/StructureDefinition/expected-discharge-date"
)
#: Extension on a ``Patient.address``: the municipality code (*kommunkod*), ``valueCode``.
MUNICIPALITY_CODE_URL: Final = "https://example.se/fhir/StructureDefinition/municipality-code"

_ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: ``Encounter.class`` codes of an inpatient stay (v3 ActCode IMP and its specialisations).
INPATIENT_CLASS_CODES: Final = frozenset({"IMP", "ACUTE", "NONAC"})

#: uuid5 namespace of FHIR-derived ids other than admission and discharge notices. Fixed.
FHIR_MESSAGE_NAMESPACE: Final = UUID("c4e8a2b6-1f3d-4c5e-8a7b-9d0e2f4a6b06")

_EXPECTED_PATH: Final = f"Encounter.hospitalization.extension('{EXPECTED_DISCHARGE_DATE_URL}')"
_MUNICIPALITY_PATH: Final = f"Patient.address.extension('{MUNICIPALITY_CODE_URL}')"
_UNRESOLVED: Final = (
    "reference cannot be resolved (use a contained resource, a Bundle entry or "
    "Reference.identifier)"
)
_CANCEL_REASON: Final = "Vårdkontakten makulerad i journalsystemet (FHIR Encounter.status {})."


class EncounterStatus(StrEnum):
    """``Encounter.status`` in FHIR R4 (value set encounter-status)."""

    PLANNED = "planned"
    ARRIVED = "arrived"
    TRIAGED = "triaged"
    IN_PROGRESS = "in-progress"
    ONLEAVE = "onleave"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"
    UNKNOWN = "unknown"


#: Statuses of a stay that has begun or is about to: admission notice on first sight.
ACTIVE_STATUSES: Final = frozenset(
    {
        EncounterStatus.PLANNED,
        EncounterStatus.ARRIVED,
        EncounterStatus.TRIAGED,
        EncounterStatus.IN_PROGRESS,
        EncounterStatus.ONLEAVE,
    }
)
_CANCELLED_STATUSES: Final = frozenset(
    {EncounterStatus.CANCELLED, EncounterStatus.ENTERED_IN_ERROR}
)


class IssueType(StrEnum):
    """The ``OperationOutcome.issue.code`` values this adapter uses (FHIR IssueType)."""

    STRUCTURE = "structure"
    REQUIRED = "required"
    VALUE = "value"
    CODE_INVALID = "code-invalid"
    NOT_SUPPORTED = "not-supported"
    NOT_FOUND = "not-found"
    TRANSIENT = "transient"
    EXCEPTION = "exception"


@dataclass(frozen=True, slots=True)
class FhirIssue:
    """One ``OperationOutcome.issue``: severity, code, diagnostics and the element's FHIRPath."""

    code: IssueType
    diagnostics: str
    expression: str | None = None
    severity: str = "error"


class FhirRejected(ValidationFailed):
    """A resource the adapter will not publish; ``issues`` say why, without values."""

    def __init__(self, issues: Iterable[FhirIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(_issue_text(issue) for issue in self.issues))

    @classmethod
    def one(cls, *, at: str, why: str, code: IssueType = IssueType.VALUE) -> FhirRejected:
        """A rejection with one issue at FHIRPath ``at``."""
        return cls([FhirIssue(code, f"{at}: {why}", at)])


def _issue_text(issue: FhirIssue) -> str:
    return issue.diagnostics


@dataclass(frozen=True, slots=True)
class FhirConfig:
    """Which ``Encounter.identifier`` is the visit number, and a prefix for episode ids.

    With ``episode_identifier_system`` unset the Encounter must carry exactly one identifier.
    """

    episode_identifier_system: str | None = None
    episode_id_prefix: str = ""


@dataclass(frozen=True, slots=True)
class EncounterFacts:
    """What the hub reads from one Encounter and the resources it references.

    ``patient`` is normalised (``YYYYMMDD-NNNC``; ``repr`` hides it). HSA-ids and the municipality
    code are as sent; the envelope checks them.
    """

    episode_id: str
    status: EncounterStatus
    inpatient: bool
    ward: str | None
    patient: str = field(repr=False)
    admitted_at: datetime | None
    discharged_at: datetime | None
    expected_discharge_date: date | None
    listed_health_centre: str | None
    home_municipality: str | None
    last_updated: datetime | None
    version_id: str | None


@dataclass(frozen=True, slots=True)
class FhirResult:
    """The envelopes a submitted resource maps to, and how many this call published."""

    message_ids: tuple[UUID, ...]
    published: int


# --- reading -------------------------------------------------------------------------------


def _fhirpath(root: str, loc: tuple[int | str, ...]) -> str:
    text = root
    for segment in loc:
        text += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return text


def _model_issues(root: str, exc: ValidationError) -> list[FhirIssue]:
    issues = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        kind = error["type"]
        code = {"missing": IssueType.REQUIRED, "extra_forbidden": IssueType.STRUCTURE}.get(
            kind, IssueType.VALUE
        )
        path = _fhirpath(root, error["loc"])
        issues.append(FhirIssue(code, f"{path}: {kind.replace('_', ' ')}", path))
    return issues


def _validate(resource_json: Mapping[str, object]) -> Encounter | Bundle:
    if not isinstance(resource_json, Mapping):
        raise FhirRejected.one(at="(body)", why="must be a JSON object", code=IssueType.STRUCTURE)
    resource_type = resource_json.get("resourceType")
    if resource_type not in {"Encounter", "Bundle"}:
        raise FhirRejected.one(
            at="resourceType",
            why="must be Encounter or Bundle",
            code=IssueType.NOT_SUPPORTED,
        )
    model = get_fhir_model_class(str(resource_type))
    try:
        validated = model.model_validate(dict(resource_json))
    except ValidationError as exc:
        raise FhirRejected(_model_issues(str(resource_type), exc)) from None
    if not isinstance(validated, Encounter | Bundle):  # pragma: no cover - by the check above
        raise FhirRejected.one(at="resourceType", why="unexpected", code=IssueType.NOT_SUPPORTED)
    return validated


class _References:
    """Resolves references: contained resources (``#id``), then Bundle entries."""

    def __init__(self, bundle: Bundle | None) -> None:
        self._entries: dict[str, Resource] = {}
        for entry in (bundle.entry or []) if bundle is not None else []:
            resource = entry.resource
            if resource is None:
                continue
            if entry.fullUrl:
                self._entries[entry.fullUrl] = resource
            if resource.id:
                self._entries[f"{resource.get_resource_type()}/{resource.id}"] = resource

    def resolve(self, encounter: Encounter, reference: Reference) -> Resource | None:
        target = reference.reference
        if not target:
            return None
        if target.startswith("#"):
            for resource in encounter.contained or []:
                if resource.id == target[1:]:
                    return resource
            return None
        found = self._entries.get(target)
        if found is None and "/" in target:
            # An absolute URL whose tail is Type/id, as many servers write fullUrl.
            found = self._entries.get("/".join(target.rsplit("/", 2)[-2:]))
        return found


def _identifier(identifiers: Iterable[Identifier] | None, systems: Iterable[str]) -> Identifier:
    wanted = set(systems)
    for identifier in identifiers or []:
        if identifier.system in wanted and identifier.value:
            return identifier
    return Identifier()


def _hsa_id(
    encounter: Encounter, references: _References, reference: Reference | None, path: str
) -> str | None:
    """The HSA-id of a referenced Organization, or of the reference's own identifier."""
    if reference is None:
        return None
    resolved = references.resolve(encounter, reference)
    if resolved is not None and not isinstance(resolved, Organization):
        raise FhirRejected.one(at=path, why="must reference an Organization")
    identifiers = [reference.identifier] if reference.identifier is not None else []
    if isinstance(resolved, Organization):
        identifiers += resolved.identifier or []
    found = _identifier(identifiers, [HSA_ID_SYSTEM]).value
    if found is None:
        if resolved is None and reference.reference:
            raise FhirRejected.one(at=path, why=_UNRESOLVED, code=IssueType.NOT_FOUND)
        why = f"the Organization has no identifier with system {HSA_ID_SYSTEM} (HSA-id)"
        raise FhirRejected.one(at=path, why=why, code=IssueType.REQUIRED)
    return found


def _instant(value: datetime | date | None, path: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise FhirRejected.one(at=path, why="must be a dateTime with a time and a UTC offset")
    return value


def _extension_date(extensions: Iterable[Extension] | None) -> date | None:
    for extension in extensions or []:
        if extension.url == EXPECTED_DISCHARGE_DATE_URL:
            value = extension.valueDate
            if value is None:
                raise FhirRejected.one(at=_EXPECTED_PATH, why="must have a valueDate")
            return value
    return None


def _municipality(patient: Patient | None) -> str | None:
    addresses = list(patient.address or []) if patient is not None else []
    addresses.sort(key=lambda address: address.use != "home")  # home addresses first
    for address in addresses:
        for extension in address.extension or []:
            if extension.url == MUNICIPALITY_CODE_URL:
                if not extension.valueCode:
                    raise FhirRejected.one(at=_MUNICIPALITY_PATH, why="must have a valueCode")
                return extension.valueCode
    return None


def _status(encounter: Encounter) -> EncounterStatus:
    raw = encounter.status
    if raw is None:
        raise FhirRejected.one(at="Encounter.status", why="required", code=IssueType.REQUIRED)
    try:
        status = EncounterStatus(raw)
    except ValueError:
        why = "must be one of " + ", ".join(s.value for s in EncounterStatus)
        raise FhirRejected.one(
            at="Encounter.status", why=why, code=IssueType.CODE_INVALID
        ) from None
    if status is EncounterStatus.UNKNOWN:
        raise FhirRejected.one(
            at="Encounter.status",
            why="unknown cannot be mapped to a message",
            code=IssueType.NOT_SUPPORTED,
        )
    return status


def _episode_id(encounter: Encounter, config: FhirConfig) -> str:
    identifiers = [i for i in encounter.identifier or [] if i.value]
    if config.episode_identifier_system is not None:
        identifiers = [i for i in identifiers if i.system == config.episode_identifier_system]
    if len(identifiers) != 1:
        why = (
            "needs exactly one identifier (the visit number)"
            if config.episode_identifier_system is None
            else f"needs one identifier with system {config.episode_identifier_system}"
        )
        raise FhirRejected.one(at="Encounter.identifier", why=why, code=IssueType.REQUIRED)
    return f"{config.episode_id_prefix}{identifiers[0].value}"


def _patient(
    encounter: Encounter, references: _References, today: date
) -> tuple[str, Patient | None]:
    subject = encounter.subject
    if subject is None:
        raise FhirRejected.one(at="Encounter.subject", why="required", code=IssueType.REQUIRED)
    resolved = references.resolve(encounter, subject)
    if resolved is not None and not isinstance(resolved, Patient):
        raise FhirRejected.one(at="Encounter.subject", why="must reference a Patient")
    patient = resolved if isinstance(resolved, Patient) else None
    identifiers = [subject.identifier] if subject.identifier is not None else []
    if patient is not None:
        identifiers += patient.identifier or []
    found = _identifier(identifiers, [PERSONNUMMER_SYSTEM, SAMORDNINGSNUMMER_SYSTEM])
    if found.value is None:
        if patient is None and subject.reference:
            raise FhirRejected.one(
                at="Encounter.subject", why=_UNRESOLVED, code=IssueType.NOT_FOUND
            )
        why = (
            f"needs an identifier with system {PERSONNUMMER_SYSTEM} (personnummer) or "
            f"{SAMORDNINGSNUMMER_SYSTEM} (samordningsnummer)"
        )
        raise FhirRejected.one(at="Patient.identifier", why=why, code=IssueType.REQUIRED)
    try:
        number = normalise_personal_identity_number(found.value, today=today)
    except ValidationFailed as exc:
        raise FhirRejected.one(at="Patient.identifier", why=str(exc)) from None
    coordination = int(number[6:8]) > 60
    if coordination != (found.system == SAMORDNINGSNUMMER_SYSTEM):
        why = (
            f"a samordningsnummer must use system {SAMORDNINGSNUMMER_SYSTEM}"
            if coordination
            else f"a personnummer must use system {PERSONNUMMER_SYSTEM}"
        )
        raise FhirRejected.one(at="Patient.identifier", why=why)
    return number, patient


def _is_inpatient(encounter: Encounter) -> bool:
    coding = encounter.class_fhir
    return coding.system == _ACT_CODE_SYSTEM and coding.code in INPATIENT_CLASS_CODES


def _facts(
    encounter: Encounter, references: _References, today: date, config: FhirConfig
) -> EncounterFacts:
    status = _status(encounter)
    episode_id = _episode_id(encounter, config)
    patient, patient_resource = _patient(encounter, references, today)
    period = encounter.period
    hospitalization = encounter.hospitalization
    general_practitioners = (
        list(patient_resource.generalPractitioner or []) if patient_resource else []
    )
    listed = None
    for index, reference in enumerate(general_practitioners):
        path = f"Patient.generalPractitioner[{index}]"
        resolved = references.resolve(encounter, reference)
        if resolved is None or isinstance(resolved, Organization):
            listed = _hsa_id(encounter, references, reference, path)
            break
    meta = encounter.meta
    return EncounterFacts(
        episode_id=episode_id,
        status=status,
        inpatient=_is_inpatient(encounter),
        ward=_hsa_id(encounter, references, encounter.serviceProvider, "Encounter.serviceProvider"),
        patient=patient,
        admitted_at=_instant(period.start if period else None, "Encounter.period.start"),
        discharged_at=_instant(period.end if period else None, "Encounter.period.end"),
        expected_discharge_date=_extension_date(
            hospitalization.extension if hospitalization else None
        ),
        listed_health_centre=listed,
        home_municipality=_municipality(patient_resource),
        last_updated=meta.lastUpdated if meta else None,
        version_id=meta.versionId if meta else None,
    )


def read_encounters(
    resource_json: Mapping[str, object], *, today: date, config: FhirConfig | None = None
) -> list[EncounterFacts]:
    """The facts of every Encounter in ``resource_json`` (an Encounter, or a Bundle of them).

    ``today`` (the local date) resolves 10-digit patient numbers and refuses future birth dates.
    Raises ``FhirRejected`` with every issue of the first Encounter that has one.
    """
    config = config or FhirConfig()
    validated = _validate(resource_json)
    if isinstance(validated, Encounter):
        return [_facts(validated, _References(None), today, config)]
    references = _References(validated)
    encounters = [
        entry.resource for entry in validated.entry or [] if isinstance(entry.resource, Encounter)
    ]
    if not encounters:
        raise FhirRejected.one(at="Bundle.entry", why="holds no Encounter", code=IssueType.REQUIRED)
    return [_facts(encounter, references, today, config) for encounter in encounters]


# --- mapping -------------------------------------------------------------------------------

_FHIR_LOCATIONS: Final = {
    "patient": "Patient.identifier",
    "episode_id": "Encounter.identifier",
    "sender": "Encounter.serviceProvider",
    "occurred_at": "Encounter.meta.lastUpdated",
    "payload.ward": "Encounter.serviceProvider",
    "payload.admitted_at": "Encounter.period.start",
    "payload.discharged_at": "Encounter.period.end",
    "payload.expected_discharge_date": _EXPECTED_PATH,
    "payload.listed_health_centre": "Patient.generalPractitioner",
    "payload.home_municipality": _MUNICIPALITY_PATH,
    "date_order": _EXPECTED_PATH,
}

_REQUIRED_WHEN: Final = {
    "active": (
        ("Encounter.serviceProvider", "ward"),
        ("Encounter.period.start", "admitted_at"),
        (_EXPECTED_PATH, "expected_discharge_date"),
        ("Patient.generalPractitioner", "listed_health_centre"),
        (_MUNICIPALITY_PATH, "home_municipality"),
    ),
    "finished": (
        ("Encounter.serviceProvider", "ward"),
        ("Encounter.period.end", "discharged_at"),
    ),
    "cancelled": (
        ("Encounter.serviceProvider", "ward"),
        ("Encounter.period.start", "admitted_at"),
    ),
}


def _phase(status: EncounterStatus) -> str:
    if status in ACTIVE_STATUSES:
        return "active"
    return "finished" if status is EncounterStatus.FINISHED else "cancelled"


def _require(facts: EncounterFacts) -> None:
    phase = _phase(facts.status)
    missing = [
        FhirIssue(IssueType.REQUIRED, f"{path}: required when status is {facts.status.value}", path)
        for path, name in _REQUIRED_WHEN[phase]
        if getattr(facts, name) is None
    ]
    if missing:
        raise FhirRejected(missing)


def _update_id(facts: EncounterFacts, changes: Mapping[str, object]) -> UUID:
    if facts.version_id:
        name = f"{facts.episode_id}|episode_updated|version|{facts.version_id}"
    else:
        name = f"{facts.episode_id}|episode_updated|" + "|".join(
            f"{key}={changes[key]}" for key in sorted(changes)
        )
    return uuid.uuid5(FHIR_MESSAGE_NAMESPACE, name)


_UPDATABLE: Final = ("listed_health_centre", "home_municipality", "expected_discharge_date")


def _mapped(
    facts: EncounterFacts, previous: EncounterFacts | None
) -> tuple[UUID, MessageType, dict[str, object]] | None:
    status = facts.status
    admitted, discharged = facts.admitted_at, facts.discharged_at
    if status in ACTIVE_STATUSES and admitted is not None:
        if previous is None:
            payload: dict[str, object] = {
                "ward": facts.ward,
                "admitted_at": admitted,
                **{name: getattr(facts, name) for name in _UPDATABLE},
            }
            return (
                admission_message_id(facts.episode_id, admitted),
                MessageType.ADMISSION_NOTICE,
                payload,
            )
        changes: dict[str, object] = {
            name: getattr(facts, name)
            for name in _UPDATABLE
            if getattr(facts, name) is not None and getattr(facts, name) != getattr(previous, name)
        }
        if not changes:
            return None
        return _update_id(facts, changes), MessageType.EPISODE_UPDATED, changes
    if status is EncounterStatus.FINISHED and discharged is not None:
        return (
            discharge_message_id(facts.episode_id, discharged),
            MessageType.DISCHARGE_NOTICE,
            {"discharged_at": discharged},
        )
    if status in _CANCELLED_STATUSES and admitted is not None:
        cancelled = admission_message_id(facts.episode_id, admitted)
        name = f"{facts.episode_id}|cancellation|{cancelled}"
        payload = {"cancelled_message_id": cancelled, "reason": _CANCEL_REASON.format(status)}
        return uuid.uuid5(FHIR_MESSAGE_NAMESPACE, name), MessageType.CANCELLATION, payload
    return None  # unreachable: _require() refused facts without what the status needs


def facts_to_envelopes(
    facts: EncounterFacts,
    *,
    today: date,
    received_at: datetime,
    previous: EncounterFacts | None = None,
) -> list[Envelope]:
    """The envelopes one Encounter's facts stand for (none, or one).

    ``previous`` is what was last seen of the same stay (None: first sight). An Encounter whose
    class is not inpatient publishes nothing. ``received_at`` is ``sent_at``, and
    ``occurred_at`` unless ``meta.lastUpdated`` says when it changed.
    """
    if not facts.inpatient:
        return []
    _require(facts)
    mapped = _mapped(facts, previous)
    if mapped is None:
        return []
    message_id, message_type, payload = mapped
    data: dict[str, object] = {
        "message_id": message_id,
        "message_type": message_type,
        "episode_id": facts.episode_id,
        "sender": facts.ward,
        "patient": facts.patient,
        "occurred_at": facts.last_updated or received_at,
        "sent_at": received_at,
        "payload": {"kind": message_type.value, **payload},
    }
    if message_type is MessageType.CANCELLATION:
        data["causation_id"] = payload["cancelled_message_id"]
    try:
        return [Envelope.model_validate(data, context={TODAY_CONTEXT_KEY: today})]
    except ValidationError as exc:
        problems = field_problems(exc, _FHIR_LOCATIONS, fallback="Encounter")
        raise FhirRejected(_problem_issue(problem) for problem in problems) from None


def _problem_issue(problem: FieldProblem) -> FhirIssue:
    return FhirIssue(IssueType.VALUE, str(problem), problem.location)


def fhir_to_envelopes(
    resource_json: Mapping[str, object],
    *,
    today: date,
    received_at: datetime,
    previous: Mapping[str, EncounterFacts] = MappingProxyType({}),
    config: FhirConfig | None = None,
) -> list[Envelope]:
    """The envelopes an Encounter or a Bundle of Encounters stands for.

    ``previous`` maps episode ids to what was last seen of them (empty: everything is new).
    Raises ``FhirRejected``; answer it with ``operation_outcome``.
    """
    envelopes: list[Envelope] = []
    for facts in read_encounters(resource_json, today=today, config=config):
        envelopes += facts_to_envelopes(
            facts, today=today, received_at=received_at, previous=previous.get(facts.episode_id)
        )
    return envelopes


def operation_outcome(error: BaseException) -> dict[str, object]:
    """The OperationOutcome (as JSON-ready dict) answering ``error``.

    A ``FhirRejected`` gives its issues; a retriable hub error or a timeout a ``transient``
    issue (try again); another hub error its (patient-free) message; anything else a bare
    ``exception`` issue, since its text may say anything.
    """
    if isinstance(error, FhirRejected):
        issues = error.issues
    elif isinstance(error, TimeoutError) or (isinstance(error, HubError) and error.retriable):
        issues = (FhirIssue(IssueType.TRANSIENT, "not stored now; send it again later"),)
    elif isinstance(error, HubError):
        issues = (FhirIssue(IssueType.VALUE, mask_identity_numbers(str(error))),)
    else:
        issues = (FhirIssue(IssueType.EXCEPTION, "internal error; not stored", severity="fatal"),)
    rendered: list[dict[str, object]] = []
    for issue in issues:
        item: dict[str, object] = {
            "severity": issue.severity,
            "code": issue.code.value,
            "diagnostics": mask_identity_numbers(issue.diagnostics),
        }
        if issue.expression:
            item["expression"] = [issue.expression]
        rendered.append(item)
    return {"resourceType": "OperationOutcome", "issue": rendered}


# --- the intake ----------------------------------------------------------------------------


class FhirIntake:
    """Maps submitted resources and publishes their envelopes, remembering stays it has seen.

    The memory (the last facts of up to ``capacity`` stays) is what makes "admission notice on
    first sight, episode update after" work; it is lost on restart, after which an active
    Encounter yields its admission notice again, with the same derived id, absorbed downstream.
    """

    def __init__(
        self,
        sink: EnvelopeSink,
        *,
        config: FhirConfig | None = None,
        clock: Clock | None = None,
        capacity: int = 10_000,
        publish_timeout_s: float = 30.0,
    ) -> None:
        self._config = config or FhirConfig()
        self._clock = clock or SystemClock()
        self._publisher = OncePublisher(sink, capacity=capacity, timeout_s=publish_timeout_s)
        self._seen: OrderedDict[str, EncounterFacts] = OrderedDict()
        self._capacity = capacity

    async def submit(self, resource_json: Mapping[str, object]) -> FhirResult:
        """Map and publish; returns after the broker acknowledged every envelope.

        Raises ``FhirRejected`` for invalid input, or the sink's error (``TimeoutError`` after
        the publish timeout); ``operation_outcome`` turns either into the answer.
        """
        received_at = self._clock.now()
        today = local_date_of(received_at)
        all_facts = await asyncio.to_thread(
            read_encounters, resource_json, today=today, config=self._config
        )
        ids: list[UUID] = []
        published = 0
        for facts in all_facts:
            previous = self._seen.get(facts.episode_id)
            for envelope in facts_to_envelopes(
                facts, today=today, received_at=received_at, previous=previous
            ):
                published += await self._publisher.publish(envelope)
                ids.append(envelope.message_id)
            self._remember(facts, previous)
        log.info(
            "fhir.accepted",
            encounters=len(all_facts),
            message_ids=[str(i) for i in ids],
            published=published,
        )
        return FhirResult(tuple(ids), published)

    def _remember(self, facts: EncounterFacts, previous: EncounterFacts | None) -> None:
        if previous is not None:
            # A field left out of this version keeps the value seen before.
            kept = {
                name: getattr(previous, name) for name in _UPDATABLE if getattr(facts, name) is None
            }
            facts = replace(facts, **kept)
        self._seen[facts.episode_id] = facts
        self._seen.move_to_end(facts.episode_id)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
