"""The unit directory: the Norrbotten reference file, validation of directory data, versions."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hub.directory import (
    Confidence,
    Directory,
    DirectoryHistory,
    DirectoryInvalid,
    Hospital,
    Municipality,
    MunicipalUnits,
    Unit,
    is_hsa_id,
    is_municipality_code,
    load_directory,
    parse_directory,
    reload,
)
from hub.errors import ConfigurationError
from topics.catalogue import UnitKind

REFERENCE = Path(__file__).resolve().parents[2] / "deploy" / "norrbotten" / "directory.yaml"

# Written out by hand from /work/shared/data/norrbotten-units.md, section 3.
NORRBOTTEN_CODES = {
    "2506": "Arjeplog",
    "2505": "Arvidsjaur",
    "2582": "Boden",
    "2523": "Gällivare",
    "2583": "Haparanda",
    "2510": "Jokkmokk",
    "2514": "Kalix",
    "2584": "Kiruna",
    "2580": "Luleå",
    "2521": "Pajala",
    "2581": "Piteå",
    "2560": "Älvsbyn",
    "2513": "Överkalix",
    "2518": "Övertorneå",
}

HSA_RULE = "must be an HSA-id: 'SE', 10 digits, '-', then 1-31 ASCII letters or digits"
CODE_RULE = "must be a municipality code: a quoted string of 4 digits"
KIND_RULE = (
    "Input should be 'hospital_ward', 'health_centre', 'home_health_care', 'assessment_unit', "
    "'other_municipal' or 'regional_operations'"
)


def luhn_valid(digits: str) -> bool:
    """Luhn check over a 10-digit Swedish organisation number."""
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def unit_entry(hsa_id: str, kind: str, code: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "hsa_id": hsa_id,
        "kind": kind,
        "name": f"Unit {hsa_id[-6:]}",
        "municipality_code": code,
        "functional_mailbox": f"box.{hsa_id[-6:].lower()}@test.example",
        "manager_email": f"chef.{hsa_id[-6:].lower()}@test.example",
    }
    entry.update(extra)
    return entry


def make_raw() -> dict[str, Any]:
    """A small valid directory: two municipalities, a hospital with one ward, a health centre."""
    return {
        "municipalities": [
            {"code": "2580", "name": "Luleå", "population": 80321},
            {"code": "2582", "name": "Boden"},
        ],
        "hospitals": [
            {
                "id": "sunderby",
                "name": "Sunderby sjukhus",
                "municipality_code": "2580",
                "patient_register_code": "65016",
                "serves": ["2580", "2582"],
            }
        ],
        "units": [
            unit_entry("SE2321000230-TESTWARD01", "hospital_ward", "2580", hospital="sunderby"),
            unit_entry("SE2321000230-TESTHC01", "health_centre", "2580", on_call_group="jour-hc"),
            unit_entry("SE2120000000-TEST2580HSV", "home_health_care", "2580"),
            unit_entry("SE2120000000-TEST2580BIS", "assessment_unit", "2580"),
            unit_entry("SE2120000000-TEST2582HSV", "home_health_care", "2582"),
            unit_entry(
                "SE2120000000-TEST2582BIS",
                "assessment_unit",
                "2582",
                webhook_url="https://inbox.boden.example/hook",
            ),
        ],
    }


def problems_of(raw: object) -> tuple[str, ...]:
    with pytest.raises(DirectoryInvalid) as info:
        parse_directory(raw, source="test.yaml")
    return info.value.problems


@pytest.fixture(scope="module")
def reference() -> Directory:
    return load_directory(REFERENCE)


# --- the reference file -------------------------------------------------------------------------


def test_reference_has_five_hospitals(reference: Directory) -> None:
    """The reference directory lists the five hospitals of Region Norrbotten."""
    assert sorted(h.name for h in reference.hospitals) == [
        "Gällivare sjukhus",
        "Kalix sjukhus",
        "Kiruna sjukhus",
        "Piteå sjukhus",
        "Sunderby sjukhus",
    ]


def test_reference_has_29_health_centres(reference: Directory) -> None:
    """All 29 health centres of the data file are present, each in its municipality."""
    centres = reference.units_of_kind(UnitKind.HEALTH_CENTRE)
    per_code: dict[str, int] = {}
    for unit in centres:
        per_code[unit.municipality_code] = per_code.get(unit.municipality_code, 0) + 1
    assert len(centres) == 29
    assert per_code == {
        "2506": 1,
        "2505": 1,
        "2582": 3,
        "2523": 1,
        "2583": 1,
        "2510": 1,
        "2514": 2,
        "2584": 1,
        "2580": 10,
        "2521": 1,
        "2581": 4,
        "2560": 1,
        "2513": 1,
        "2518": 1,
    }


def test_reference_has_the_14_municipalities(reference: Directory) -> None:
    """The 14 municipalities carry the SCB codes from the data file."""
    assert {m.code: m.name for m in reference.municipalities} == NORRBOTTEN_CODES


def test_reference_municipalities_have_both_municipal_units(reference: Directory) -> None:
    """Every municipality has an active home health care and an active assessment unit."""
    for code in NORRBOTTEN_CODES:
        units = reference.municipal_units(code)
        assert units is not None, code
        assert (units.home_health_care.kind, units.assessment_unit.kind) == (
            UnitKind.HOME_HEALTH_CARE,
            UnitKind.ASSESSMENT_UNIT,
        )
        assert units.home_health_care.active
        assert units.assessment_unit.active
        assert units.home_health_care.municipality_code == code
        assert units.assessment_unit.municipality_code == code


def test_reference_has_one_regional_operations_unit(reference: Directory) -> None:
    """A single regional operations unit is the fallback contact."""
    ops = reference.units_of_kind(UnitKind.REGIONAL_OPERATIONS)
    assert [u.hsa_id for u in ops] == ["SE2321000230-SYNREGOPS"]


def test_reference_hsa_ids_are_synthetic(reference: Directory) -> None:
    """Every HSA-id has a SYN suffix and either the region's or a Luhn-invalid org number."""
    for unit in reference.units:
        org, suffix = unit.hsa_id[2:].split("-")
        assert suffix.startswith("SYN"), unit.hsa_id
        assert org == "2321000230" or not luhn_valid(org), unit.hsa_id


