"""Identifiers on the wire: patient numbers, HSA-ids, municipality codes and episode ids.

We validate Swedish personal identity numbers ourselves instead of using the ``personnummer`` or
``python-stdnum`` packages: the first accepts full-width digits and a trailing newline, the second
rejects every samordningsnummer and accepts birth number 000 (DOMAIN.md, "Library pitfalls").
Every pattern here is ASCII-only: ``[0-9]`` and ``re.ASCII``, never ``\\d``, and ``fullmatch`` so
that a trailing newline cannot slip past a ``$``.

Error messages name the rule that failed and never echo the value, because the value may be a
patient's identity number. Inside pydantic the rules surface as custom error types (listed in
``IDENTIFIER_ERROR_TYPES``) whose message templates interpolate nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, Strict, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

from hub.errors import ValidationFailed

__all__ = [
    "IDENTIFIER_ERROR_TYPES",
    "MASK",
    "TODAY_CONTEXT_KEY",
    "ContractRule",
    "EpisodeId",
    "HsaId",
    "MunicipalityCode",
    "PersonalIdentityNumber",
    "contains_identity_number",
    "is_hsa_id",
    "luhn_check_digit",
    "mask_identity_numbers",
    "normalise_personal_identity_number",
]

#: What ``mask_identity_numbers`` puts in place of a patient number.
MASK: Final = "[personnummer]"

#: Validation-context key holding the reference date for 10-digit patient numbers.
TODAY_CONTEXT_KEY: Final = "today"

# Samordningsnummer (coordination number): the day of birth plus 60.
_COORDINATION_DAY_OFFSET: Final = 60

_TWELVE_DIGITS = re.compile(
    r"(?P<century>[0-9]{2})(?P<yy>[0-9]{2})(?P<mm>[0-9]{2})(?P<dd>[0-9]{2})-?"
    r"(?P<serial>[0-9]{3})(?P<check>[0-9])",
    re.ASCII,
)
_TEN_DIGITS = re.compile(
    r"(?P<yy>[0-9]{2})(?P<mm>[0-9]{2})(?P<dd>[0-9]{2})(?P<sep>[-+]?)"
    r"(?P<serial>[0-9]{3})(?P<check>[0-9])",
    re.ASCII,
)

_FORMAT_RULE: Final = (
    "must be a personnummer or samordningsnummer written YYYYMMDD-NNNC, YYYYMMDDNNNC, "
    "YYMMDD-NNNC, YYMMDD+NNNC or YYMMDDNNNC with ASCII digits"
)
_NEEDS_TWELVE_RULE: Final = (
    "the 10-digit form needs a reference date to resolve the century; send the 12-digit form "
    "YYYYMMDD-NNNC"
)


@dataclass(frozen=True, slots=True)
class ContractRule:
    """A rule of the contract as a pydantic error: its own error type and a fixed message.

    The message names the rule and interpolates nothing, so it is safe to show wherever the
    error goes (the codec shows the messages of these types, and only of these).
    """

    error_type: str
    message: str

    def error(self) -> PydanticCustomError:
        """A fresh pydantic error for this rule, to raise inside a validator."""
        return PydanticCustomError(self.error_type, self.message)


_PIN_ERROR_TYPE: Final = "personal_identity_number"
_HSA_ID_RULE: Final = ContractRule(
    "hsa_id", "must be an HSA-id: SE, a 10-digit organisation number, '-', 1-31 letters or digits"
)
_MUNICIPALITY_CODE_RULE: Final = ContractRule(
    "municipality_code", "must be a kommunkod: four ASCII digits, the first two a county code 01-25"
)
_EPISODE_ID_SHAPE_RULE: Final = ContractRule(
    "episode_id", "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'"
)
_EPISODE_ID_PATIENT_RULE: Final = ContractRule(
    "episode_id", "must not contain a personnummer (episode ids are logged and used as Kafka keys)"
)


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit for the nine digits YYMMDDNNN of a personnummer's 10-digit form.

    Public because simulators and test factories need to build valid synthetic numbers.
    """
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        msg = "luhn_check_digit needs exactly nine ASCII digits"
        raise ValueError(msg)
    return str(_luhn_remainder_complement(digits))


def _luhn_remainder_complement(digits: str) -> int:
    total = 0
    for index, char in enumerate(digits):
        product = (ord(char) - 48) * (2 - index % 2)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


def _luhn_ok(ten_digits: str) -> bool:
    return _luhn_remainder_complement(ten_digits[:9]) == ord(ten_digits[9]) - 48


def _real_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _birth_day(dd: int) -> int:
    """The calendar day behind the day field; samordningsnummer store day + 60."""
    return dd - _COORDINATION_DAY_OFFSET if dd > _COORDINATION_DAY_OFFSET else dd


