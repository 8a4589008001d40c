"""The directory of care units (*enhetskatalog*): who exists, of what kind, and how to reach them.

The directory is reference data, not configuration of behaviour: routing reads it to find the
recipients of a message, escalation reads it to find mailboxes and on-call groups, and the
simulator reads its hospitals and municipalities. It is loaded from YAML, validated as a whole
(every problem is reported at once, each with its path in the file, so a broken file is fixed in
one pass), and then frozen. A reload never edits a directory in place: it produces a new one, and
`DirectoryHistory` keeps the old versions so that earlier routing decisions stay explainable.

Invariants a `Directory` guarantees (its constructor refuses anything else):

* HSA-ids are unique and well formed; municipality codes are four digits;
* every unit's municipality is declared, and every hospital ward names a declared hospital;
* every declared municipality has exactly one active home health care unit and exactly one
  active assessment unit, so `municipal_units(code)` is total over the declared codes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, NamedTuple, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from hub.errors import ConfigurationError
from topics.catalogue import UnitKind

__all__ = [
    "Confidence",
    "Directory",
    "DirectoryHistory",
    "DirectoryInvalid",
    "Hospital",
    "MunicipalUnits",
    "Municipality",
    "Unit",
    "is_hsa_id",
    "is_municipality_code",
    "load_directory",
    "parse_directory",
    "reload",
]

_HSA_ID = re.compile(r"SE[0-9]{10}-[A-Za-z0-9]{1,31}")
_MUNICIPALITY_CODE = re.compile(r"[0-9]{4}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_HOSPITAL_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")

_HSA_RULE = "must be an HSA-id: 'SE', 10 digits, '-', then 1-31 ASCII letters or digits"
_CODE_RULE = "must be a municipality code: a quoted string of 4 digits"
_EMAIL_RULE = "must be an e-mail address"
_HOSPITAL_ID_RULE = "must be a hospital id: 1-40 lower-case letters, digits or '-'"
_TOP_LEVEL_KEYS = ("municipalities", "hospitals", "units")

_T = TypeVar("_T")


def is_hsa_id(value: str) -> bool:
    """Whether `value` has the form of an HSA-id (`SE` + 10 digits + `-` + 1-31 letters/digits)."""
    return _HSA_ID.fullmatch(value) is not None


def is_municipality_code(value: str) -> bool:
    """Whether `value` has the form of a municipality code (*kommunkod*): four ASCII digits."""
    return _MUNICIPALITY_CODE.fullmatch(value) is not None


class Confidence(StrEnum):
    """How sure the reference data is that a unit exists under this name (see the data README)."""

    CONFIRMED = "confirmed"  # a fairly recent public source names the unit
    LIKELY = "likely"  # indirect evidence, or the exact name form was not checked
    UNCERTAIN = "uncertain"  # may have merged, been renamed or closed; review before relying on it
    ASSUMED = "assumed"  # a plausible demo unit with no source (generic wards, the ops desk)


@dataclass(frozen=True, slots=True)
class Municipality:
    """A municipality (*kommun*), the second principal (*huvudman 2*) of a discharge."""

    code: str
    name: str
    population: int | None = None


@dataclass(frozen=True, slots=True)
class Hospital:
    """A hospital (*sjukhus*): groups wards and says which municipalities it mainly serves."""

    hospital_id: str
    name: str
    municipality_code: str
    patient_register_code: str | None = None
    serves: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unit:
    """A care unit (*vårdenhet*) that sends or receives messages, identified by its HSA-id."""

    hsa_id: str
    kind: UnitKind
    name: str
    municipality_code: str
    functional_mailbox: str
    on_call_group: str | None
    manager_email: str
    webhook_url: str | None = None
    hospital: str | None = None
    active: bool = True
    confidence: Confidence | None = None


class MunicipalUnits(NamedTuple):
    """The two municipal recipients of an admission notice for one municipality."""

    home_health_care: Unit
    assessment_unit: Unit


class DirectoryInvalid(ConfigurationError):
    """The directory data breaks one or more rules; `problems` lists every one, by path."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"directory {source}: {count} {noun}", *(f"  {p}" for p in self.problems)]
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class Directory:
    """An immutable, validated set of units with its version and a hash of its content.

    `version` is assigned by `DirectoryHistory`; `content_hash` ignores both the version and the
    order of entries, so a file that was only reordered is not a new version.
    """

    municipalities: tuple[Municipality, ...]
    hospitals: tuple[Hospital, ...]
    units: tuple[Unit, ...]
    version: int = 1
    content_hash: str = field(init=False, compare=False)
    _by_id: Mapping[str, Unit] = field(init=False, repr=False, compare=False)
    _municipality_by_code: Mapping[str, Municipality] = field(init=False, repr=False, compare=False)
    _hospital_by_id: Mapping[str, Hospital] = field(init=False, repr=False, compare=False)
    _municipal_units: Mapping[str, MunicipalUnits | None] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Accept any iterable from callers but store tuples, so the value really is immutable.
        object.__setattr__(self, "municipalities", tuple(self.municipalities))
        object.__setattr__(self, "hospitals", tuple(self.hospitals))
        object.__setattr__(self, "units", tuple(self.units))
        problems = _content_problems(
            _labelled("municipalities", self.municipalities),
            _labelled("hospitals", self.hospitals),
            _labelled("units", self.units),
        )
        if problems:
            source = "<constructed>"
            raise DirectoryInvalid(source, problems)
        object.__setattr__(self, "content_hash", _content_hash(self))
        object.__setattr__(self, "_by_id", MappingProxyType({u.hsa_id: u for u in self.units}))
        object.__setattr__(
            self,
            "_municipality_by_code",
            MappingProxyType({m.code: m for m in self.municipalities}),
        )
        object.__setattr__(
            self, "_hospital_by_id", MappingProxyType({h.hospital_id: h for h in self.hospitals})
        )
        # Looked up for every admission: built once per directory version, not per message.
        object.__setattr__(
            self,
            "_municipal_units",
            MappingProxyType(
                {m.code: self._active_municipal_units(m.code) for m in self.municipalities}
            ),
        )

    def with_version(self, version: int) -> Directory:
        """The same content under another version number."""
        return replace(self, version=version)

    def unit(self, hsa_id: str) -> Unit | None:
        """The unit with this HSA-id, active or not; None if the directory does not know it."""
        return self._by_id.get(hsa_id)

    def health_centre(self, hsa_id: str) -> Unit | None:
        """The health centre (*hälsocentral*) with this HSA-id; None if unknown or another kind."""
        unit = self._by_id.get(hsa_id)
        return unit if unit is not None and unit.kind is UnitKind.HEALTH_CENTRE else None

    def municipal_units(self, municipality_code: str) -> MunicipalUnits | None:
        """The active home health care and assessment unit of a municipality; None if unknown."""
        return self._municipal_units.get(municipality_code)

    def _active_municipal_units(self, municipality_code: str) -> MunicipalUnits | None:
        active = [u for u in self.units if u.active and u.municipality_code == municipality_code]
        home = next((u for u in active if u.kind is UnitKind.HOME_HEALTH_CARE), None)
        assessment = next((u for u in active if u.kind is UnitKind.ASSESSMENT_UNIT), None)
        if home is None or assessment is None:
            return None  # validation requires both; a unit set inactive routes nothing there
        return MunicipalUnits(home, assessment)

    def units_of_kind(self, kind: UnitKind) -> tuple[Unit, ...]:
        """Every unit of `kind`, active or not, in file order."""
        return tuple(u for u in self.units if u.kind is kind)

    def units_in_municipality(self, municipality_code: str) -> tuple[Unit, ...]:
        """Every unit located in a municipality, active or not, in file order."""
        return tuple(u for u in self.units if u.municipality_code == municipality_code)

    def municipality(self, code: str) -> Municipality | None:
        """The declared municipality with this code; None if unknown."""
        return self._municipality_by_code.get(code)

    def hospital(self, hospital_id: str) -> Hospital | None:
        """The hospital with this id; None if unknown."""
        return self._hospital_by_id.get(hospital_id)

    def wards(self, hospital_id: str) -> tuple[Unit, ...]:
        """The wards of a hospital, active or not, in file order."""
        return tuple(u for u in self.units if u.hospital == hospital_id)