def test_reference_mailboxes_are_reserved_domains(reference: Directory) -> None:
    """No address in the reference file can reach a real mailbox (reserved .example TLD)."""
    for unit in reference.units:
        for address in (unit.functional_mailbox, unit.manager_email):
            assert address.endswith(".example"), address


def test_reference_on_call_groups(reference: Directory) -> None:
    """Health centres and municipal units have on-call groups; municipal ones per municipality."""
    for unit in reference.units_of_kind(UnitKind.HEALTH_CENTRE):
        assert unit.on_call_group is not None, unit.hsa_id
    lulea = reference.municipal_units("2580")
    assert lulea is not None
    assert lulea.home_health_care.on_call_group == "jour-2580"
    assert lulea.assessment_unit.on_call_group == "jour-2580"


def test_reference_wards_and_inactive_wards(reference: Directory) -> None:
    """Every ward belongs to a hospital; intensive care, maternity and day surgery are inactive."""
    for unit in reference.units_of_kind(UnitKind.HOSPITAL_WARD):
        assert unit.hospital is not None
        assert reference.hospital(unit.hospital) is not None
    inactive = sorted(u.hsa_id for u in reference.units if not u.active)
    assert inactive == [
        "SE2321000230-SYNGALBB",
        "SE2321000230-SYNGALIVA",
        "SE2321000230-SYNKALDAG",
        "SE2321000230-SYNPITIVA",
        "SE2321000230-SYNSUNBB",
        "SE2321000230-SYNSUNIVA",
    ]
    assert [u.hsa_id for u in reference.wards("kiruna")] == ["SE2321000230-SYNKIRVA"]


def test_reference_hospital_catchments(reference: Directory) -> None:
    """Each hospital records the municipalities it serves (data file section 5)."""
    assert {h.hospital_id: set(h.serves) for h in reference.hospitals} == {
        "sunderby": {"2580", "2582"},
        "pitea": {"2581", "2560", "2505", "2506"},
        "kalix": {"2514", "2583", "2513", "2518"},
        "gallivare": {"2523", "2510", "2521", "2584"},
        "kiruna": {"2584"},
    }


