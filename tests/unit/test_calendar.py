"""Holidays, reading rounds and due times (DOMAIN.md "Default policies" §1, "Precise readings").

Expected values are Stockholm wall times written out by hand from the spec, compared as
``isoformat()`` strings so that a wrong UTC offset cannot hide behind instant equality.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from hub.calendar import (
    DST_END_2027,
    DST_START_2027,
    NORRBOTTEN_READING_ROUNDS,
    STOCKHOLM,
    CalendarConfig,
    CalendarPolicy,
    ReadingRound,
    ReadingRoundConfig,
    ReadingRoundPolicy,
    due_at,
    holiday_name,
    is_holiday,
    is_weekend_or_holiday,
    local_date_of,
    local_to_utc,
    next_round_at_or_after,
    rounds_between,
    rounds_on,
    start_of_local_day,
)
from hub.errors import ConfigurationError
from topics.catalogue import UnitKind

NORRBOTTEN = NORRBOTTEN_READING_ROUNDS
HOUR = timedelta(hours=1)


def local(text: str) -> datetime:
    """An aware instant from an ISO string with its offset (as Stockholm staff would read it)."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


def iso_local(instant: datetime) -> str:
    return instant.astimezone(STOCKHOLM).isoformat()


# --------------------------------------------------------------------------------------------
# Holidays: golden list 2026-2028, written from the Swedish calendar by hand
# --------------------------------------------------------------------------------------------

GOLDEN_HOLIDAYS: dict[date, str] = {
    # 2026 (Easter Sunday 5 April)
    date(2026, 1, 1): "Nyårsdagen",
    date(2026, 1, 6): "Trettondedag jul",
    date(2026, 4, 3): "Långfredagen",
    date(2026, 4, 5): "Påskdagen",
    date(2026, 4, 6): "Annandag påsk",
    date(2026, 5, 1): "Första maj",
    date(2026, 5, 14): "Kristi himmelsfärdsdag",
    date(2026, 5, 24): "Pingstdagen",
    date(2026, 6, 6): "Nationaldagen",
    date(2026, 6, 19): "Midsommarafton",
    date(2026, 6, 20): "Midsommardagen",
    date(2026, 10, 31): "Alla helgons dag",
    date(2026, 12, 24): "Julafton",
    date(2026, 12, 25): "Juldagen",
    date(2026, 12, 26): "Annandag jul",
    date(2026, 12, 31): "Nyårsafton",
    # 2027 (Easter Sunday 28 March, also the DST start)
    date(2027, 1, 1): "Nyårsdagen",
    date(2027, 1, 6): "Trettondedag jul",
    date(2027, 3, 26): "Långfredagen",
    date(2027, 3, 28): "Påskdagen",
    date(2027, 3, 29): "Annandag påsk",
    date(2027, 5, 1): "Första maj",
    date(2027, 5, 6): "Kristi himmelsfärdsdag",
    date(2027, 5, 16): "Pingstdagen",
    date(2027, 6, 6): "Nationaldagen",
    date(2027, 6, 25): "Midsommarafton",
    date(2027, 6, 26): "Midsommardagen",
    date(2027, 11, 6): "Alla helgons dag",
    date(2027, 12, 24): "Julafton",
    date(2027, 12, 25): "Juldagen",
    date(2027, 12, 26): "Annandag jul",
    date(2027, 12, 31): "Nyårsafton",
    # 2028 (Easter Sunday 16 April)
    date(2028, 1, 1): "Nyårsdagen",
    date(2028, 1, 6): "Trettondedag jul",
    date(2028, 4, 14): "Långfredagen",
    date(2028, 4, 16): "Påskdagen",
    date(2028, 4, 17): "Annandag påsk",
    date(2028, 5, 1): "Första maj",
    date(2028, 5, 25): "Kristi himmelsfärdsdag",
    date(2028, 6, 4): "Pingstdagen",
    date(2028, 6, 6): "Nationaldagen",
    date(2028, 6, 23): "Midsommarafton",
    date(2028, 6, 24): "Midsommardagen",
    date(2028, 11, 4): "Alla helgons dag",
    date(2028, 12, 24): "Julafton",
    date(2028, 12, 25): "Juldagen",
    date(2028, 12, 26): "Annandag jul",
    date(2028, 12, 31): "Nyårsafton",
}

SWEEP_FIRST = date(2026, 1, 1)
SWEEP_LAST = date(2028, 12, 31)


def sweep_days() -> list[date]:
    return [SWEEP_FIRST + timedelta(days=n) for n in range((SWEEP_LAST - SWEEP_FIRST).days + 1)]