def _resolve_year(yy: int, month: int, day: int, separator: str, today: date) -> int:
    """The four-digit birth year of a 10-digit number.

    ``-``: the most recent date with these digits on or before ``today``, so the person is under
    100 at ``today``. ``+``: the most recent year ending in ``yy`` that is at least 100 years before
    ``today``'s year. Skatteverket changes the separator to ``+`` in the calendar year the person
    turns 100, so in that year a number with ``+`` may belong to someone who is still 99 today;
    resolving ``+`` by the exact birthday would make that person 199 years old instead.
    """
    if separator == "+":
        base = today.year - 100
        return base - (base - yy) % 100
    year = today.year - (today.year - yy) % 100
    if (year, month, day) > (today.year, today.month, today.day):
        year -= 100
    return year


def _normalise(value: object, today: date | None) -> str:
    """Validate and normalise; ``today=None`` means 10-digit forms cannot be resolved."""
    if not isinstance(value, str):
        raise ValidationFailed(_FORMAT_RULE)
    twelve = _TWELVE_DIGITS.fullmatch(value)
    if twelve is not None:
        year = int(twelve["century"] + twelve["yy"])
        yy, mm, dd = twelve["yy"], twelve["mm"], twelve["dd"]
        serial, check = twelve["serial"], twelve["check"]
    else:
        ten = _TEN_DIGITS.fullmatch(value)
        if ten is None:
            raise ValidationFailed(_FORMAT_RULE)
        if today is None:
            raise ValidationFailed(_NEEDS_TWELVE_RULE)
        yy, mm, dd = ten["yy"], ten["mm"], ten["dd"]
        serial, check = ten["serial"], ten["check"]
        year = _resolve_year(int(yy), int(mm), _birth_day(int(dd)), ten["sep"], today)

    if not _luhn_ok(yy + mm + dd + serial + check):
        msg = "check digit does not match"
        raise ValidationFailed(msg)
    if serial == "000":
        msg = "birth number 000 is never issued"
        raise ValidationFailed(msg)
    day_field = int(dd)
    if day_field > _COORDINATION_DAY_OFFSET:
        born = _real_date(year, int(mm), day_field - _COORDINATION_DAY_OFFSET)
        if born is None:
            msg = "samordningsnummer day minus 60 is not a real calendar date"
            raise ValidationFailed(msg)
    else:
        born = _real_date(year, int(mm), day_field)
        if born is None:
            msg = "birth date is not a real calendar date"
            raise ValidationFailed(msg)
    if today is not None and born > today:
        msg = "birth date is in the future"
        raise ValidationFailed(msg)
    return f"{year:04d}{mm}{dd}-{serial}{check}"


def normalise_personal_identity_number(value: str, *, today: date) -> str:
    """Validate a personnummer or samordningsnummer and return it as ``YYYYMMDD-NNNC``.

    Accepts ``YYYYMMDD-NNNC``, ``YYYYMMDDNNNC``, ``YYMMDD-NNNC``, ``YYMMDDNNNC`` and ``YYMMDD+NNNC``
    (``+``: the person turns 100 this calendar year or already has). ``today`` is the reference
    date for the century of 10-digit forms and for the "not born in the future" rule; it is an
    argument because domain code never reads the clock. The samordningsnummer (*coordination
    number*) keeps its day + 60 in the result.

    Raises ``ValidationFailed`` naming the rule that failed, never the value.
    """
    if isinstance(today, datetime):
        msg = "today must be a datetime.date, not a datetime (whose date depends on a time zone)"
        raise TypeError(msg)
    return _normalise(value, today)


def _validate_personal_identity_number(value: str, info: ValidationInfo) -> str:
    context = info.context
    today = context.get(TODAY_CONTEXT_KEY) if isinstance(context, dict) else None
    if today is not None and (isinstance(today, datetime) or not isinstance(today, date)):
        msg = f"validation context {TODAY_CONTEXT_KEY!r} must be a datetime.date"
        raise TypeError(msg)
    try:
        return _normalise(value, today)
    except ValidationFailed as exc:
        raise PydanticCustomError(_PIN_ERROR_TYPE, str(exc)) from None


_PIN_JSON_SCHEMA: Final = {
    "type": "string",
    "pattern": "^[0-9]{8}-?[0-9]{4}$",
    "description": (
        "Swedish personnummer or samordningsnummer (day + 60), 12-digit form YYYYMMDD-NNNC; "
        "Luhn check digit over the last ten digits. Serialised as YYYYMMDD-NNNC."
    ),
    "examples": ["19121212-1212"],
}

#: A personnummer or samordningsnummer, validated and normalised to ``YYYYMMDD-NNNC``.
#:
#: On the wire only the 12-digit form is accepted. A 10-digit form needs a reference date for its
#: century: pass ``context={"today": date}`` to ``model_validate``/``model_validate_json`` (an
#: adapter reading journal data does this), otherwise it is refused with an error asking for the
#: 12-digit form. The future-birth-date rule, too, runs only when ``today`` is in the context.
PersonalIdentityNumber = Annotated[
    str,
    Strict(),
    AfterValidator(_validate_personal_identity_number),
    WithJsonSchema(_PIN_JSON_SCHEMA),
]

_HSA_ID = re.compile(r"SE[0-9]{10}-[A-Za-z0-9]{1,31}", re.ASCII)
_MUNICIPALITY_CODE = re.compile(r"(?P<county>[0-9]{2})[0-9]{2}", re.ASCII)
_EPISODE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)
_LAST_COUNTY: Final = 25