def test_reference_keeps_uncertain_health_centres_flagged(reference: Directory) -> None:
    """Uncertain health centres are kept and carry the uncertain label."""
    uncertain = sorted(
        u.name
        for u in reference.units_of_kind(UnitKind.HEALTH_CENTRE)
        if u.confidence is Confidence.UNCERTAIN
    )
    assert uncertain == [
        "Björkskatans hälsocentral",
        "Kiruna hälsocentral",
        "Mjölkuddens hälsocentral",
        "Porsö hälsocentral",
        "Stadsvikens hälsocentral",
        "Töre hälsocentral",
        "Örnäsets hälsocentral",
    ]


# --- lookups ------------------------------------------------------------------------------------


def test_lookups_on_a_small_directory() -> None:
    """unit, health_centre, municipal_units and the by-kind/by-municipality lists."""
    d = parse_directory(make_raw())
    hhc_boden = Unit(
        hsa_id="SE2120000000-TEST2582HSV",
        kind=UnitKind.HOME_HEALTH_CARE,
        name="Unit 582HSV",
        municipality_code="2582",
        functional_mailbox="box.582hsv@test.example",
        on_call_group=None,
        manager_email="chef.582hsv@test.example",
    )
    au_boden = Unit(
        hsa_id="SE2120000000-TEST2582BIS",
        kind=UnitKind.ASSESSMENT_UNIT,
        name="Unit 582BIS",
        municipality_code="2582",
        functional_mailbox="box.582bis@test.example",
        on_call_group=None,
        manager_email="chef.582bis@test.example",
        webhook_url="https://inbox.boden.example/hook",
    )
    assert d.unit("SE2120000000-TEST2582HSV") == hhc_boden
    assert d.unit("SE2120000000-NOPE") is None
    assert d.health_centre("SE2321000230-TESTHC01") is not None
    assert d.health_centre("SE2120000000-TEST2582HSV") is None  # not a health centre
    assert d.municipal_units("2582") == MunicipalUnits(hhc_boden, au_boden)
    assert d.municipal_units("9999") is None
    assert [u.hsa_id for u in d.units_in_municipality("2582")] == [
        "SE2120000000-TEST2582HSV",
        "SE2120000000-TEST2582BIS",
    ]
    assert [u.hsa_id for u in d.units_of_kind(UnitKind.HOME_HEALTH_CARE)] == [
        "SE2120000000-TEST2580HSV",
        "SE2120000000-TEST2582HSV",
    ]
    assert d.municipality("2580") == Municipality("2580", "Luleå", 80321)
    assert d.hospital("sunderby") == Hospital(
        "sunderby", "Sunderby sjukhus", "2580", "65016", ("2580", "2582")
    )
    assert [u.hsa_id for u in d.wards("sunderby")] == ["SE2321000230-TESTWARD01"]


def test_municipal_units_skip_inactive_units() -> None:
    """An inactive home health care unit beside the active one is not returned."""
    raw = make_raw()
    raw["units"].append(
        unit_entry("SE2120000000-OLD2582HSV", "home_health_care", "2582", active=False)
    )
    units = parse_directory(raw).municipal_units("2582")
    assert units is not None
    assert units.home_health_care.hsa_id == "SE2120000000-TEST2582HSV"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SE2321000230-A", True),
        ("SE2321000230-" + "A" * 31, True),
        ("SE2321000230-SYN2580HSV", True),
        ("SE2321000230-", False),
        ("SE2321000230-" + "A" * 32, False),
        ("SE232100023-A", False),
        ("se2321000230-A", False),
        ("SE2321000230-A_B", False),
        ("SE2321000230-Å", False),
        ("SE２321000230-A", False),  # full-width digit
        ("SE2321000230-A\n", False),
    ],
)
def test_is_hsa_id(value: str, expected: bool) -> None:
    """HSA-id form: SE, 10 ASCII digits, '-', 1-31 ASCII letters or digits, nothing more."""
    assert is_hsa_id(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2580", True), ("0114", True), ("258", False), ("25800", False), ("25a0", False)],
)
def test_is_municipality_code(value: str, expected: bool) -> None:
    """A municipality code is exactly four ASCII digits."""
    assert is_municipality_code(value) is expected


# --- validation errors, every problem listed ----------------------------------------------------


def test_valid_small_directory_loads() -> None:
    """The fixture used by the error cases is itself valid."""
    d = parse_directory(make_raw())
    assert len(d.units) == 6


def test_unknown_kind() -> None:
    """An unknown unit kind is named by its path."""
    raw = make_raw()
    raw["units"][1]["kind"] = "hospice"
    assert problems_of(raw) == (f"units[1].kind: {KIND_RULE}",)