def test_holidays_2026_to_2028_are_exactly_the_golden_list() -> None:
    """Every holiday 2026-2028, with its Swedish name, and no other day, is a holiday."""
    found = {day: holiday_name(day) for day in sweep_days() if is_holiday(day)}
    assert found == GOLDEN_HOLIDAYS


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2026, 12, 24), "Christmas Eve"),
        (date(2026, 12, 31), "New Year's Eve"),
        (date(2027, 6, 25), "Midsummer Eve"),
        (date(2027, 1, 6), "Epiphany"),
    ],
)
def test_holiday_name_in_english(day: date, name: str) -> None:
    """Holiday names are available in English on request."""
    assert holiday_name(day, language="en_US") == name


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (date(2027, 1, 5), "trettondagsafton"),
        (date(2026, 4, 2), "skärtorsdag 2026"),
        (date(2027, 3, 25), "skärtorsdag 2027"),
        (date(2028, 4, 13), "skärtorsdag 2028"),
        (date(2027, 3, 27), "påskafton (a Saturday, but no holiday)"),
        (date(2026, 4, 30), "valborgsmässoafton"),
        (date(2026, 5, 15), "Friday after Ascension 2026"),
        (date(2027, 5, 7), "Friday after Ascension 2027"),
        (date(2028, 5, 26), "Friday after Ascension 2028"),
        (date(2026, 5, 25), "Whit Monday 2026 (abolished 2005)"),
        (date(2027, 5, 17), "Whit Monday 2027"),
        (date(2028, 6, 5), "Whit Monday 2028"),
        (date(2027, 5, 15), "pingstafton"),
        (date(2027, 6, 24), "the day before midsummer eve"),
        (date(2027, 11, 5), "alla helgons afton"),
        (date(2026, 12, 23), "23 December 2026"),
        (date(2026, 12, 30), "30 December 2026"),
        (date(2027, 12, 23), "23 December 2027"),
        (date(2027, 12, 30), "30 December 2027"),
        (date(2027, 3, 21), "an ordinary Sunday"),
    ],
)
def test_eves_and_squeeze_days_are_not_holidays(day: date, why: str) -> None:
    """Eves and squeeze days other than the three de-facto holidays are ordinary days."""
    assert (is_holiday(day), holiday_name(day)) == (False, None), why


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2027, 1, 4), False),  # Monday
        (date(2027, 1, 8), False),  # Friday
        (date(2027, 1, 9), True),  # Saturday
        (date(2027, 1, 10), True),  # Sunday
        (date(2027, 1, 6), True),  # Wednesday, trettondagen
        (date(2027, 12, 24), True),  # Friday, julafton
        (date(2027, 12, 23), False),  # Thursday, ordinary
    ],
)
def test_is_weekend_or_holiday(day: date, expected: bool) -> None:
    """Saturdays, Sundays and holidays share the weekend cadence; other days do not."""
    assert is_weekend_or_holiday(day) is expected


@pytest.mark.parametrize("function", [is_holiday, holiday_name, is_weekend_or_holiday])
def test_date_functions_refuse_datetimes(function: object) -> None:
    """A datetime is not accepted where a local date is meant (its zone would be guessed)."""
    assert callable(function)
    with pytest.raises(TypeError, match=r"^local_date: must be a local calendar date"):
        function(datetime(2027, 12, 24, 10, tzinfo=UTC))


# --------------------------------------------------------------------------------------------
# DST constants
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "before", "after"),
    [(DST_START_2027, "+01:00", "+02:00"), (DST_END_2027, "+02:00", "+01:00")],
)
def test_dst_constants_are_the_switch_days(day: date, before: str, after: str) -> None:
    """The named DST dates are the days Stockholm's UTC offset changes."""
    zone = ZoneInfo("Europe/Stockholm")
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    noon = datetime.combine(day, time(12), tzinfo=zone)
    assert (midnight.isoformat()[-6:], noon.isoformat()[-6:]) == (before, after)


def test_dst_constants_values() -> None:
    """The 2027 switch days are the last Sundays of March and October."""
    assert (DST_START_2027.isoformat(), DST_END_2027.isoformat()) == ("2027-03-28", "2027-10-31")


# --------------------------------------------------------------------------------------------
# Due times: worked examples
# --------------------------------------------------------------------------------------------

