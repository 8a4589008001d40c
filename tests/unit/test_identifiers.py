"""Identifiers: personnummer/samordningsnummer validation, HSA-ids, codes, and masking.

Check digits in the tables were worked out by hand (Luhn over YYMMDDNNN, weights 2,1,2,...);
19121212-1212 (Tolvan Tolvansson), 811228-9874 and 701063-2391 are widely published test numbers.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from hub.errors import ValidationFailed
from topics.identifiers import (
    MASK,
    EpisodeId,
    HsaId,
    MunicipalityCode,
    PersonalIdentityNumber,
    contains_identity_number,
    is_hsa_id,
    luhn_check_digit,
    mask_identity_numbers,
    normalise_personal_identity_number,
)

TODAY = date(2025, 6, 15)

FORMAT_ERROR = (
    "must be a personnummer or samordningsnummer written YYYYMMDD-NNNC, YYYYMMDDNNNC, "
    "YYMMDD-NNNC, YYMMDD+NNNC or YYMMDDNNNC with ASCII digits"
)
NEEDS_TWELVE = (
    "the 10-digit form needs a reference date to resolve the century; send the 12-digit form "
    "YYYYMMDD-NNNC"
)


def reference_check_digit(nine: str) -> int:
    """Luhn as usually taught: from the right, double every other digit, subtract 9 if > 9."""
    total = 0
    for position, char in enumerate(reversed(nine)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def is_luhn_valid(ten: str) -> bool:
    return reference_check_digit(ten[:9]) == int(ten[9])


VALID = [
    # (input, today, normalised)
    ("19121212-1212", TODAY, "19121212-1212"),
    ("191212121212", TODAY, "19121212-1212"),
    ("121212-1212", TODAY, "20121212-1212"),
    ("1212121212", TODAY, "20121212-1212"),
    ("121212+1212", TODAY, "19121212-1212"),
    ("811228-9874", TODAY, "19811228-9874"),
    ("8112289874", TODAY, "19811228-9874"),
    ("19811228-9874", TODAY, "19811228-9874"),
    # leap day
    ("20240229-1237", TODAY, "20240229-1237"),
    ("000229-1235", TODAY, "20000229-1235"),
    # samordningsnummer: day + 60, kept in the result
    ("19701063-2391", TODAY, "19701063-2391"),
    ("701063-2391", TODAY, "19701063-2391"),
    ("19700161-1230", TODAY, "19700161-1230"),
    ("19700191-1234", TODAY, "19700191-1234"),
    ("20240289-1234", TODAY, "20240289-1234"),
    # century of the 10-digit form around today (2025-06-15)
    ("250615-1238", TODAY, "20250615-1238"),  # born today
    ("250616-1237", TODAY, "19250616-1237"),  # 99, turns 100 tomorrow, still written with '-'
    ("250601-1234", TODAY, "20250601-1234"),
    ("250601+1234", TODAY, "19250601-1234"),  # 100 since 1 June
    ("250701+1233", TODAY, "19250701-1233"),  # turns 100 this year: Skatteverket writes '+'
    ("250701-1233", TODAY, "19250701-1233"),  # the same person with a '-' written earlier
    # the boundary moves with today
    ("121212-1212", date(2012, 12, 11), "19121212-1212"),
    ("121212-1212", date(2012, 12, 12), "20121212-1212"),
]


@pytest.mark.parametrize(("value", "today", "expected"), VALID)
def test_valid_numbers_normalise_to_twelve_digits(value: str, today: date, expected: str) -> None:
    """Every accepted form normalises to YYYYMMDD-NNNC with the right century."""
    assert normalise_personal_identity_number(value, today=today) == expected


INVALID = [
    ("19121212-1213", "check digit does not match"),
    ("121212-1213", "check digit does not match"),
    ("8112289875", "check digit does not match"),
    ("20230229-1238", "birth date is not a real calendar date"),
    ("19121232-1236", "check digit does not match"),
    ("19700160-1231", "birth date is not a real calendar date"),  # day 60 is not day 0 + 60
    ("19700192-1233", "samordningsnummer day minus 60 is not a real calendar date"),
    ("19700491-1231", "samordningsnummer day minus 60 is not a real calendar date"),
    ("20230289-1235", "samordningsnummer day minus 60 is not a real calendar date"),
    ("19121212-0008", "birth number 000 is never issued"),
    ("121212-0008", "birth number 000 is never issued"),
    ("20991212-1234", "birth date is in the future"),
    ("000229+1235", "birth date is not a real calendar date"),  # 1900 was not a leap year
    ("19121212+1212", FORMAT_ERROR),  # '+' belongs to the 10-digit form only
    ("１９１２１２１２-１２１２", FORMAT_ERROR),  # full-width digits
    ("١٩١٢١٢١٢-١٢١٢", FORMAT_ERROR),  # Arabic-Indic digits
    ("19121212-1212\n", FORMAT_ERROR),
    ("\n19121212-1212", FORMAT_ERROR),
    (" 19121212-1212", FORMAT_ERROR),
    ("19121212-1212 ", FORMAT_ERROR),
    ("19121212 1212", FORMAT_ERROR),
    ("1912-12-12-1212", FORMAT_ERROR),
    ("19121212--1212", FORMAT_ERROR),
    ("12121212", FORMAT_ERROR),
    ("19121212121", FORMAT_ERROR),
    ("1912121212123", FORMAT_ERROR),
    ("", FORMAT_ERROR),
]


@pytest.mark.parametrize(("value", "rule"), INVALID)
def test_invalid_numbers_are_refused_naming_the_rule(value: str, rule: str) -> None:
    """A bad number raises ValidationFailed whose message is the rule, without the value."""
    with pytest.raises(ValidationFailed) as caught:
        normalise_personal_identity_number(value, today=TODAY)
    assert str(caught.value) == rule


def test_today_must_be_a_date_not_a_datetime() -> None:
    """A datetime's date depends on a time zone, so it is refused as the reference date."""
    with pytest.raises(TypeError):
        normalise_personal_identity_number("19121212-1212", today=datetime(2025, 6, 15, tzinfo=UTC))


