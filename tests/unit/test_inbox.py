"""The reference inbox's pure parts: what it keeps, and what configuration it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.inbox import Inbox, group_id_for
from hub.broker import build_broker
from hub.clock import FixedClock
from hub.errors import ValidationFailed
from hub.publishing import Outbox
from hub.settings import Settings

HERTSO = "SE2321000230-SYNHCHERTSO"
NURSE = "SE2321000230-SYNNURSE7"


def _inbox(unit: str = HERTSO, receipted_by: str = NURSE, delay: float | None = 0.0) -> Inbox:
    settings = Settings()
    outbox = Outbox(build_broker(settings), settings)  # never started: nothing is sent here
    clock = FixedClock(datetime(2027, 1, 15, 15, 0, tzinfo=UTC))
    return Inbox(unit, receipted_by, outbox, clock, receipt_delay_s=delay)


@pytest.mark.parametrize(
    ("unit", "receipted_by", "delay", "message"),
    [
        ("not-an-hsa-id", NURSE, 0.0, "unit: must be an HSA-id"),
        (HERTSO, "19121212-1212", 0.0, "receipted_by: must be an HSA-id"),
        (HERTSO, NURSE, -1.0, "receipt_delay_s: must be between 0 and 60 seconds"),
        (HERTSO, NURSE, 61.0, "receipt_delay_s: must be between 0 and 60 seconds"),
    ],
)
def test_bad_configuration_is_refused(
    unit: str, receipted_by: str, delay: float, message: str
) -> None:
    """A bad unit, staff id or delay stops the inbox at start-up, naming the argument."""
    with pytest.raises(ValidationFailed) as caught:
        _inbox(unit, receipted_by, delay)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("key", "mine"),
    [
        (HERTSO.encode(), True),
        (b"SE2120000000-SYN2580HSV", False),
        (HERTSO.encode() + b" ", False),
        (HERTSO.lower().encode(), False),
        (None, False),
    ],
)
def test_only_records_keyed_by_the_unit_are_kept(key: bytes | None, mine: bool) -> None:
    """The key must be exactly the unit's HSA-id; anything else is another unit's record."""
    assert _inbox().is_mine(key) is mine


def test_no_receipt_mode_and_group_per_unit() -> None:
    """``receipt_delay_s=None`` only reads; each unit's inbox has its own consumer group."""
    assert _inbox(delay=None).receipt_delay_s is None
    assert group_id_for(HERTSO) == "inbox-SE2321000230-SYNHCHERTSO"