DUE_EXAMPLES = [
    # (label, arrival, due) with the Norrbotten rounds
    ("spec: Mon 08:30", "2026-03-02T08:30:00+01:00", "2026-03-02T10:00:00+01:00"),
    ("spec: Mon 09:30", "2026-03-02T09:30:00+01:00", "2026-03-02T15:00:00+01:00"),
    ("spec: Fri 16:00", "2026-03-06T16:00:00+01:00", "2026-03-07T11:00:00+01:00"),
    ("exactly 09:00 belongs", "2026-03-02T09:00:00+01:00", "2026-03-02T10:00:00+01:00"),
    ("1 µs after 09:00", "2026-03-02T09:00:00.000001+01:00", "2026-03-02T15:00:00+01:00"),
    ("exactly 14:00 belongs", "2026-03-02T14:00:00+01:00", "2026-03-02T15:00:00+01:00"),
    ("1 µs after 14:00", "2026-03-02T14:00:00.000001+01:00", "2026-03-03T10:00:00+01:00"),
    ("Mon midnight", "2026-03-02T00:00:00+01:00", "2026-03-02T10:00:00+01:00"),
    ("Sat exactly 10:00", "2026-03-07T10:00:00+01:00", "2026-03-07T11:00:00+01:00"),
    ("Sat 10:00:01", "2026-03-07T10:00:01+01:00", "2026-03-08T11:00:00+01:00"),
    ("Sun 10:30", "2026-03-08T10:30:00+01:00", "2026-03-09T10:00:00+01:00"),
    ("Sun 23:59:59", "2026-03-08T23:59:59+01:00", "2026-03-09T10:00:00+01:00"),
    ("summer weekday", "2026-06-10T13:00:00+02:00", "2026-06-10T15:00:00+02:00"),
    ("UTC input, summer", "2026-06-10T07:30:00+00:00", "2026-06-10T15:00:00+02:00"),
    # Christmas and New Year 2026/27
    ("23 Dec ordinary, morning", "2026-12-23T08:00:00+01:00", "2026-12-23T10:00:00+01:00"),
    ("23 Dec ordinary, 09:30", "2026-12-23T09:30:00+01:00", "2026-12-23T15:00:00+01:00"),
    ("23 Dec after round -> julafton", "2026-12-23T14:30:00+01:00", "2026-12-24T11:00:00+01:00"),
    ("julafton 08:00", "2026-12-24T08:00:00+01:00", "2026-12-24T11:00:00+01:00"),
    ("julafton 09:30", "2026-12-24T09:30:00+01:00", "2026-12-24T11:00:00+01:00"),
    ("julafton 10:30 -> juldagen", "2026-12-24T10:30:00+01:00", "2026-12-25T11:00:00+01:00"),
    ("juldagen 10:30 -> annandag", "2026-12-25T10:30:00+01:00", "2026-12-26T11:00:00+01:00"),
    ("annandag 10:30 -> Sun", "2026-12-26T10:30:00+01:00", "2026-12-27T11:00:00+01:00"),
    ("Sun 27 Dec -> Mon", "2026-12-27T10:30:00+01:00", "2026-12-28T10:00:00+01:00"),
    ("30 Dec ordinary", "2026-12-30T09:30:00+01:00", "2026-12-30T15:00:00+01:00"),
    ("30 Dec -> nyårsafton", "2026-12-30T14:30:00+01:00", "2026-12-31T11:00:00+01:00"),
    ("nyårsafton 09:30", "2026-12-31T09:30:00+01:00", "2026-12-31T11:00:00+01:00"),
    ("nyårsafton -> nyårsdagen", "2026-12-31T10:30:00+01:00", "2027-01-01T11:00:00+01:00"),
    ("nyårsdagen -> Sat", "2027-01-01T10:30:00+01:00", "2027-01-02T11:00:00+01:00"),
    ("trettondagsafton ordinary", "2027-01-05T09:30:00+01:00", "2027-01-05T15:00:00+01:00"),
    ("-> trettondagen", "2027-01-05T14:30:00+01:00", "2027-01-06T11:00:00+01:00"),
    ("trettondagen 09:30", "2027-01-06T09:30:00+01:00", "2027-01-06T11:00:00+01:00"),
    ("trettondagen -> Thu", "2027-01-06T10:30:00+01:00", "2027-01-07T10:00:00+01:00"),
    # Easter 2026 and 2028
    ("skärtorsdag 2026 ordinary", "2026-04-02T09:30:00+02:00", "2026-04-02T15:00:00+02:00"),
    ("långfredag 2026", "2026-04-03T09:30:00+02:00", "2026-04-03T11:00:00+02:00"),
    ("annandag påsk 2026", "2026-04-06T09:30:00+02:00", "2026-04-06T11:00:00+02:00"),
    ("skärtorsdag 2028 ordinary", "2028-04-13T09:30:00+02:00", "2028-04-13T15:00:00+02:00"),
    ("långfredag 2028", "2028-04-14T09:30:00+02:00", "2028-04-14T11:00:00+02:00"),
    ("annandag påsk 2028", "2028-04-17T09:30:00+02:00", "2028-04-17T11:00:00+02:00"),
    # Easter 2027, with the DST start on påskdagen
    ("skärtorsdag 2027 ordinary", "2027-03-25T09:30:00+01:00", "2027-03-25T15:00:00+01:00"),
    ("-> långfredag 2027", "2027-03-25T14:30:00+01:00", "2027-03-26T11:00:00+01:00"),
    ("långfredag 2027", "2027-03-26T09:30:00+01:00", "2027-03-26T11:00:00+01:00"),
    ("påskafton -> påskdagen (DST)", "2027-03-27T10:30:00+01:00", "2027-03-28T11:00:00+02:00"),
    ("DST night, before switch", "2027-03-28T01:59:59+01:00", "2027-03-28T11:00:00+02:00"),
    ("DST night, after switch", "2027-03-28T03:00:00+02:00", "2027-03-28T11:00:00+02:00"),
    ("påskdagen exactly 10:00", "2027-03-28T10:00:00+02:00", "2027-03-28T11:00:00+02:00"),
    ("påskdagen -> annandag", "2027-03-28T10:30:00+02:00", "2027-03-29T11:00:00+02:00"),
    ("annandag påsk 2027", "2027-03-29T09:30:00+02:00", "2027-03-29T11:00:00+02:00"),
    ("annandag -> Tue", "2027-03-29T10:30:00+02:00", "2027-03-30T10:00:00+02:00"),
    # 1 May, Ascension, Whitsun
    ("valborg ordinary", "2026-04-30T09:30:00+02:00", "2026-04-30T15:00:00+02:00"),
    ("valborg -> 1 maj", "2026-04-30T14:30:00+02:00", "2026-05-01T11:00:00+02:00"),
    ("1 maj 2028 (Monday)", "2028-05-01T09:30:00+02:00", "2028-05-01T11:00:00+02:00"),
    ("-> Kristi himmelsfärd 2026", "2026-05-13T14:30:00+02:00", "2026-05-14T11:00:00+02:00"),
    ("Kristi himmelsfärd 2026", "2026-05-14T09:30:00+02:00", "2026-05-14T11:00:00+02:00"),
    ("Friday after, ordinary", "2026-05-15T09:30:00+02:00", "2026-05-15T15:00:00+02:00"),
    ("Kristi himmelsfärd 2027", "2027-05-06T09:30:00+02:00", "2027-05-06T11:00:00+02:00"),
    ("Friday after 2027", "2027-05-07T09:30:00+02:00", "2027-05-07T15:00:00+02:00"),
    ("Whit Monday ordinary", "2026-05-25T09:30:00+02:00", "2026-05-25T15:00:00+02:00"),
    # National Day
    ("-> nationaldag on Sat 2026", "2026-06-05T14:30:00+02:00", "2026-06-06T11:00:00+02:00"),
    ("nationaldag Sun 2027 -> Mon", "2027-06-06T10:30:00+02:00", "2027-06-07T10:00:00+02:00"),
    ("-> nationaldag Tue 2028", "2028-06-05T14:30:00+02:00", "2028-06-06T11:00:00+02:00"),
    ("nationaldag Tue 2028 09:30", "2028-06-06T09:30:00+02:00", "2028-06-06T11:00:00+02:00"),
    ("nationaldag -> Wed 2028", "2028-06-06T10:30:00+02:00", "2028-06-07T10:00:00+02:00"),
    # Midsummer 2026-2028
    ("Thu before midsommar 2026", "2026-06-18T09:30:00+02:00", "2026-06-18T15:00:00+02:00"),
    ("-> midsommarafton 2026", "2026-06-18T14:30:00+02:00", "2026-06-19T11:00:00+02:00"),
    ("midsommarafton 2026", "2026-06-19T09:30:00+02:00", "2026-06-19T11:00:00+02:00"),
    ("midsommardagen 2026 -> Sun", "2026-06-20T10:30:00+02:00", "2026-06-21T11:00:00+02:00"),
    ("Thu before midsommar 2027", "2027-06-24T09:30:00+02:00", "2027-06-24T15:00:00+02:00"),
    ("midsommarafton 2027", "2027-06-25T09:30:00+02:00", "2027-06-25T11:00:00+02:00"),
    ("midsommarafton -> dagen 2027", "2027-06-25T10:30:00+02:00", "2027-06-26T11:00:00+02:00"),
    ("Thu before midsommar 2028", "2028-06-22T09:30:00+02:00", "2028-06-22T15:00:00+02:00"),
    ("midsommarafton 2028", "2028-06-23T09:30:00+02:00", "2028-06-23T11:00:00+02:00"),
    ("midsommardagen 2028", "2028-06-24T09:30:00+02:00", "2028-06-24T11:00:00+02:00"),
    # All Saints, DST end 2027
    ("alla helgons afton 2026", "2026-10-30T09:30:00+01:00", "2026-10-30T15:00:00+01:00"),
    ("alla helgons afton 2027", "2027-11-05T09:30:00+01:00", "2027-11-05T15:00:00+01:00"),
    ("-> alla helgons dag 2027", "2027-11-05T14:30:00+01:00", "2027-11-06T11:00:00+01:00"),
    ("Fri before DST end", "2027-10-29T14:30:00+02:00", "2027-10-30T11:00:00+02:00"),
    ("Sat -> DST end Sunday", "2027-10-30T10:30:00+02:00", "2027-10-31T11:00:00+01:00"),
    ("fold, first 02:30", "2027-10-31T02:30:00+02:00", "2027-10-31T11:00:00+01:00"),
    ("fold, second 02:30", "2027-10-31T02:30:00+01:00", "2027-10-31T11:00:00+01:00"),
    ("DST end Sunday -> Mon", "2027-10-31T10:30:00+01:00", "2027-11-01T10:00:00+01:00"),
    # Christmas 2027 and 2028
    ("23 Dec 2027 ordinary", "2027-12-23T09:30:00+01:00", "2027-12-23T15:00:00+01:00"),
    ("julafton 2027 (Friday)", "2027-12-24T09:30:00+01:00", "2027-12-24T11:00:00+01:00"),
    ("30 Dec 2027 ordinary", "2027-12-30T09:30:00+01:00", "2027-12-30T15:00:00+01:00"),
    ("nyårsafton 2027 (Friday)", "2027-12-31T09:30:00+01:00", "2027-12-31T11:00:00+01:00"),
    ("juldagen 2028 (Monday)", "2028-12-25T09:30:00+01:00", "2028-12-25T11:00:00+01:00"),
    ("annandag jul 2028 (Tuesday)", "2028-12-26T09:30:00+01:00", "2028-12-26T11:00:00+01:00"),
    ("27 Dec 2028 ordinary", "2028-12-27T09:30:00+01:00", "2028-12-27T15:00:00+01:00"),
]