def test_luhn_check_digit_matches_published_numbers() -> None:
    """The public helper gives the check digits of published test numbers."""
    assert [luhn_check_digit(n) for n in ("121212121", "811228987", "701063239")] == [
        "2",
        "4",
        "1",
    ]


@pytest.mark.parametrize("digits", ["12121212", "１２１２１２１２１", "12121212a", "1212121210"])
def test_luhn_check_digit_needs_nine_ascii_digits(digits: str) -> None:
    """Anything but nine ASCII digits is a programming error."""
    with pytest.raises(ValueError, match="nine ASCII digits"):
        luhn_check_digit(digits)


# --- hypothesis: generated valid numbers -------------------------------------------------------


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, date, str]:
    """(written form, today, canonical form) of a valid number, in any accepted form."""
    today = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)))
    born = draw(st.dates(min_value=date(today.year - 199, 1, 1), max_value=today))
    serial = draw(st.integers(min_value=1, max_value=999))
    coordination = draw(st.booleans())
    day = born.day + (60 if coordination else 0)
    yymmdd = f"{born.year % 100:02d}{born.month:02d}{day:02d}"
    nine = f"{yymmdd}{serial:03d}"
    last_four = f"{serial:03d}{reference_check_digit(nine)}"
    canonical = f"{born.year:04d}{born.month:02d}{day:02d}-{last_four}"
    forms = [canonical, canonical.replace("-", "")]
    if (born.year, born.month, born.day) > (today.year - 100, today.month, today.day):
        forms += [f"{yymmdd}-{last_four}", f"{yymmdd}{last_four}"]  # under 100 today
    if today.year - 200 < born.year <= today.year - 100:
        forms.append(f"{yymmdd}+{last_four}")  # turns 100 this year or earlier
    written = draw(st.sampled_from(forms))
    return written, today, canonical


@given(valid_numbers())
def test_every_valid_number_round_trips(case: tuple[str, date, str]) -> None:
    """A valid number in any accepted form normalises to its canonical 12-digit form."""
    written, today, canonical = case
    assert normalise_personal_identity_number(written, today=today) == canonical


@given(valid_numbers())
def test_normalisation_is_idempotent(case: tuple[str, date, str]) -> None:
    """Normalising a normalised number changes nothing."""
    written, today, _ = case
    once = normalise_personal_identity_number(written, today=today)
    assert normalise_personal_identity_number(once, today=today) == once


@given(valid_numbers(), st.integers(min_value=1, max_value=9))
def test_any_changed_check_digit_is_refused(case: tuple[str, date, str], delta: int) -> None:
    """Changing only the check digit always breaks the Luhn rule."""
    written, today, _ = case
    wrong = written[:-1] + str((int(written[-1]) + delta) % 10)
    with pytest.raises(ValidationFailed, match=r"^check digit does not match$"):
        normalise_personal_identity_number(wrong, today=today)


# --- inside pydantic --------------------------------------------------------------------------

PIN = TypeAdapter(PersonalIdentityNumber)