def test_duplicate_hsa_id() -> None:
    """A repeated HSA-id points at the first entry that used it."""
    raw = make_raw()
    raw["units"].append(
        unit_entry("SE2321000230-TESTHC01", "health_centre", "2582"),
    )
    assert problems_of(raw) == ("units[6].hsa_id: duplicate of units[1]",)


@pytest.mark.parametrize(
    "bad",
    ["SE232100023-X", "SE2321000230-", "SE2321000230-" + "A" * 32, "SE2321000230-Ö", 2321000230],
)
def test_malformed_hsa_id(bad: object) -> None:
    """A malformed HSA-id (or a number instead of a string) breaks the HSA-id rule."""
    raw = make_raw()
    raw["units"][1]["hsa_id"] = bad
    assert problems_of(raw) == (f"units[1].hsa_id: {HSA_RULE}",)


@pytest.mark.parametrize("bad", ["258", "25800", "25a0", 2582])
def test_malformed_municipality_code_on_unit(bad: object) -> None:
    """A unit's malformed municipality code (an unquoted number too) is refused."""
    raw = make_raw()
    raw["units"][1]["municipality_code"] = bad
    assert problems_of(raw) == (f"units[1].municipality_code: {CODE_RULE}",)


def test_malformed_municipality_code_in_declaration_lists_the_consequences() -> None:
    """A broken declaration also reports every entry that referred to the lost municipality."""
    raw = make_raw()
    raw["municipalities"][1]["code"] = "258"
    assert problems_of(raw) == (
        f"municipalities[1].code: {CODE_RULE}",
        "hospitals[0].serves[1]: not a declared municipality",
        "units[4].municipality_code: not a declared municipality",
        "units[5].municipality_code: not a declared municipality",
    )


def test_municipality_without_home_health_care() -> None:
    """A municipality with units but no home health care unit is refused."""
    raw = make_raw()
    del raw["units"][4]
    assert problems_of(raw) == (
        "municipalities[1]: no active home_health_care unit in municipality 2582",
    )


def test_municipality_with_only_an_inactive_assessment_unit() -> None:
    """An inactive assessment unit does not count."""
    raw = make_raw()
    raw["units"][3]["active"] = False
    assert problems_of(raw) == (
        "municipalities[0]: no active assessment_unit unit in municipality 2580",
    )


def test_declared_municipality_without_any_units() -> None:
    """A declared municipality must also have both municipal units."""
    raw = make_raw()
    raw["municipalities"].append({"code": "2584", "name": "Kiruna"})
    assert problems_of(raw) == (
        "municipalities[2]: no active home_health_care unit in municipality 2584",
        "municipalities[2]: no active assessment_unit unit in municipality 2584",
    )


def test_two_active_home_health_care_units() -> None:
    """Two active units of one municipal kind would make routing guess: refused."""
    raw = make_raw()
    raw["units"].append(unit_entry("SE2120000000-TWO2582HSV", "home_health_care", "2582"))
    assert problems_of(raw) == (
        "municipalities[1]: 2 active home_health_care units in municipality 2582 "
        "(units[4], units[6]); exactly one is allowed",
    )


def test_ward_and_hospital_references() -> None:
    """Wards need a declared hospital; other kinds may not name one."""
    raw = make_raw()
    raw["units"][0]["hospital"] = "lulea"
    raw["units"].append(
        unit_entry("SE2321000230-TESTWARD02", "hospital_ward", "2580"),
    )
    raw["units"][1]["hospital"] = "sunderby"
    assert problems_of(raw) == (
        "units[0].hospital: not a declared hospital",
        "units[1].hospital: only a hospital_ward belongs to a hospital",
        "units[6].hospital: required for a hospital_ward",
    )


def test_shape_problems_of_a_single_entry() -> None:
    """Missing fields, unknown fields and bad values of one entry are all reported."""
    raw = make_raw()
    del raw["units"][2]["name"]
    raw["units"][2]["nmae"] = "typo"
    raw["units"][2]["functional_mailbox"] = "not-an-address"
    raw["units"][2]["webhook_url"] = "ftp://inbox.example/"
    assert problems_of(raw) == (
        "units[2].name: Field required",
        "units[2].functional_mailbox: must be an e-mail address",
        "units[2].webhook_url: URL scheme should be 'http' or 'https'",
        "units[2].nmae: Extra inputs are not permitted",
        # the broken entry is Luleå's only home health care unit
        "municipalities[0]: no active home_health_care unit in municipality 2580",
    )