@pytest.mark.parametrize(
    ("arrival", "expected"),
    [(arrival, due) for _, arrival, due in DUE_EXAMPLES],
    ids=[label for label, _, _ in DUE_EXAMPLES],
)
def test_due_at_worked_examples(arrival: str, expected: str) -> None:
    """A delivery is due at the end of the first round starting at or after its arrival."""
    due = due_at(local(arrival), NORRBOTTEN)
    assert (due.tzinfo, iso_local(due)) == (UTC, expected)


def test_next_round_whole_value() -> None:
    """The next round is returned whole: start, end (UTC) and its local date."""
    assert next_round_at_or_after(local("2026-03-06T16:00:00+01:00"), NORRBOTTEN) == ReadingRound(
        start_utc=datetime(2026, 3, 7, 9, 0, tzinfo=UTC),
        end_utc=datetime(2026, 3, 7, 10, 0, tzinfo=UTC),
        local_date=date(2026, 3, 7),
    )


def test_reading_round_local_views() -> None:
    """A round shows its start and end as Stockholm wall time."""
    reading_round = next_round_at_or_after(local("2027-03-28T00:00:00+01:00"), NORRBOTTEN)
    assert (reading_round.start_local.isoformat(), reading_round.end_local.isoformat()) == (
        "2027-03-28T10:00:00+02:00",
        "2027-03-28T11:00:00+02:00",
    )


# --------------------------------------------------------------------------------------------
# Rounds on a day and in an interval
# --------------------------------------------------------------------------------------------

ROUNDS_ON_EXAMPLES = [
    (date(2026, 3, 2), ["2026-03-02T09:00:00+01:00", "2026-03-02T14:00:00+01:00"]),
    (date(2026, 3, 7), ["2026-03-07T10:00:00+01:00"]),
    (date(2026, 12, 24), ["2026-12-24T10:00:00+01:00"]),
    (date(2027, 1, 5), ["2027-01-05T09:00:00+01:00", "2027-01-05T14:00:00+01:00"]),
    (date(2027, 3, 27), ["2027-03-27T10:00:00+01:00"]),
    (DST_START_2027, ["2027-03-28T10:00:00+02:00"]),
    (date(2027, 3, 30), ["2027-03-30T09:00:00+02:00", "2027-03-30T14:00:00+02:00"]),
    (date(2027, 10, 30), ["2027-10-30T10:00:00+02:00"]),
    (DST_END_2027, ["2027-10-31T10:00:00+01:00"]),
    (date(2027, 11, 1), ["2027-11-01T09:00:00+01:00", "2027-11-01T14:00:00+01:00"]),
    (date(2028, 6, 6), ["2028-06-06T10:00:00+02:00"]),
]