def test_pydantic_type_normalises_twelve_digits_without_context() -> None:
    """The 12-digit form needs no reference date."""
    assert PIN.validate_python("191212121212") == "19121212-1212"


def test_pydantic_type_uses_today_from_the_context() -> None:
    """With context {"today": date} the 10-digit form is resolved like the function does."""
    assert PIN.validate_python("121212+1212", context={"today": TODAY}) == "19121212-1212"
    assert PIN.validate_json('"121212-1212"', context={"today": TODAY}) == "20121212-1212"


def test_pydantic_type_refuses_ten_digits_without_context() -> None:
    """Without a reference date the 10-digit form is refused, asking for 12 digits."""
    with pytest.raises(ValidationError) as caught:
        PIN.validate_python("121212-1212")
    assert caught.value.errors(include_url=False, include_input=False) == [
        {"type": "personal_identity_number", "loc": (), "msg": NEEDS_TWELVE}
    ]


def test_pydantic_type_checks_future_dates_only_with_context() -> None:
    """The future-birth-date rule needs today, so it runs only when the context gives it."""
    assert PIN.validate_python("20991212-1234") == "20991212-1234"
    with pytest.raises(ValidationError) as caught:
        PIN.validate_python("20991212-1234", context={"today": TODAY})
    assert caught.value.errors(include_url=False, include_input=False) == [
        {"type": "personal_identity_number", "loc": (), "msg": "birth date is in the future"}
    ]


def test_pydantic_type_refuses_non_strings() -> None:
    """A number is not a personnummer, even if its digits would be."""
    with pytest.raises(ValidationError) as caught:
        PIN.validate_python(191212121212)
    assert [e["type"] for e in caught.value.errors()] == ["string_type"]


def test_pydantic_error_names_the_rule_not_the_value() -> None:
    """The pydantic error message is the rule; the value is nowhere in its text."""
    with pytest.raises(ValidationError) as caught:
        PIN.validate_python("19121212-1213")
    errors = caught.value.errors(include_url=False, include_input=False)
    assert errors == [
        {"type": "personal_identity_number", "loc": (), "msg": "check digit does not match"}
    ]


HSA = TypeAdapter(HsaId)


@pytest.mark.parametrize(
    "value",
    ["SE2321000230-HC01", "SE2321000230-SYN1", "SE2321000230-a", "SE2321000230-" + "A" * 31],
)
def test_hsa_ids_accepted(value: str) -> None:
    """SE + 10 digits + '-' + 1-31 letters or digits is an HSA-id, kept as given."""
    assert HSA.validate_python(value) == value
    assert is_hsa_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "SE2321000230",
        "SE2321000230-",
        "se2321000230-HC01",
        "SE232100023-HC01",
        "SE23210002301-HC01",
        "SE2321000230-HC_01",
        "SE2321000230-HÖ01",
        "SE2321000230-" + "A" * 32,
        "SE２３２１０００２３０-HC01",
        "SE2321000230-HC01\n",
        " SE2321000230-HC01",
    ],
)
def test_malformed_hsa_ids_refused(value: str) -> None:
    """Anything else is refused with the hsa_id rule."""
    with pytest.raises(ValidationError) as caught:
        HSA.validate_python(value)
    assert [e["type"] for e in caught.value.errors()] == ["hsa_id"]
    assert not is_hsa_id(value)


MUNICIPALITY = TypeAdapter(MunicipalityCode)


@pytest.mark.parametrize("value", ["2580", "2514", "0114", "0180", "1280", "2599"])
def test_municipality_codes_accepted(value: str) -> None:
    """Four digits whose county part is 01-25."""
    assert MUNICIPALITY.validate_python(value) == value


@pytest.mark.parametrize(
    "value", ["0000", "0080", "2680", "9999", "258", "25800", "２５８０", "2580\n", "25 8", "25a0"]
)
def test_malformed_municipality_codes_refused(value: str) -> None:
    """Other lengths, counties outside 01-25 and non-ASCII digits are refused."""
    with pytest.raises(ValidationError) as caught:
        MUNICIPALITY.validate_python(value)
    assert [e["type"] for e in caught.value.errors()] == ["municipality_code"]


EPISODE = TypeAdapter(EpisodeId)


@pytest.mark.parametrize("value", ["sunderby:2027:000123", "a", "A.b_c-d:9", "x" * 64])
def test_episode_ids_accepted(value: str) -> None:
    """1-64 characters of [A-Za-z0-9._:-]."""
    assert EPISODE.validate_python(value) == value