def test_every_problem_is_listed_at_once() -> None:
    """Unrelated problems across the file come back together, in file order, then cross-checks."""
    raw = make_raw()
    raw["colour"] = "blue"
    raw["hospitals"][0]["municipality_code"] = "2599"
    raw["units"][0]["kind"] = "hospice"
    raw["units"][2]["hsa_id"] = raw["units"][1]["hsa_id"]
    raw["units"][5]["active"] = False
    raw["units"].append("not a mapping")
    problem_list = problems_of(raw)
    assert problem_list == (
        "colour: unknown top-level key (expected 'municipalities', 'hospitals', 'units')",
        f"units[0].kind: {KIND_RULE}",
        "units[6]: must be a mapping",
        "hospitals[0].municipality_code: not a declared municipality",
        "units[2].hsa_id: duplicate of units[1]",
        "municipalities[1]: no active assessment_unit unit in municipality 2582",
    )


def test_duplicate_municipality_and_hospital() -> None:
    """Declarations are unique by code and by id."""
    raw = make_raw()
    raw["municipalities"].append({"code": "2580", "name": "Luleå igen"})
    raw["hospitals"].append(copy.deepcopy(raw["hospitals"][0]))
    assert problems_of(raw) == (
        "municipalities[2].code: duplicate of municipalities[0]",
        "hospitals[1].id: duplicate of hospitals[0]",
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            ["a", "list"],
            ("top level: must be a mapping with 'municipalities', 'hospitals', 'units'",),
        ),
        (None, ("top level: must be a mapping with 'municipalities', 'hospitals', 'units'",)),
        (
            {"municipalities": [], "hospitals": []},
            ("units: required (a list)",),
        ),
        (
            {"municipalities": {}, "hospitals": [], "units": []},
            ("municipalities: must be a list",),
        ),
    ],
)
def test_top_level_shape(raw: object, expected: tuple[str, ...]) -> None:
    """The file must be a mapping of the three sections, each a list."""
    assert problems_of(raw) == expected


def test_error_message_names_source_and_count() -> None:
    """The error is a ConfigurationError whose text lists every problem under the source."""
    raw = make_raw()
    raw["units"][0]["kind"] = "hospice"
    raw["units"][1]["hsa_id"] = "bad"
    with pytest.raises(ConfigurationError) as info:
        parse_directory(raw, source="deploy/x.yaml")
    assert str(info.value) == (
        "directory deploy/x.yaml: 2 problems\n"
        f"  units[0].kind: {KIND_RULE}\n"
        f"  units[1].hsa_id: {HSA_RULE}"
    )


def test_constructor_validates_too() -> None:
    """A Directory built in code is held to the same rules as a file."""
    ward = Unit(
        hsa_id="not-an-id",
        kind=UnitKind.HOSPITAL_WARD,
        name="Ward",
        municipality_code="2580",
        functional_mailbox="ward@test.example",
        on_call_group=None,
        manager_email="chef@test.example",
    )
    with pytest.raises(DirectoryInvalid) as info:
        Directory(
            municipalities=(Municipality("2580", "Luleå"),),
            hospitals=(),
            units=(ward,),
        )
    assert info.value.problems == (
        f"units[0].hsa_id: {HSA_RULE}",
        "units[0].hospital: required for a hospital_ward",
        "municipalities[0]: no active home_health_care unit in municipality 2580",
        "municipalities[0]: no active assessment_unit unit in municipality 2580",
    )


# --- files --------------------------------------------------------------------------------------


def write(path: Path, raw: object) -> Path:
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_load_directory_from_file(tmp_path: Path) -> None:
    """A YAML file loads to the same directory as its parsed data."""
    path = write(tmp_path / "dir.yaml", make_raw())
    assert load_directory(path) == parse_directory(make_raw())