@pytest.mark.parametrize(("day", "starts"), ROUNDS_ON_EXAMPLES, ids=str)
def test_rounds_on_worked_examples(day: date, starts: list[str]) -> None:
    """Weekdays have rounds at 09:00 and 14:00, other days one at 10:00, each 60 minutes."""
    rounds = rounds_on(day, NORRBOTTEN)
    assert [(iso_local(r.start_utc), r.end_utc - r.start_utc, r.local_date) for r in rounds] == [
        (start, HOUR, day) for start in starts
    ]


def test_dst_days_in_utc() -> None:
    """On both 2027 switch days the single round is at 10:00 local: 08:00 and 09:00 UTC."""
    assert [
        (r.start_utc.isoformat(), r.end_utc.isoformat())
        for day in (DST_START_2027, DST_END_2027)
        for r in rounds_on(day, NORRBOTTEN)
    ] == [
        ("2027-03-28T08:00:00+00:00", "2027-03-28T09:00:00+00:00"),
        ("2027-10-31T09:00:00+00:00", "2027-10-31T10:00:00+00:00"),
    ]


def test_sweep_2026_to_2028_round_counts_and_order() -> None:
    """Every day 2026-2028: 2 rounds on non-holiday weekdays, else 1; all strictly increasing."""
    all_rounds: list[ReadingRound] = []
    for day in sweep_days():
        ordinary = day.weekday() < 5 and day not in GOLDEN_HOLIDAYS
        expected_times = ["09:00:00", "14:00:00"] if ordinary else ["10:00:00"]
        rounds = rounds_on(day, NORRBOTTEN)
        assert [
            (r.local_date, r.start_local.date(), r.start_local.time().isoformat()) for r in rounds
        ] == [(day, day, t) for t in expected_times], day
        assert all(r.end_utc - r.start_utc == HOUR for r in rounds), day
        all_rounds.extend(rounds)
    for earlier, later in itertools.pairwise(all_rounds):
        assert earlier.end_utc <= later.start_utc, (earlier, later)
        assert earlier.start_utc < later.start_utc, (earlier, later)
    assert len(all_rounds) == 1096 + sum(
        1 for day in sweep_days() if day.weekday() < 5 and day not in GOLDEN_HOLIDAYS
    )


def test_rounds_between_matches_the_sweep() -> None:
    """rounds_between over the whole sweep yields exactly the rounds of every day, in order."""
    start = start_of_local_day(SWEEP_FIRST)
    end = start_of_local_day(SWEEP_LAST + timedelta(days=1))
    expected = [r for day in sweep_days() for r in rounds_on(day, NORRBOTTEN)]
    assert list(rounds_between(start, end, NORRBOTTEN)) == expected


def test_rounds_between_weekend() -> None:
    """Fri noon to Mon noon: Fri 14:00, Sat 10:00, Sun 10:00, Mon 09:00."""
    rounds = rounds_between(
        local("2026-03-06T12:00:00+01:00"), local("2026-03-09T12:00:00+01:00"), NORRBOTTEN
    )
    assert [iso_local(r.start_utc) for r in rounds] == [
        "2026-03-06T14:00:00+01:00",
        "2026-03-07T10:00:00+01:00",
        "2026-03-08T10:00:00+01:00",
        "2026-03-09T09:00:00+01:00",
    ]


def test_rounds_between_is_half_open() -> None:
    """A round starting exactly at the interval start is in; one starting at its end is out."""
    rounds = rounds_between(
        local("2026-03-02T09:00:00+01:00"), local("2026-03-03T09:00:00+01:00"), NORRBOTTEN
    )
    assert [iso_local(r.start_utc) for r in rounds] == [
        "2026-03-02T09:00:00+01:00",
        "2026-03-02T14:00:00+01:00",
    ]


def test_rounds_between_empty_interval() -> None:
    """An empty or reversed interval has no rounds."""
    at = local("2026-03-02T09:00:00+01:00")
    assert (
        list(rounds_between(at, at, NORRBOTTEN)),
        list(rounds_between(at, at - HOUR, NORRBOTTEN)),
    ) == ([], [])


def test_rounds_between_across_spring_switch() -> None:
    """Sat to Mon over the spring switch: one round each day, none skipped or doubled."""
    rounds = rounds_between(
        local("2027-03-27T00:00:00+01:00"), local("2027-03-30T00:00:00+02:00"), NORRBOTTEN
    )
    assert [iso_local(r.start_utc) for r in rounds] == [
        "2027-03-27T10:00:00+01:00",
        "2027-03-28T10:00:00+02:00",
        "2027-03-29T10:00:00+02:00",
    ]


def test_rounds_between_across_autumn_switch() -> None:
    """Sat to Mon over the autumn switch: one round each weekend day, none doubled."""
    rounds = rounds_between(
        local("2027-10-30T00:00:00+02:00"), local("2027-11-02T00:00:00+01:00"), NORRBOTTEN
    )
    assert [iso_local(r.start_utc) for r in rounds] == [
        "2027-10-30T10:00:00+02:00",
        "2027-10-31T10:00:00+01:00",
        "2027-11-01T09:00:00+01:00",
        "2027-11-01T14:00:00+01:00",
    ]