def is_hsa_id(value: str) -> bool:
    """Whether ``value`` has the HSA-id shape ``SE`` + organisation number + ``-`` + suffix."""
    return _HSA_ID.fullmatch(value) is not None


def _validate_hsa_id(value: str) -> str:
    if _HSA_ID.fullmatch(value) is None:
        raise _HSA_ID_RULE.error()
    return value


def _validate_municipality_code(value: str) -> str:
    match = _MUNICIPALITY_CODE.fullmatch(value)
    if match is None or not 1 <= int(match["county"]) <= _LAST_COUNTY:
        raise _MUNICIPALITY_CODE_RULE.error()
    return value


def _validate_episode_id(value: str) -> str:
    if _EPISODE_ID.fullmatch(value) is None:
        raise _EPISODE_ID_SHAPE_RULE.error()
    if contains_identity_number(value):
        raise _EPISODE_ID_PATIENT_RULE.error()
    return value


#: A unit's or staff member's HSA-id, e.g. ``SE2321000230-HC01``.
HsaId = Annotated[
    str,
    Strict(),
    AfterValidator(_validate_hsa_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^SE[0-9]{10}-[A-Za-z0-9]{1,31}$",
            "description": "HSA-id: SE + organisation number + '-' + suffix",
            "examples": ["SE2321000230-SYN1"],
        }
    ),
]

#: A municipality code (*kommunkod*): four digits, the first two the county (Norrbotten 25xx).
MunicipalityCode = Annotated[
    str,
    Strict(),
    AfterValidator(_validate_municipality_code),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^(0[1-9]|1[0-9]|2[0-5])[0-9]{2}$",
            "description": "kommunkod: county code 01-25 followed by two digits",
            "examples": ["2580"],
        }
    ),
]

#: The id of an inpatient stay (*vårdtillfälle*) as given by the sending system: the Kafka key
#: that keeps an episode's messages in order. It must not embed a patient number.
EpisodeId = Annotated[
    str,
    Strict(),
    AfterValidator(_validate_episode_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z0-9._:-]{1,64}$",
            "description": "inpatient stay id from the sending system; never a personnummer",
            "examples": ["sunderby:2027:000123"],
        }
    ),
]

#: The custom pydantic error types raised by the annotated types above. Their message templates
#: name the rule only, so the codec may show them (see ``topics.codec``).
IDENTIFIER_ERROR_TYPES: Final = frozenset(
    {
        _PIN_ERROR_TYPE,
        *(
            rule.error_type
            for rule in (
                _HSA_ID_RULE,
                _MUNICIPALITY_CODE_RULE,
                _EPISODE_ID_SHAPE_RULE,
                _EPISODE_ID_PATIENT_RULE,
            )
        ),
    }
)

# A candidate is a run of 10 or 12 ASCII digits, or 6/8 digits, one '-' or '+' and 4 digits, not
# touching another digit. The month must be 01-12 and the day 01-31 or 61-91: organisation
# numbers (in every HSA-id) are Luhn-valid too, but their "month" is 20 or more, and masking them
# would blank out every unit id in the logs. The pattern starts with a plain digit class, the
# lookbehind after it, so that the regex engine can skip quickly over text without digits.
_CANDIDATE = re.compile(
    r"[0-9](?<![0-9]{2})(?:[0-9]{2})?[0-9]"  # first digit not after a digit; YY or CCYY
    r"(?:0[1-9]|1[0-2])"  # MM
    r"(?:0[1-9]|[12][0-9]|3[01]|6[1-9]|[78][0-9]|9[01])"  # DD, or DD + 60
    r"[-+]?[0-9]{4}(?![0-9])",  # NNNC, not followed by a digit
    re.ASCII,
)


def _is_luhn_candidate(match: re.Match[str]) -> bool:
    written = match[0]
    # The Luhn check covers the 10-digit form: the last ten digits.
    return _luhn_ok((written[:-5] + written[-4:] if written[-5] in "-+" else written)[-10:])


def _mask_match(match: re.Match[str]) -> str:
    return MASK if _is_luhn_candidate(match) else match[0]


def mask_identity_numbers(text: str) -> str:
    """Replace every Luhn-valid 10- or 12-digit personnummer/samordningsnummer by ``MASK``.

    A candidate is a maximal digit run (not touching other digits) of the form YYMMDDNNNC or
    YYYYMMDDNNNC, with or without ``-``/``+`` before the last four, whose month is 01-12 and whose
    day is 01-31 or 61-91 (calendar validity is not checked: over-masking is the safe side).
    Idempotent: the mask contains no digits, and a match is always bordered by non-digits.
    """
    if len(text) < 10:  # no candidate is shorter than ten characters
        return text
    return _CANDIDATE.sub(_mask_match, text)


def contains_identity_number(text: str) -> bool:
    """Whether ``mask_identity_numbers`` would mask anything in ``text``."""
    return any(_is_luhn_candidate(m) for m in _CANDIDATE.finditer(text))
