"""The reading rounds of a day are memoised per (date, policy): results stay exactly as before."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hub.calendar import (
    DST_END_2027,
    DST_START_2027,
    STOCKHOLM,
    ReadingRoundPolicy,
    due_at,
    local_to_utc,
    rounds_on,
)

NORRBOTTEN = ReadingRoundPolicy()
EARLY = ReadingRoundPolicy(
    weekday_starts=(time(7, 30),),
    weekend_holiday_starts=(time(8, 0),),
    duration=timedelta(minutes=30),
)


def test_rounds_of_one_date_follow_each_policy() -> None:
    """Two policies asked about the same dates, interleaved, each get their own rounds."""
    for day in (date(2027, 1, 12), DST_START_2027, DST_END_2027, date(2027, 12, 24)):
        for _ in range(2):
            norrbotten = rounds_on(day, NORRBOTTEN)
            early = rounds_on(day, EARLY)
            starts = NORRBOTTEN.starts_on(day)
            assert [r.start_utc for r in norrbotten] == [local_to_utc(day, t) for t in starts]
            assert [r.start_utc for r in early] == [
                local_to_utc(day, t) for t in EARLY.starts_on(day)
            ]
            assert norrbotten != early


def test_changing_a_returned_list_changes_no_later_answer() -> None:
    """rounds_on hands out a new list each time: a caller's edits do not leak into the memo."""
    day = date(2027, 3, 22)
    first = rounds_on(day, NORRBOTTEN)
    first.clear()
    again = rounds_on(day, NORRBOTTEN)
    assert len(again) == 2
    assert again is not first
    arrival = datetime(2027, 3, 22, 8, 30, tzinfo=STOCKHOLM)
    assert due_at(arrival, NORRBOTTEN).astimezone(STOCKHOLM).isoformat() == (
        "2027-03-22T10:00:00+01:00"
    )


def reference_due_at(arrival: datetime, policy: ReadingRoundPolicy) -> datetime:
    """The end of the first round starting at or after ``arrival``, computed afresh."""
    day = arrival.astimezone(STOCKHOLM).date()
    starts = [
        local_to_utc(d, t)
        for d in (day, day + timedelta(days=1), day + timedelta(days=2))
        for t in policy.starts_on(d)
    ]
    return min(s for s in starts if s >= arrival) + policy.duration


def test_due_times_across_a_year_match_a_fresh_computation() -> None:
    """Every hour of 2027 (DST switches, holidays), for two policies and asked twice: each
    due time equals one computed from the round times without the memo."""
    start = datetime(2027, 1, 1, 0, 20, tzinfo=UTC)
    instants = [start + timedelta(hours=h) for h in range(365 * 24)]
    for _ in range(2):
        for policy in (NORRBOTTEN, EARLY):
            assert [due_at(i, policy) for i in instants] == [
                reference_due_at(i, policy) for i in instants
            ]