# --------------------------------------------------------------------------------------------
# Local-time conversion and DST rule for configured times
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "wall", "expected"),
    [
        (date(2027, 3, 28), time(1, 59), "2027-03-28T01:59:00+01:00"),
        (date(2027, 3, 28), time(2, 0), "2027-03-28T03:00:00+02:00"),  # nonexistent: +1 h
        (date(2027, 3, 28), time(2, 30), "2027-03-28T03:30:00+02:00"),  # nonexistent: +1 h
        (date(2027, 3, 28), time(3, 0), "2027-03-28T03:00:00+02:00"),
        (date(2027, 10, 31), time(2, 30), "2027-10-31T02:30:00+02:00"),  # ambiguous: first
        (date(2027, 10, 31), time(2, 30, fold=1), "2027-10-31T02:30:00+02:00"),  # fold ignored
        (date(2027, 10, 31), time(3, 0), "2027-10-31T03:00:00+01:00"),
        (date(2027, 1, 12), time(0, 0), "2027-01-12T00:00:00+01:00"),
    ],
)
def test_local_to_utc_dst_rule(day: date, wall: time, expected: str) -> None:
    """Nonexistent local times move forward by the gap; ambiguous ones take the first one."""
    instant = local_to_utc(day, wall)
    assert (instant.tzinfo, iso_local(instant)) == (UTC, expected)


def test_local_to_utc_refuses_aware_time() -> None:
    """A wall-clock time with its own zone is refused: the zone is always Stockholm."""
    with pytest.raises(ValueError, match=r"^local_time: must be a naive wall-clock time"):
        local_to_utc(date(2027, 1, 12), time(9, tzinfo=UTC))


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2027-03-27T23:30:00+00:00", date(2027, 3, 28)),  # 00:30 CET
        ("2027-03-27T22:59:59+00:00", date(2027, 3, 27)),
        ("2027-10-30T22:00:00+00:00", date(2027, 10, 31)),  # 00:00 CEST
        ("2027-10-31T22:59:59+00:00", date(2027, 10, 31)),  # 23:59:59 CET
    ],
)
def test_local_date_of(instant: str, expected: date) -> None:
    """The local date of an instant is its Stockholm calendar date."""
    assert local_date_of(local(instant)) == expected


NIGHT_POLICY = ReadingRoundPolicy(
    weekday_starts=(time(2, 30), time(9, 0)),
    weekend_holiday_starts=(time(2, 30), time(10, 0)),
)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (
            date(2027, 3, 27),
            [
                ("2027-03-27T02:30:00+01:00", "2027-03-27T03:30:00+01:00"),
                ("2027-03-27T10:00:00+01:00", "2027-03-27T11:00:00+01:00"),
            ],
        ),
        (
            DST_START_2027,
            [
                ("2027-03-28T03:30:00+02:00", "2027-03-28T04:30:00+02:00"),
                ("2027-03-28T10:00:00+02:00", "2027-03-28T11:00:00+02:00"),
            ],
        ),
        (
            DST_END_2027,
            [
                ("2027-10-31T02:30:00+02:00", "2027-10-31T02:30:00+01:00"),
                ("2027-10-31T10:00:00+01:00", "2027-10-31T11:00:00+01:00"),
            ],
        ),
    ],
    ids=str,
)
def test_round_at_nonexistent_or_ambiguous_time(day: date, expected: list[tuple[str, str]]) -> None:
    """A 02:30 round: an hour later on the spring switch, once (first 02:30) on the autumn one."""
    assert [
        (iso_local(r.start_utc), iso_local(r.end_utc)) for r in rounds_on(day, NIGHT_POLICY)
    ] == expected


@pytest.mark.parametrize(
    ("arrival", "expected"),
    [
        ("2027-03-28T01:59:00+01:00", "2027-03-28T04:30:00+02:00"),
        ("2027-03-28T03:15:00+02:00", "2027-03-28T04:30:00+02:00"),  # before the moved round
        ("2027-03-28T03:30:00+02:00", "2027-03-28T04:30:00+02:00"),
        ("2027-03-28T03:45:00+02:00", "2027-03-28T11:00:00+02:00"),
        ("2027-10-31T02:30:00+02:00", "2027-10-31T02:30:00+01:00"),
        ("2027-10-31T02:30:00+01:00", "2027-10-31T11:00:00+01:00"),  # second 02:30 is later
    ],
)
def test_due_with_night_round_on_switch_days(arrival: str, expected: str) -> None:
    """Due times with a 02:30 round follow the round's moved or first-occurrence instant."""
    assert iso_local(due_at(local(arrival), NIGHT_POLICY)) == expected


# --------------------------------------------------------------------------------------------
# Policy validation and configuration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"weekday_starts": ()},
            "weekday_starts: at least one round a day is required (planning happens every day)",
        ),
        (
            {"weekend_holiday_starts": (time(10), time(9))},
            "weekend_holiday_starts: round start times must be strictly increasing",
        ),
        (
            {"weekday_starts": (time(9), time(9))},
            "weekday_starts: round start times must be strictly increasing",
        ),
        (
            {"weekday_starts": (time(9, tzinfo=UTC),)},
            "weekday_starts[0]: must be a naive local time (the zone is Europe/Stockholm)",
        ),
        ({"duration": timedelta(0)}, "duration: must be a positive timedelta"),
        (
            {"weekday_starts": (time(9), time(9, 30))},
            "weekday_starts: rounds overlap or fall out of order on 2027-01-12 "
            "(each round must end before the next starts, on DST switch days too)",
        ),
        (
            # Fine on ordinary days (40 min apart), but 02:30 moves past 03:10 on 2027-03-28.
            {
                "weekend_holiday_starts": (time(2, 30), time(3, 10)),
                "duration": timedelta(minutes=30),
            },
            "weekend_holiday_starts: rounds overlap or fall out of order on 2027-03-28 "
            "(each round must end before the next starts, on DST switch days too)",
        ),
        (
            # 120 wall minutes apart, but only 60 real minutes across the spring gap.
            {"weekday_starts": (time(1, 30), time(3, 30)), "duration": timedelta(minutes=90)},
            "weekday_starts: rounds overlap or fall out of order on 2027-03-28 "
            "(each round must end before the next starts, on DST switch days too)",
        ),
        (
            {"weekend_holiday_starts": (time(23, 30),)},
            "weekend_holiday_starts: the last round must end by local midnight",
        ),
    ],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, object], message: str) -> None:
    """A policy whose rounds could overlap, reorder or run past midnight is refused."""
    with pytest.raises(ConfigurationError) as caught:
        ReadingRoundPolicy(**kwargs)  # type: ignore[arg-type]  # kwargs typed loosely by design
    assert str(caught.value) == message