class DirectoryHistory:
    """Every version of the directory this process has used, newest last.

    Kept so that a decision made under version 3 can still be explained after version 4 is
    loaded. Reloads are rare and directories small, so nothing is evicted.
    """

    __slots__ = ("_versions",)

    def __init__(self, initial: Directory) -> None:
        self._versions: dict[int, Directory] = {initial.version: initial}

    @property
    def current(self) -> Directory:
        """The newest version."""
        return self._versions[max(self._versions)]

    @property
    def versions(self) -> tuple[int, ...]:
        """The version numbers held, oldest first."""
        return tuple(sorted(self._versions))

    def get(self, version: int) -> Directory:
        """A version held by this history; `KeyError` if it never existed here."""
        return self._versions[version]

    def replace(self, new: Directory) -> Directory:
        """Make `new` current under the next version number, unless its content is unchanged.

        Returns the directory that is current afterwards: the existing one when the content hash
        is the same (no new version), otherwise `new` renumbered to current version + 1.
        """
        current = self.current
        if new.content_hash == current.content_hash:
            return current
        bumped = new.with_version(current.version + 1)
        self._versions[bumped.version] = bumped
        return bumped


def load_directory(path: Path | str) -> Directory:
    """Read and validate a directory YAML file; `DirectoryInvalid` lists every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DirectoryInvalid(
            source, [f"cannot read the file ({exc.strerror or type(exc).__name__})"]
        ) from exc
    try:
        raw: object = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise DirectoryInvalid(source, [f"not valid YAML{where}"]) from exc
    return parse_directory(raw, source=source)


def reload(history: DirectoryHistory, path: Path | str) -> tuple[Directory, bool]:
    """Load `path` into `history`; returns the current directory and whether it changed.

    A file that fails validation raises and leaves the history as it was, so the hub keeps
    routing with the last good directory.
    """
    before = history.current
    after = history.replace(load_directory(path))
    return after, after is not before


def parse_directory(raw: object, *, source: str = "<data>", version: int = 1) -> Directory:
    """Validate already-parsed YAML/JSON data and build a `Directory` from it."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise DirectoryInvalid(source, ["top level: must be a mapping with " + _key_list()])
    problems.extend(
        f"{key}: unknown top-level key (expected {_key_list()})"
        for key in raw
        if key not in _TOP_LEVEL_KEYS
    )
    municipalities = _parse_section(raw, "municipalities", _MunicipalityEntry, problems)
    hospitals = _parse_section(raw, "hospitals", _HospitalEntry, problems)
    units = _parse_section(raw, "units", _UnitEntry, problems)
    problems.extend(
        _content_problems(
            [(label, e.to_domain()) for label, e in municipalities],
            [(label, e.to_domain()) for label, e in hospitals],
            [(label, e.to_domain()) for label, e in units],
        )
    )
    if problems:
        raise DirectoryInvalid(source, problems)
    return Directory(
        municipalities=tuple(e.to_domain() for _, e in municipalities),
        hospitals=tuple(e.to_domain() for _, e in hospitals),
        units=tuple(e.to_domain() for _, e in units),
        version=version,
    )


