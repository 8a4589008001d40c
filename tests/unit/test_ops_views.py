"""What the ops side shows: backlog rows, the summary, the metrics text, receipt ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.directory import Directory, load_directory
from hub.ops.deadletters import KafkaDeadLetterCounter
from hub.ops.metrics import MetricsSnapshot, render_metrics
from hub.ops.receipts import receipt_for, receipt_id_for
from hub.ops.views import (
    AlertView,
    BacklogView,
    LevelCount,
    UnitBacklogView,
    age_minutes,
    backlog_views,
    summarise,
)
from hub.settings import KafkaSettings, Settings
from hub.store.repository import DayKindCounts, OpsAlertRecord, UnitBacklog
from topics.messages import Receipt, ReceiptChannel

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_HSV = "SE2120000000-SYN2580HSV"
LULEA_BIS = "SE2120000000-SYN2580BIS"
GONE = "SE5560000000-SYNHCGONE"  # not in the directory (closed, say)
NOW = datetime(2026, 12, 28, 11, 0, tzinfo=UTC)  # Monday 12:00 in Stockholm


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(Settings().directory_file)


def _backlog(unit: str, count: int, age: timedelta) -> UnitBacklog:
    return UnitBacklog(unit=unit, count=count, oldest_routed_at=NOW - age, oldest_age=age)


BACKLOGS = [
    _backlog(HERTSO, 1, timedelta(hours=2, minutes=30)),
    _backlog(LULEA_BIS, 3, timedelta(days=4, hours=2)),
    _backlog(GONE, 3, timedelta(hours=1)),
]
SPLIT = {
    HERTSO: DayKindCounts(weekday=1),
    LULEA_BIS: DayKindCounts(weekday=1, weekend_or_holiday=2),
    GONE: DayKindCounts(weekend_or_holiday=3),
}


def test_backlog_rows_name_the_unit_and_put_the_largest_first(directory: Directory) -> None:
    """Rows carry name, kind and municipality; most unreceipted first, then the oldest."""
    rows = backlog_views(BACKLOGS, SPLIT, directory, include_empty=False)
    assert rows == [
        UnitBacklogView(
            hsa_id=LULEA_BIS,
            name="Biståndsenheten Luleå kommun",
            kind="assessment_unit",
            municipality_code="2580",
            municipality="Luleå",
            unreceipted=3,
            weekday=1,
            weekend_or_holiday=2,
            oldest_routed_at=NOW - timedelta(days=4, hours=2),
            oldest_age_minutes=4 * 1440 + 120,
        ),
        UnitBacklogView(
            hsa_id=GONE,
            name=GONE,
            kind=None,
            municipality_code=None,
            municipality=None,
            unreceipted=3,
            weekday=0,
            weekend_or_holiday=3,
            oldest_routed_at=NOW - timedelta(hours=1),
            oldest_age_minutes=60,
        ),
        UnitBacklogView(
            hsa_id=HERTSO,
            name="Hertsö hälsocentral",
            kind="health_centre",
            municipality_code="2580",
            municipality="Luleå",
            unreceipted=1,
            weekday=1,
            weekend_or_holiday=0,
            oldest_routed_at=NOW - timedelta(hours=2, minutes=30),
            oldest_age_minutes=150,
        ),
    ]


def test_every_recipient_unit_is_listed_with_zeros(directory: Directory) -> None:
    """With include_empty, units that have caught up show 0; wards only with a backlog."""
    rows = backlog_views(BACKLOGS, SPLIT, directory)
    by_unit = {row.hsa_id: row for row in rows}
    assert [row.hsa_id for row in rows[:3]] == [LULEA_BIS, GONE, HERTSO]
    assert all(row.unreceipted == 0 for row in rows[3:])
    assert by_unit[LULEA_HSV].model_dump() == {
        "hsa_id": LULEA_HSV,
        "name": "Hemsjukvården Luleå kommun",
        "kind": "home_health_care",
        "municipality_code": "2580",
        "municipality": "Luleå",
        "unreceipted": 0,
        "weekday": 0,
        "weekend_or_holiday": 0,
        "oldest_routed_at": None,
        "oldest_age_minutes": None,
    }
    kinds = {row.kind for row in rows}
    assert "hospital_ward" not in kinds
    # 14 municipalities x (home health care + assessment unit) at least, plus health centres.
    assert sum(1 for row in rows if row.kind == "home_health_care") == 14
    assert sum(1 for row in rows if row.kind == "assessment_unit") == 14


@pytest.mark.parametrize(
    ("age", "minutes"),
    [
        (timedelta(0), 0),
        (timedelta(seconds=59), 0),
        (timedelta(minutes=1), 1),
        (timedelta(hours=20, seconds=30), 1200),
        (timedelta(seconds=-5), 0),  # a clock slightly behind the router's
    ],
)
def test_age_in_whole_minutes_never_negative(age: timedelta, minutes: int) -> None:
    """Ages are floored to whole minutes and clamped at zero."""
    assert age_minutes(age) == minutes


def _alert(severity: str, kind: str = "oncall.gap") -> OpsAlertRecord:
    return OpsAlertRecord(
        alert_id=uuid.uuid4(),
        kind=kind,
        severity=severity,
        summary="s",
        details={},
        raised_at=NOW,
        resolved_at=None,
    )


def test_the_summary_adds_up_units_levels_and_alerts(directory: Directory) -> None:
    """Totals over the rows; acknowledged = unreceipted - open; alerts by severity."""
    rows = backlog_views(BACKLOGS, SPLIT, directory)
    levels = [
        LevelCount(level=0, count=2),
        LevelCount(level=1, count=3),
        LevelCount(level=2, count=1),
    ]
    levels.append(LevelCount(level=3, count=0))
    alerts = [_alert("warning"), _alert("critical"), _alert("warning")]
    summary = summarise(rows, 5, levels, alerts, NOW)
    assert summary.model_dump() == {
        "generated_at": NOW,
        "units_with_backlog": 3,
        "unreceipted": 7,
        "weekday": 2,
        "weekend_or_holiday": 5,
        "oldest_age_minutes": 4 * 1440 + 120,
        "acknowledged": 2,
        "overdue": 6,
        "overdue_by_level": [level.model_dump() for level in levels],
        "open_alerts": 3,
        "open_alerts_by_severity": {"critical": 1, "warning": 2},
    }
    empty = summarise([], 0, [], [], NOW)
    assert (empty.unreceipted, empty.oldest_age_minutes, empty.open_alerts) == (0, None, 0)


def test_metrics_text_reports_each_figure(directory: Directory) -> None:
    """The Prometheus text has the backlog per unit, the oldest age, levels, alerts, DLQ."""
    rows = backlog_views(BACKLOGS, SPLIT, directory, include_empty=False)
    levels = [LevelCount(level=level, count=level + 1) for level in range(4)]
    records = [
        _alert("critical", "dead_letter.unroutable"),
        _alert("critical", "dead_letter.unroutable"),
    ]
    snapshot = MetricsSnapshot(
        backlog=BacklogView(generated_at=NOW, units=rows),
        summary=summarise(rows, 7, levels, records, NOW),
        alerts=[
            AlertView(
                alert_id=r.alert_id,
                kind=r.kind,
                severity=r.severity,
                summary=r.summary,
                details={},
                raised_at=r.raised_at,
            )
            for r in records
        ],
        dead_letters=4,
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(render_metrics(snapshot).decode())
        for s in family.samples
    }
    assert (
        samples[
            (
                "hub_unreceipted_deliveries",
                (("kind", "assessment_unit"), ("municipality", "2580"), ("unit", LULEA_BIS)),
            )
        ]
        == 3
    )
    assert (
        samples[
            (
                "hub_unreceipted_deliveries",
                (("kind", "unknown"), ("municipality", ""), ("unit", GONE)),
            )
        ]
        == 3
    )
    assert samples[("hub_unreceipted_oldest_age_seconds", (("unit", HERTSO),))] == 9000
    assert (
        samples[
            (
                "hub_unreceipted_deliveries_by_arrival_day",
                (("day_kind", "weekend_or_holiday"), ("unit", LULEA_BIS)),
            )
        ]
        == 2
    )
    assert [samples[("hub_overdue_deliveries", (("level", str(n)),))] for n in range(4)] == [
        1,
        2,
        3,
        4,
    ]
    assert (
        samples[("hub_open_alerts", (("kind", "dead_letter.unroutable"), ("severity", "critical")))]
        == 2
    )
    assert samples[("hub_dead_letters", ())] == 4
    assert samples[("hub_dead_letters_known", ())] == 1
    unknown = render_metrics(
        MetricsSnapshot(snapshot.backlog, snapshot.summary, snapshot.alerts, None)
    ).decode()
    assert "hub_dead_letters_known 0.0" in unknown.splitlines()
    assert not any(line.startswith("hub_dead_letters ") for line in unknown.splitlines())


def test_receipt_ids_are_fixed_per_delivery_and_channel() -> None:
    """The same delivery and channel give the same id every time; channels differ."""
    delivery = uuid.UUID("11111111-2222-3333-4444-555555555555")
    ids = {channel: receipt_id_for(delivery, channel) for channel in ReceiptChannel}
    assert len(set(ids.values())) == len(ReceiptChannel)
    assert receipt_id_for(delivery, ReceiptChannel.LINK) == ids[ReceiptChannel.LINK]
    # Pinned: changing the namespace would make a repeated click look like a new receipt.
    assert str(ids[ReceiptChannel.LINK]) == str(
        uuid.uuid5(uuid.UUID("2d6b1f8e-5c3a-4e9d-a0b7-8f4c6e2d1a03"), f"{delivery}|link")
    )
    receipt = receipt_for(delivery, HERTSO, ReceiptChannel.HTTP, "SE2321000230-SYNNURSE7", NOW)
    assert receipt == Receipt(
        receipt_id=ids[ReceiptChannel.HTTP],
        delivery_id=delivery,
        unit=HERTSO,
        receipted_at=NOW,
        receipted_by="SE2321000230-SYNNURSE7",
        channel=ReceiptChannel.HTTP,
    )


async def test_dead_letter_count_is_unknown_when_the_broker_is_away() -> None:
    """No broker: the count is None (reported as not known), within the timeout."""
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    assert await KafkaDeadLetterCounter(settings, timeout_s=1.0).count() is None
