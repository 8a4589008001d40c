"""Messages as journal systems send them: HL7 v2 ADT text and FHIR R4 Encounters.

Both describe the same synthetic Luleå stay as ``topics/examples/admission_notice.json``: ward
SE2321000230-SYN1, admitted 2027-03-26 08:30 Stockholm time (07:30 UTC), expected discharge
2027-04-02, listed at SE2321000230-SYN2, living in Luleå (2580), Skatteverket's test number
19121212-1212. Override any field; ``None`` removes it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from topics.identifiers import luhn_check_digit

WARD = "SE2321000230-SYN1"
HEALTH_CENTRE = "SE2321000230-SYN2"
EPISODE = "sunderby:2027:000123"
PATIENT = "19121212-1212"
PNR_OID = "1.2.752.129.2.1.3.1"
SAMO_OID = "1.2.752.129.2.1.3.3"


def coordination_number() -> str:
    """A Luhn-valid samordningsnummer (born 1970-10-03, day + 60), 12 digits without '-'."""
    nine = "701063239"
    return f"19{nine}{luhn_check_digit(nine)}"


def _segment(name: str, fields: Mapping[int, str | None]) -> str:
    present = {number: value for number, value in fields.items() if value is not None}
    last = max(present, default=0)
    return "|".join([name, *(present.get(number, "") for number in range(1, last + 1))])


def adt_text(
    trigger: str = "A01",
    *,
    msh: Mapping[int, str | None] | None = None,
    evn: Mapping[int, str | None] | None = None,
    pid: Mapping[int, str | None] | None = None,
    pd1: Mapping[int, str | None] | None = None,
    pv1: Mapping[int, str | None] | None = None,
    pv2: Mapping[int, str | None] | None = None,
    omit: tuple[str, ...] = (),
    separator: str = "\r",
) -> str:
    """An ADT message (text, segments joined by ``separator``) with field overrides by number.

    MSH numbers follow HL7 (MSH-3 is the sending application); MSH-1/2 are fixed.
    """
    msh_fields: dict[int, str | None] = {
        3: "JOURNAL",
        4: "SE2321000230-SYNSUN",
        5: "DISCHARGEHUB",
        6: "REGION",
        7: "20270326084100",
        9: f"ADT^{trigger}^ADT_A01",
        10: "CTRL0001",
        11: "P",
        12: "2.5",
        17: "SWE",
        18: "UNICODE UTF-8",
        **(msh or {}),
    }
    # In "MSH|^~\\&|JOURNAL|..." the text after the first "|" is MSH-2, so MSH-n sits at n - 1.
    header = _segment("MSH", {1: "^~\\&", **{n - 1: v for n, v in msh_fields.items() if n >= 3}})
    segments = {
        "MSH": header,
        "EVN": _segment("EVN", {1: trigger, 2: "20270326084000", **(evn or {})}),
        "PID": _segment(
            "PID",
            {
                1: "1",
                3: f"X123^^^LOCAL~191212121212^^^SE&{PNR_OID}&ISO^NNSWE",
                5: "Åström^Åsa",
                7: "19121212",
                8: "F",
                11: "Storgatan 1^^Luleå^^97231^SWE^H^^2580",
                **(pid or {}),
            },
        ),
        "PD1": _segment("PD1", {3: f"Hälsocentral Örnäset^^^^^^^^^{HEALTH_CENTRE}", **(pd1 or {})}),
        "PV1": _segment(
            "PV1",
            {
                1: "1",
                2: "I",
                3: f"{WARD}^^^SUNDERBY",
                19: EPISODE,
                44: "20270326083000",
                **(pv1 or {}),
            },
        ),
        "PV2": _segment("PV2", {9: "20270402", **(pv2 or {})}),
    }
    return separator.join(text for name, text in segments.items() if name not in omit) + "\r"


def adt_bytes(trigger: str = "A01", *, charset: str = "UNICODE UTF-8", **kwargs: Any) -> bytes:
    """``adt_text`` encoded in ``charset`` (an MSH-18 value), which MSH-18 then declares."""
    codecs = {"UNICODE UTF-8": "utf-8", "8859/1": "iso8859-1", "": "utf-8", "ASCII": "ascii"}
    msh = {18: charset or None, **kwargs.pop("msh", {})}
    return adt_text(trigger, msh=msh, **kwargs).encode(codecs[charset])


def _organization(local_id: str, hsa_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": local_id,
        "identifier": [{"system": "urn:oid:1.2.752.29.4.19", "value": hsa_id}],
    }


def patient_resource(**overrides: Any) -> dict[str, Any]:
    """The Patient: personnummer, listed health centre (``#hc``), home municipality."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "p",
        "identifier": [{"system": f"urn:oid:{PNR_OID}", "value": "191212121212"}],
        "name": [{"family": "Åström", "given": ["Åsa"]}],
        "generalPractitioner": [{"reference": "#hc"}],
        "address": [
            {
                "use": "home",
                "city": "Luleå",
                "extension": [
                    {
                        "url": "https://example.se/fhir/StructureDefinition/municipality-code",
                        "valueCode": "2580",
                    }
                ],
            }
        ],
    }
    return _merged(resource, overrides)


def encounter_resource(**overrides: Any) -> dict[str, Any]:
    """The Encounter, with the Patient and both Organizations as contained resources."""
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "e1",
        "contained": [
            patient_resource(),
            _organization("hc", HEALTH_CENTRE),
            _organization("ward", WARD),
        ],
        "identifier": [{"system": "https://example.se/visit-number", "value": EPISODE}],
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "#p"},
        "serviceProvider": {"reference": "#ward"},
        "period": {"start": "2027-03-26T08:30:00+01:00"},
        "hospitalization": {
            "extension": [
                {
                    "url": "https://example.se/fhir/StructureDefinition/expected-discharge-date",
                    "valueDate": "2027-04-02",
                }
            ]
        },
        "meta": {"lastUpdated": "2027-03-26T08:40:00+01:00"},
    }
    return _merged(resource, overrides)


def encounter_bundle(**encounter_overrides: Any) -> dict[str, Any]:
    """The same stay as a Bundle: Encounter, Patient and Organizations as separate entries."""
    encounter = encounter_resource(contained=None, **encounter_overrides)
    encounter["subject"] = {"reference": "Patient/p"}
    encounter["serviceProvider"] = {"reference": "urn:uuid:9f5e0c1a-0000-4000-8000-000000000001"}
    patient = patient_resource(generalPractitioner=[{"reference": "Organization/hc"}])
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "https://fhir.example.se/Encounter/e1", "resource": encounter},
            {"fullUrl": "https://fhir.example.se/Patient/p", "resource": patient},
            {
                "fullUrl": "https://fhir.example.se/Organization/hc",
                "resource": _organization("hc", HEALTH_CENTRE),
            },
            {
                "fullUrl": "urn:uuid:9f5e0c1a-0000-4000-8000-000000000001",
                "resource": _organization("w", WARD),
            },
        ],
    }


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