def test_back_to_back_rounds_are_allowed() -> None:
    """Rounds may follow each other without a gap (end == next start)."""
    policy = ReadingRoundPolicy(weekday_starts=(time(9), time(10)))
    assert [iso_local(r.start_utc) for r in rounds_on(date(2027, 1, 12), policy)] == [
        "2027-01-12T09:00:00+01:00",
        "2027-01-12T10:00:00+01:00",
    ]


def test_default_policy_is_norrbotten() -> None:
    """The shipped default: 09:00 and 14:00 on weekdays, 10:00 otherwise, 60 minutes."""
    assert ReadingRoundPolicy() == ReadingRoundPolicy(
        weekday_starts=(time(9), time(14)),
        weekend_holiday_starts=(time(10),),
        duration=timedelta(minutes=60),
    )
    assert ReadingRoundPolicy() == NORRBOTTEN_READING_ROUNDS


def test_policy_from_mapping() -> None:
    """A loaded mapping (strings, minutes) becomes the policy value."""
    policy = ReadingRoundPolicy.from_mapping(
        {
            "weekday_starts": ["08:30", "13:00"],
            "weekend_holiday_starts": ["11:00"],
            "duration_minutes": 45,
        }
    )
    assert policy == ReadingRoundPolicy(
        weekday_starts=(time(8, 30), time(13)),
        weekend_holiday_starts=(time(11),),
        duration=timedelta(minutes=45),
    )


def test_policy_from_empty_mapping_is_default() -> None:
    """An empty mapping gives the Norrbotten default."""
    assert ReadingRoundPolicy.from_mapping({}) == NORRBOTTEN_READING_ROUNDS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"duration_minutes": 0},
            "reading_rounds.duration_minutes: Input should be greater than 0",
        ),
        ({"rounds": 2}, "reading_rounds.rounds: Extra inputs are not permitted"),
        (
            {"weekday_starts": ["25:00"]},
            "reading_rounds.weekday_starts.0: Input should be in a valid time format, "
            "hour value is outside expected range of 0-23",
        ),
        (
            {"weekday_starts": ["14:00", "09:00"]},
            "reading_rounds: Value error, weekday_starts: round start times must be "
            "strictly increasing",
        ),
    ],
)
def test_policy_from_mapping_errors_name_the_field(data: dict[str, object], message: str) -> None:
    """Bad configuration raises ConfigurationError naming the field path and the rule."""
    with pytest.raises(ConfigurationError) as caught:
        ReadingRoundPolicy.from_mapping(data)
    assert str(caught.value) == message


def test_reading_round_config_embeds_in_settings() -> None:
    """Inside a larger pydantic model, an invalid policy is a ValidationError at its path."""

    class Settings(BaseModel):
        rounds: ReadingRoundConfig

    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"rounds": {"weekend_holiday_starts": ["23:30"]}})
    assert caught.value.errors(include_url=False, include_input=False, include_context=False) == [
        {
            "type": "value_error",
            "loc": ("rounds",),
            "msg": "Value error, weekend_holiday_starts: the last round must end by local midnight",
        }
    ]


def test_calendar_policy_default_covers_every_kind() -> None:
    """By default every unit kind reads by the Norrbotten rounds."""
    policy = CalendarPolicy()
    assert {kind: policy.for_kind(kind) for kind in UnitKind} == dict.fromkeys(
        UnitKind, NORRBOTTEN_READING_ROUNDS
    )


def test_calendar_policy_from_mapping_overrides_one_kind() -> None:
    """An override applies to its kind only; the rest keep the default."""
    policy = CalendarPolicy.from_mapping(
        {"by_kind": {"assessment_unit": {"weekday_starts": ["08:00", "15:00"]}}}
    )
    expected = dict.fromkeys(UnitKind, NORRBOTTEN_READING_ROUNDS)
    expected[UnitKind.ASSESSMENT_UNIT] = ReadingRoundPolicy(weekday_starts=(time(8), time(15)))
    assert dict(policy.by_kind) == expected


def test_calendar_policy_from_mapping_default_for_all_kinds() -> None:
    """A configured default applies to every kind without an override."""
    policy = CalendarPolicy.from_mapping(
        {
            "default": {"weekend_holiday_starts": ["11:00"]},
            "by_kind": {"health_centre": {}},
        }
    )
    custom = ReadingRoundPolicy(weekend_holiday_starts=(time(11),))
    expected = dict.fromkeys(UnitKind, custom)
    expected[UnitKind.HEALTH_CENTRE] = NORRBOTTEN_READING_ROUNDS
    assert dict(policy.by_kind) == expected


def test_calendar_policy_from_mapping_unknown_kind() -> None:
    """An unknown unit kind in configuration is refused with its path."""
    with pytest.raises(ConfigurationError) as caught:
        CalendarPolicy.from_mapping({"by_kind": {"pharmacy": {}}})
    assert str(caught.value).startswith("calendar.by_kind.pharmacy.[key]: Input should be ")