# --- the file format (pydantic at the boundary) ------------------------------------------------


def _check_pattern(pattern: re.Pattern[str], code: str, rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if pattern.fullmatch(value) is None:
            raise PydanticCustomError(code, rule)
        return value

    return AfterValidator(check)


def _require_str(rule: str) -> BeforeValidator:
    # YAML turns an unquoted 2580 into an int (and 0114 into octal); refuse rather than guess.
    def check(value: object) -> object:
        if not isinstance(value, str):
            error_type = "string_required"
            raise PydanticCustomError(error_type, rule)
        return value

    return BeforeValidator(check)


_HsaIdField = Annotated[str, _require_str(_HSA_RULE), _check_pattern(_HSA_ID, "hsa_id", _HSA_RULE)]
_CodeField = Annotated[
    str,
    _require_str(_CODE_RULE),
    _check_pattern(_MUNICIPALITY_CODE, "municipality_code", _CODE_RULE),
]
_EmailField = Annotated[str, Field(max_length=254), _check_pattern(_EMAIL, "email", _EMAIL_RULE)]
_HospitalIdField = Annotated[str, _check_pattern(_HOSPITAL_ID, "hospital_id", _HOSPITAL_ID_RULE)]
_Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _MunicipalityEntry(_Entry):
    code: _CodeField
    name: _Name
    population: Annotated[int, Field(ge=0)] | None = None

    def to_domain(self) -> Municipality:
        return Municipality(code=self.code, name=self.name, population=self.population)


class _HospitalEntry(_Entry):
    id: _HospitalIdField
    name: _Name
    municipality_code: _CodeField
    patient_register_code: Annotated[str, Field(pattern=r"^[0-9]{5}$")] | None = None
    serves: list[_CodeField] = Field(default_factory=list)

    def to_domain(self) -> Hospital:
        return Hospital(
            hospital_id=self.id,
            name=self.name,
            municipality_code=self.municipality_code,
            patient_register_code=self.patient_register_code,
            serves=tuple(self.serves),
        )


class _UnitEntry(_Entry):
    hsa_id: _HsaIdField
    kind: UnitKind
    name: _Name
    municipality_code: _CodeField
    functional_mailbox: _EmailField
    on_call_group: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    manager_email: _EmailField
    webhook_url: HttpUrl | None = None
    hospital: _HospitalIdField | None = None
    active: bool = True
    confidence: Confidence | None = None

    def to_domain(self) -> Unit:
        return Unit(
            hsa_id=self.hsa_id,
            kind=self.kind,
            name=self.name,
            municipality_code=self.municipality_code,
            functional_mailbox=self.functional_mailbox,
            on_call_group=self.on_call_group,
            manager_email=self.manager_email,
            webhook_url=None if self.webhook_url is None else str(self.webhook_url),
            hospital=self.hospital,
            active=self.active,
            confidence=self.confidence,
        )


_E = TypeVar("_E", bound=_Entry)


def _key_list() -> str:
    return ", ".join(repr(k) for k in _TOP_LEVEL_KEYS)


def _parse_section(
    raw: dict[object, object], key: str, model: type[_E], problems: list[str]
) -> list[tuple[str, _E]]:
    """Validate each entry on its own, so one bad entry does not hide the others' problems."""
    if key not in raw:
        problems.append(f"{key}: required (a list)")
        return []
    items = raw[key]
    if not isinstance(items, list):
        problems.append(f"{key}: must be a list")
        return []
    parsed: list[tuple[str, _E]] = []
    for index, item in enumerate(items):
        label = f"{key}[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{label}: must be a mapping")
            continue
        try:
            parsed.append((label, model.model_validate(item)))
        except ValidationError as exc:
            problems.extend(
                f"{_path(label, err['loc'])}: {err['msg']}"
                for err in exc.errors(include_input=False, include_url=False)
            )
    return parsed