def test_unquoted_code_in_yaml_is_refused(tmp_path: Path) -> None:
    """YAML reads an unquoted 2580 as a number; the loader asks for a quoted string."""
    path = tmp_path / "dir.yaml"
    text = yaml.safe_dump(make_raw(), allow_unicode=True, sort_keys=False)
    path.write_text(text.replace("code: '2582'", "code: 2582", 1), encoding="utf-8")
    with pytest.raises(DirectoryInvalid) as info:
        load_directory(path)
    assert info.value.problems[0] == f"municipalities[1].code: {CODE_RULE}"


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a configuration error naming the file."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(DirectoryInvalid) as info:
        load_directory(path)
    assert (info.value.source, info.value.problems) == (
        str(path),
        ("cannot read the file (No such file or directory)",),
    )


def test_invalid_yaml(tmp_path: Path) -> None:
    """A YAML syntax error reports line and column."""
    path = tmp_path / "bad.yaml"
    path.write_text("units:\n  - hsa_id: [unclosed\n", encoding="utf-8")
    with pytest.raises(DirectoryInvalid) as info:
        load_directory(path)
    assert len(info.value.problems) == 1
    assert re.fullmatch(r"not valid YAML at line \d+, column \d+", info.value.problems[0])


# --- versions and content hash ------------------------------------------------------------------


def test_hash_ignores_order_and_version() -> None:
    """Reordering entries or renumbering does not change the content hash."""
    raw = make_raw()
    reordered = make_raw()
    reordered["units"].reverse()
    reordered["municipalities"].reverse()
    a = parse_directory(raw)
    b = parse_directory(reordered, version=7)
    assert a.content_hash == b.content_hash


def test_hash_changes_with_content() -> None:
    """Any changed field gives another hash."""
    raw = make_raw()
    raw["units"][2]["on_call_group"] = "beredskap-ny"
    assert parse_directory(raw).content_hash != parse_directory(make_raw()).content_hash


@given(st.permutations(list(range(6))))
def test_hash_is_order_free(order: list[int]) -> None:
    """Property: any permutation of the units has the same content hash."""
    raw = make_raw()
    permuted = make_raw()
    permuted["units"] = [raw["units"][i] for i in order]
    assert parse_directory(permuted).content_hash == parse_directory(raw).content_hash


def test_history_bumps_only_on_change() -> None:
    """replace() keeps the version for identical content and bumps it by one otherwise."""
    first = parse_directory(make_raw())
    history = DirectoryHistory(first)
    same = history.replace(parse_directory(make_raw()))
    assert (same is first, history.versions) == (True, (1,))
    changed_raw = make_raw()
    changed_raw["units"][1]["name"] = "Renamed"
    second = history.replace(parse_directory(changed_raw))
    assert (second.version, history.versions, history.current is second) == (2, (1, 2), True)
    assert history.get(1) is first
    assert history.get(2).unit("SE2321000230-TESTHC01") is not None
    with pytest.raises(KeyError):
        history.get(3)


def test_reload_reports_change(tmp_path: Path) -> None:
    """reload() says whether the file's content changed, and keeps the old version available."""
    path = write(tmp_path / "dir.yaml", make_raw())
    history = DirectoryHistory(load_directory(path))
    assert reload(history, path) == (history.get(1), False)
    changed = make_raw()
    changed["units"][0]["active"] = False
    changed["units"].append(
        unit_entry("SE2321000230-TESTWARD02", "hospital_ward", "2580", hospital="sunderby")
    )
    write(path, changed)
    current, did_change = reload(history, path)
    assert (current.version, did_change) == (2, True)
    ward = current.unit("SE2321000230-TESTWARD01")
    assert ward is not None
    assert ward.active is False
    old_ward = history.get(1).unit("SE2321000230-TESTWARD01")
    assert old_ward is not None
    assert old_ward.active is True


def test_reload_of_a_broken_file_keeps_the_current_version(tmp_path: Path) -> None:
    """A failed reload raises and leaves the history untouched."""
    path = write(tmp_path / "dir.yaml", make_raw())
    history = DirectoryHistory(load_directory(path))
    broken = make_raw()
    del broken["units"][3]
    write(path, broken)
    with pytest.raises(DirectoryInvalid):
        reload(history, path)
    assert (history.versions, history.current.version) == ((1,), 1)


def test_directory_is_immutable() -> None:
    """Directories and units are frozen values."""
    d = parse_directory(make_raw())
    with pytest.raises(AttributeError):
        d.version = 2  # type: ignore[misc]  # proving the dataclass is frozen
    assert replace(d.units[0], active=False) != d.units[0]
    assert d.with_version(5).version == 5
    assert d.with_version(5).content_hash == d.content_hash