def test_calendar_policy_requires_every_kind() -> None:
    """A hand-built calendar policy must name a policy for every unit kind."""
    with pytest.raises(ConfigurationError) as caught:
        CalendarPolicy({UnitKind.HEALTH_CENTRE: NORRBOTTEN_READING_ROUNDS})
    assert str(caught.value).startswith("by_kind: a reading-round policy is required for every")


def test_calendar_policy_is_immutable_and_hashable() -> None:
    """The per-kind mapping cannot be changed after construction, and equal policies hash."""
    source = dict.fromkeys(UnitKind, NORRBOTTEN_READING_ROUNDS)
    policy = CalendarPolicy(source)
    source[UnitKind.HEALTH_CENTRE] = ReadingRoundPolicy(weekday_starts=(time(8),))
    with pytest.raises(TypeError):
        policy.by_kind[UnitKind.HEALTH_CENTRE] = NORRBOTTEN_READING_ROUNDS  # type: ignore[index]  # proving it is read-only
    assert (policy.for_kind(UnitKind.HEALTH_CENTRE), hash(policy)) == (
        NORRBOTTEN_READING_ROUNDS,
        hash(CalendarPolicy()),
    )


def test_calendar_config_round_trip() -> None:
    """CalendarConfig().to_policy() is the default calendar policy."""
    assert CalendarConfig().to_policy() == CalendarPolicy()


# --------------------------------------------------------------------------------------------
# Naive datetimes
# --------------------------------------------------------------------------------------------

NAIVE = datetime(2027, 3, 1, 9, 0)  # noqa: DTZ001  # the point of these tests
AWARE = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: due_at(NAIVE, NORRBOTTEN), "arrival_utc"),
        (lambda: next_round_at_or_after(NAIVE, NORRBOTTEN), "instant_utc"),
        (lambda: list(rounds_between(NAIVE, AWARE, NORRBOTTEN)), "start_utc"),
        (lambda: list(rounds_between(AWARE, NAIVE, NORRBOTTEN)), "end_utc"),
        (lambda: local_date_of(NAIVE), "instant_utc"),
    ],
    ids=["due_at", "next_round", "between_start", "between_end", "local_date_of"],
)
def test_naive_datetimes_are_refused_naming_the_argument(call: object, name: str) -> None:
    """Every function taking an instant refuses a naive datetime and names the argument."""
    assert callable(call)
    with pytest.raises(ValueError, match=rf"^{name}: must be timezone-aware"):
        call()


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2025, 12, 1),  # noqa: DTZ001  # hypothesis bounds are naive
    max_value=datetime(2029, 1, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(deadline=None, max_examples=500)
@given(arrival=instants)
def test_due_is_end_of_first_round_at_or_after_arrival(arrival: datetime) -> None:
    """No deadline before its send time: due ends the first round starting at/after arrival."""
    due = due_at(arrival, NORRBOTTEN)
    reading_round = next_round_at_or_after(arrival, NORRBOTTEN)
    assert due == reading_round.end_utc
    assert reading_round.start_utc >= arrival
    assert reading_round in rounds_on(reading_round.local_date, NORRBOTTEN)
    assert list(rounds_between(arrival, reading_round.start_utc, NORRBOTTEN)) == []
    # At least a whole round away, and never more than Sat 10:00+ -> Sun 11:00 over the fold.
    assert HOUR <= due - arrival <= timedelta(hours=26)


@settings(deadline=None, max_examples=300)
@given(first=instants, second=instants)
def test_due_is_monotone(first: datetime, second: datetime) -> None:
    """A later arrival is never due earlier."""
    early, late = sorted((first, second))
    assert due_at(early, NORRBOTTEN) <= due_at(late, NORRBOTTEN)


@settings(deadline=None, max_examples=200)
@given(arrival=instants)
def test_due_ignores_the_input_offset(arrival: datetime) -> None:
    """The same instant given in Stockholm time or UTC has the same due time."""
    assert due_at(arrival.astimezone(STOCKHOLM), NORRBOTTEN) == due_at(arrival, NORRBOTTEN)


start_lists = st.lists(
    st.integers(min_value=0, max_value=24 * 60 - 1), min_size=1, max_size=4, unique=True
).map(lambda minutes: tuple(time(m // 60, m % 60) for m in sorted(minutes)))

SWITCH_WINDOWS = [
    (date(2027, 3, 26), date(2027, 3, 31)),
    (date(2027, 10, 29), date(2027, 11, 3)),
    (date(2028, 3, 24), date(2028, 3, 29)),
    (date(2028, 10, 27), date(2028, 11, 1)),
]


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    weekday=start_lists,
    weekend=start_lists,
    minutes=st.integers(min_value=1, max_value=240),
)
def test_any_accepted_policy_gives_ordered_rounds_around_dst(
    weekday: tuple[time, ...], weekend: tuple[time, ...], minutes: int
) -> None:
    """Every policy the validator accepts yields all its rounds, ordered and disjoint, at DST."""
    try:
        policy = ReadingRoundPolicy(weekday, weekend, timedelta(minutes=minutes))
    except ConfigurationError:
        assume(False)
        raise
    for first, last in SWITCH_WINDOWS:
        rounds = list(
            rounds_between(
                start_of_local_day(first), start_of_local_day(last + timedelta(days=1)), policy
            )
        )
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        assert len(rounds) == sum(len(policy.starts_on(day)) for day in days)
        for earlier, later in itertools.pairwise(rounds):
            assert earlier.start_utc < earlier.end_utc <= later.start_utc
        for reading_round in rounds:
            assert reading_round.end_utc - reading_round.start_utc == timedelta(minutes=minutes)