def _path(label: str, loc: tuple[int | str, ...]) -> str:
    parts = [label]
    for part in loc:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts)


# --- rules over the whole content ---------------------------------------------------------------


def _labelled(section: str, items: Iterable[_T]) -> list[tuple[str, _T]]:
    return [(f"{section}[{i}]", item) for i, item in enumerate(items)]


def _content_problems(
    municipalities: Sequence[tuple[str, Municipality]],
    hospitals: Sequence[tuple[str, Hospital]],
    units: Sequence[tuple[str, Unit]],
) -> list[str]:
    """Every rule that spans entries, each problem named by the path of the offending entry."""
    problems: list[str] = []
    declared: dict[str, str] = {}
    for label, m in municipalities:
        if not is_municipality_code(m.code):
            problems.append(f"{label}.code: {_CODE_RULE}")
        elif m.code in declared:
            problems.append(f"{label}.code: duplicate of {declared[m.code]}")
        else:
            declared[m.code] = label

    hospital_ids: dict[str, str] = {}
    for label, h in hospitals:
        if h.hospital_id in hospital_ids:
            problems.append(f"{label}.id: duplicate of {hospital_ids[h.hospital_id]}")
        else:
            hospital_ids[h.hospital_id] = label
        if h.municipality_code not in declared:
            problems.append(f"{label}.municipality_code: not a declared municipality")
        problems.extend(
            f"{label}.serves[{i}]: not a declared municipality"
            for i, code in enumerate(h.serves)
            if code not in declared
        )

    seen_ids: dict[str, str] = {}
    for label, u in units:
        problems.extend(_unit_problems(label, u, declared, hospital_ids))
        if u.hsa_id in seen_ids:
            problems.append(f"{label}.hsa_id: duplicate of {seen_ids[u.hsa_id]}")
        else:
            seen_ids.setdefault(u.hsa_id, label)

    problems.extend(_municipal_coverage_problems(declared, units))
    return problems