@pytest.mark.parametrize(
    "value", ["", "x" * 65, "ep 1", "ep/1", "vårdtillfälle", "ep1\n", "ep-19121212-1212"]
)
def test_malformed_episode_ids_refused(value: str) -> None:
    """Other characters, lengths, and any embedded personnummer are refused."""
    with pytest.raises(ValidationError) as caught:
        EPISODE.validate_python(value)
    assert [e["type"] for e in caught.value.errors()] == ["episode_id"]


# --- masking ----------------------------------------------------------------------------------

MASKING = [
    ("pnr 19121212-1212 end", f"pnr {MASK} end"),
    ("191212121212", MASK),
    ("121212-1212", MASK),
    ("121212+1212", MASK),
    ("8112289874", MASK),
    ("19121212+1212", MASK),  # not a valid way to write it, masked all the same
    ("701063-2391 and 19701063-2391", f"{MASK} and {MASK}"),
    ('{"patient":"19121212-1212","x":1}', f'{{"patient":"{MASK}","x":1}}'),
    ("a19121212-1212b", f"a{MASK}b"),
    ("19121212-1213", "19121212-1213"),  # check digit wrong: not a personnummer
    ("1912121212120", "1912121212120"),  # 13 digits: part of a longer number
    ("21912121212", "21912121212"),  # 11 digits
    ("SE2321000230-SYN1", "SE2321000230-SYN1"),  # organisation numbers have month >= 20
    ("232100-0230", "232100-0230"),
    ("19121212 1212", "19121212 1212"),  # a space is not a separator
    ("", ""),
    ("no digits at all, but long enough", "no digits at all, but long enough"),
]


@pytest.mark.parametrize(("text", "expected"), MASKING)
def test_mask_identity_numbers(text: str, expected: str) -> None:
    """Luhn-valid 10/12-digit numbers with a plausible date are replaced, nothing else."""
    assert mask_identity_numbers(text) == expected
    assert contains_identity_number(text) == (text != expected)


def remaining_identity_numbers(text: str) -> list[str]:
    """Independent reference: the personnummer-shaped, Luhn-valid candidates left in ``text``."""
    runs = [
        (is_digit, "".join(chars))
        for is_digit, chars in itertools.groupby(text, key=lambda c: "0" <= c <= "9")
    ]
    found: list[str] = []

    def plausible(ten: str) -> bool:
        month, day = int(ten[2:4]), int(ten[4:6])
        return 1 <= month <= 12 and (1 <= day <= 31 or 61 <= day <= 91) and is_luhn_valid(ten)

    for index, (is_digit, chars) in enumerate(runs):
        if not is_digit:
            continue
        if len(chars) in (10, 12) and plausible(chars[-10:]):
            found.append(chars)
        if (
            len(chars) in (6, 8)
            and index + 2 < len(runs)
            and runs[index + 1][1] in ("-", "+")
            and runs[index + 2][0]
            and len(runs[index + 2][1]) == 4
            and plausible(chars[-6:] + runs[index + 2][1])
        ):
            found.append(chars + runs[index + 1][1] + runs[index + 2][1])
    return found


@st.composite
def texts_with_numbers(draw: st.DrawFn) -> str:
    """Text of digits, separators, letters and embedded valid numbers in any form."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.text(alphabet='0123456789-+ aZ:\n"{}', max_size=15),
                valid_numbers().map(lambda case: case[0]),
                st.sampled_from(["SE2321000230-SYN1", "232100-0230", MASK]),
            ),
            max_size=8,
        )
    )
    return "".join(pieces)


@given(texts_with_numbers())
def test_mask_leaves_no_identity_number(text: str) -> None:
    """After masking, no Luhn-valid personnummer-shaped number remains."""
    masked = mask_identity_numbers(text)
    assert remaining_identity_numbers(masked) == []
    assert not contains_identity_number(masked)


@given(texts_with_numbers())
def test_mask_is_idempotent(text: str) -> None:
    """Masking masked text changes nothing."""
    once = mask_identity_numbers(text)
    assert mask_identity_numbers(once) == once


@given(valid_numbers(), st.sampled_from(["", " ", "pnr=", "(", '"']))
def test_every_standalone_valid_number_is_masked(case: tuple[str, date, str], prefix: str) -> None:
    """A valid number not touching other digits is always masked, in every written form."""
    written, _, _ = case
    assert mask_identity_numbers(f"{prefix}{written}.") == f"{prefix}{MASK}."


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="0123456789")))
def test_text_without_ascii_digits_is_unchanged(text: str) -> None:
    """Only ASCII digits can form a candidate; other text passes through untouched."""
    assert mask_identity_numbers(text) == text