def _unit_problems(
    label: str, u: Unit, declared: Mapping[str, str], hospital_ids: Mapping[str, str]
) -> list[str]:
    problems: list[str] = []
    if not is_hsa_id(u.hsa_id):
        problems.append(f"{label}.hsa_id: {_HSA_RULE}")
    if not u.name:
        problems.append(f"{label}.name: must not be empty")
    if not is_municipality_code(u.municipality_code):
        problems.append(f"{label}.municipality_code: {_CODE_RULE}")
    elif u.municipality_code not in declared:
        problems.append(f"{label}.municipality_code: not a declared municipality")
    for attr in ("functional_mailbox", "manager_email"):
        if _EMAIL.fullmatch(getattr(u, attr)) is None:
            problems.append(f"{label}.{attr}: {_EMAIL_RULE}")
    if u.kind is UnitKind.HOSPITAL_WARD:
        if u.hospital is None:
            problems.append(f"{label}.hospital: required for a hospital_ward")
        elif u.hospital not in hospital_ids:
            problems.append(f"{label}.hospital: not a declared hospital")
    elif u.hospital is not None:
        problems.append(f"{label}.hospital: only a hospital_ward belongs to a hospital")
    return problems


def _municipal_coverage_problems(
    declared: Mapping[str, str], units: Sequence[tuple[str, Unit]]
) -> list[str]:
    """Each declared municipality needs exactly one active unit of each municipal recipient kind.

    Without both, an admission notice for a patient living there cannot reach everyone the law
    requires; with two, the router would have to guess.
    """
    problems: list[str] = []
    for code, m_label in declared.items():
        for kind in (UnitKind.HOME_HEALTH_CARE, UnitKind.ASSESSMENT_UNIT):
            found = [
                label
                for label, u in units
                if u.active and u.kind is kind and u.municipality_code == code
            ]
            if not found:
                problems.append(f"{m_label}: no active {kind.value} unit in municipality {code}")
            elif len(found) > 1:
                problems.append(
                    f"{m_label}: {len(found)} active {kind.value} units in municipality {code} "
                    f"({', '.join(found)}); exactly one is allowed"
                )
    return problems


def _content_hash(directory: Directory) -> str:
    """SHA-256 over a canonical form: entries sorted by key, so order in the file does not count."""
    content = {
        "municipalities": sorted(
            (asdict(m) for m in directory.municipalities), key=lambda d: str(d["code"])
        ),
        "hospitals": sorted(
            (asdict(h) for h in directory.hospitals), key=lambda d: str(d["hospital_id"])
        ),
        "units": sorted((asdict(u) for u in directory.units), key=lambda d: str(d["hsa_id"])),
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
