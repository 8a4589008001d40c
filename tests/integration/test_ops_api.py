"""The recipient API, the signed links and the ops API on a real broker and a real store.

Each test runs the hub's router and tracker against the session's Kafka broker (fresh topics
per test) and a SQLite store, feeds one admission notice of a Luleå episode (three deliveries:
Hertsö health centre, Luleå home health care, Luleå assessment unit), and talks to the ops app
in-process (``httpx.ASGITransport``). The clock is fixed on Friday 2027-01-15 16:00 Stockholm,
so the deliveries are due on Saturday at 11:00 (the weekend round, 10:00-11:00).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError
from fastapi import FastAPI

from hub.app import Hub, Part
from hub.calendar import STOCKHOLM
from hub.clock import FixedClock
from hub.links import LinkAction, sign
from hub.ops.api import ReceiptPublisher, build_api, get_publisher
from hub.ops.deadletters import KafkaDeadLetterCounter
from hub.ops.keys import UnitKeyStore, new_unit_key
from hub.ops.receipts import receipt_id_for
from hub.settings import KafkaSettings, Settings
from tests.support.envelopes import make_envelope
from tests.support.kafka import read_topic
from tests.support.wait import eventually
from topics.catalogue import MessageType
from topics.codec import decode
from topics.identifiers import contains_identity_number
from topics.ids import delivery_id_for
from topics.messages import (
    AlertSeverity,
    Envelope,
    Escalation,
    OpsAlert,
    Receipt,
    ReceiptChannel,
)
from topics.topics import TopicName

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_HSV = "SE2120000000-SYN2580HSV"
LULEA_BIS = "SE2120000000-SYN2580BIS"
STAFF = "SE2120000000-SYNSTAFF01"
PATIENT = "19121212-1212"  # the examples' patient


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


@dataclass
class Running:
    """A running hub (router + tracker) with the ops app in front of it."""

    hub: Hub
    settings: Settings
    clock: FixedClock
    client: httpx.AsyncClient
    app: FastAPI
    admission: Envelope
    keys: dict[str, str]

    def delivery(self, unit: str) -> uuid.UUID:
        return delivery_id_for(self.admission.message_id, unit)

    def auth(self, unit: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[unit]}"}

    def link(self, action: LinkAction, target: uuid.UUID, *, now: datetime | None = None) -> str:
        """The path and query of a signed link, as the notifier would send it."""
        url = sign(
            self.settings.link_secret.get_secret_value().encode(),
            base_url=self.settings.public_base_url,
            action=action,
            target=target,
            now=now or self.clock.now(),
            ttl=timedelta(days=2),
        )
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}"

    async def receipts_on_topic(self, expected: int, timeout_s: float = 20.0) -> list[Receipt]:
        """Every receipt on the receipts topic, read until ``expected`` or the deadline."""
        records = await read_topic(
            self.settings.kafka.bootstrap_servers,
            self.settings.topic(TopicName.RECEIPTS),
            expected=expected,
            timeout_s=timeout_s,
        )
        return [decode(Receipt, r.value, dict(r.headers)) for r in records]


@pytest.fixture
async def running(bootstrap: str, topic_prefix: str, tmp_path: Path) -> AsyncIterator[Running]:
    """The hub routing one admission notice to three units, and the ops app over it."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}",
    )
    clock = FixedClock(local("2027-01-15T16:00:00"))  # a Friday
    hub = await Hub.open(settings, clock, parts={Part.ROUTER, Part.TRACKER})
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    try:
        await eventually(lambda: asyncio.sleep(0, hub.broker.running), bool, what="broker up")
        episode = f"sunderby:{uuid.uuid4().hex[:8]}"
        admission = make_envelope(MessageType.ADMISSION_NOTICE, episode_id=episode)
        await hub.outbox.send(TopicName.CARE_EPISODE_EVENTS, admission, episode)
        await eventually(hub.store.count_open, lambda n: n == 3, what="3 open deliveries")
        keys: dict[str, str] = {}
        entries = []
        for unit in (HERTSO, LULEA_HSV):
            keys[unit], entry = new_unit_key(unit)
            entries.append(entry)
        app = build_api(
            settings,
            hub.store,
            hub.outbox,
            hub.directory,
            clock,
            UnitKeyStore(entries),
            dead_letters=KafkaDeadLetterCounter(settings, timeout_s=10.0),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ops.test") as client:
            yield Running(hub, settings, clock, client, app, admission, keys)
    finally:
        stop.set()
        await runner


async def test_a_unit_reads_only_its_own_deliveries(running: Running) -> None:
    """A unit's key reads its own deliveries (envelope included) and nothing of another unit."""
    client = running.client
    own = await client.get(f"/v1/units/{HERTSO}/deliveries", headers=running.auth(HERTSO))
    assert own.status_code == 200, own.text
    body = own.json()
    assert [d["delivery_id"] for d in body["deliveries"]] == [str(running.delivery(HERTSO))]
    delivery = body["deliveries"][0]
    assert delivery["message_type"] == "admission_notice"
    assert delivery["routed_at"] == "2027-01-15T15:00:00Z"
    assert delivery["due_at"] == "2027-01-16T10:00:00Z"  # Saturday 11:00 Stockholm
    assert delivery["receipted_at"] is None
    assert delivery["envelope"]["patient"] == PATIENT  # the secure side: the unit's own data
    assert (body["next_since"], body["next_after"]) == (None, None)

    other = await client.get(f"/v1/units/{LULEA_HSV}/deliveries", headers=running.auth(HERTSO))
    assert other.status_code == 403, other.text
    assert PATIENT not in other.text
    unkeyed = await client.get(f"/v1/units/{LULEA_BIS}/deliveries", headers=running.auth(HERTSO))
    assert unkeyed.status_code == 403, unkeyed.text
    anonymous = await client.get(f"/v1/units/{HERTSO}/deliveries")
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    forged = await client.get(
        f"/v1/units/{HERTSO}/deliveries", headers={"Authorization": "Bearer dhu_" + "x" * 43}
    )
    assert forged.status_code == 401, forged.text


async def test_paging_is_oldest_first_and_resumable(running: Running) -> None:
    """``since``/``after`` page through the unit's deliveries without gaps or repeats."""
    follow_up = make_envelope(
        MessageType.PLANNING_DOCUMENT, episode_id=running.admission.episode_id
    )
    running.clock.advance(timedelta(minutes=30))
    assert running.admission.episode_id is not None
    await running.hub.outbox.send(
        TopicName.CARE_EPISODE_EVENTS, follow_up, running.admission.episode_id
    )
    await eventually(running.hub.store.count_open, lambda n: n == 6, what="6 open deliveries")
    client = running.client
    first = await client.get(
        f"/v1/units/{HERTSO}/deliveries", params={"limit": 1}, headers=running.auth(HERTSO)
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert [d["message_type"] for d in page["deliveries"]] == ["admission_notice"]
    second = await client.get(
        f"/v1/units/{HERTSO}/deliveries",
        params={"limit": 1, "since": page["next_since"], "after": page["next_after"]},
        headers=running.auth(HERTSO),
    )
    assert second.status_code == 200, second.text
    assert [d["delivery_id"] for d in second.json()["deliveries"]] == [
        str(delivery_id_for(follow_up.message_id, HERTSO))
    ]
    naive = await client.get(
        f"/v1/units/{HERTSO}/deliveries",
        params={"since": "2027-01-15T16:00:00"},
        headers=running.auth(HERTSO),
    )
    assert naive.status_code == 422, naive.text
    assert naive.json()["errors"] == [
        {
            "field": "query.since",
            "type": "timezone_aware",
            "message": "Input should have timezone info",
        }
    ]


async def test_a_unit_cannot_receipt_another_units_delivery(running: Running) -> None:
    """Receipting another unit's delivery is 403, an unknown one 404; nothing is published."""
    client = running.client
    hsv = str(running.delivery(LULEA_HSV))
    cases = [
        (HERTSO, {"delivery_id": hsv, "receipted_by": STAFF}, 403),  # its path, other's delivery
        (LULEA_HSV, {"delivery_id": hsv, "receipted_by": STAFF}, 403),  # other unit's path
        (HERTSO, {"delivery_id": str(uuid.uuid4()), "receipted_by": STAFF}, 404),
    ]
    for path_unit, body, status in cases:
        response = await client.post(
            f"/v1/units/{path_unit}/receipts", json=body, headers=running.auth(HERTSO)
        )
        assert response.status_code == status, (path_unit, body, response.text)
    assert await running.receipts_on_topic(expected=1, timeout_s=3.0) == []
    stored = await running.hub.store.delivery(running.delivery(LULEA_HSV))
    assert stored is not None
    assert stored.receipted_at is None


async def test_field_errors_name_the_field_but_not_the_input(running: Running) -> None:
    """A bad receipt body is 422 listing each field and rule, never the value sent."""
    response = await running.client.post(
        f"/v1/units/{HERTSO}/receipts",
        json={"delivery_id": f"x{PATIENT}", "receipted_by": PATIENT, "extra": PATIENT},
        headers=running.auth(HERTSO),
    )
    assert response.status_code == 422, response.text
    assert PATIENT not in response.text
    assert not contains_identity_number(response.text)
    assert [(e["field"], e["type"]) for e in response.json()["errors"]] == [
        ("body.delivery_id", "uuid_parsing"),
        ("body.receipted_by", "hsa_id"),
        ("body.extra", "extra_forbidden"),
    ]


async def test_http_receipt_reaches_the_topic_and_the_store(running: Running) -> None:
    """202 once the receipt is on the topic; the tracker then records it; a repeat is 200."""
    delivery = running.delivery(HERTSO)
    running.clock.set(local("2027-01-15T16:20:00"))
    response = await running.client.post(
        f"/v1/units/{HERTSO}/receipts",
        json={"delivery_id": str(delivery), "receipted_by": STAFF},
        headers=running.auth(HERTSO),
    )
    assert response.status_code == 202, response.text
    expected = Receipt(
        receipt_id=receipt_id_for(delivery, ReceiptChannel.HTTP),
        delivery_id=delivery,
        unit=HERTSO,
        receipted_at=local("2027-01-15T16:20:00"),
        receipted_by=STAFF,
        channel=ReceiptChannel.HTTP,
    )
    assert response.json() == {
        "status": "accepted",
        "delivery_id": str(delivery),
        "receipt_id": str(expected.receipt_id),
        "receipted_at": "2027-01-15T15:20:00Z",
    }
    assert await running.receipts_on_topic(expected=1) == [expected]
    stored = await eventually(
        lambda: running.hub.store.delivery(delivery),
        lambda d: d is not None and d.receipted_at is not None,
        what="receipt stored",
    )
    assert stored is not None
    assert (stored.receipt_id, stored.receipted_at) == (expected.receipt_id, expected.receipted_at)

    again = await running.client.post(
        f"/v1/units/{HERTSO}/receipts",
        json={"delivery_id": str(delivery), "receipted_by": STAFF},
        headers=running.auth(HERTSO),
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "already_receipted"
    assert await running.receipts_on_topic(expected=2, timeout_s=3.0) == [expected]


async def test_signed_receipt_link_works_once(running: Running) -> None:
    """A receipt link receipts once; later clicks say so and publish no different receipt."""
    delivery = running.delivery(LULEA_BIS)
    link = running.link(LinkAction.RECEIPT, delivery)
    first = await running.client.get(link)
    assert first.status_code == 200, first.text
    assert "<h1>Kvitterat</h1>" in first.text
    assert "Biståndsenheten Luleå kommun" in first.text
    # A second click before the tracker caught up republishes the very same receipt.
    quick = await running.client.get(link)
    assert quick.status_code == 200, quick.text
    await eventually(
        lambda: running.hub.store.delivery(delivery),
        lambda d: d is not None and d.receipted_at is not None,
        what="link receipt stored",
    )
    later = await running.client.get(link)
    assert later.status_code == 200, later.text
    assert "<h1>Redan kvitterat</h1>" in later.text

    published = await running.receipts_on_topic(expected=3, timeout_s=3.0)
    expected = Receipt(
        receipt_id=receipt_id_for(delivery, ReceiptChannel.LINK),
        delivery_id=delivery,
        unit=LULEA_BIS,
        receipted_at=running.clock.now(),
        receipted_by=LULEA_BIS,  # a link cannot tell who clicked: the unit itself
        channel=ReceiptChannel.LINK,
    )
    assert published in ([expected], [expected, expected])
    stored = await running.hub.store.delivery(delivery)
    assert stored is not None
    assert stored.receipt_id == expected.receipt_id


class _BrokerDown:
    """A publisher whose broker never acknowledges."""

    async def send(self, topic: object, record: object, key: str) -> object:
        msg = "no ack"
        raise KafkaTimeoutError(msg)


async def test_a_receipt_the_broker_did_not_take_is_503_and_not_receipted(
    running: Running,
) -> None:
    """Without the broker's ack the API answers 503 (retry later) and the link page says so."""
    down: ReceiptPublisher = _BrokerDown()
    running.app.dependency_overrides[get_publisher] = lambda: down
    try:
        response = await running.client.post(
            f"/v1/units/{HERTSO}/receipts",
            json={"delivery_id": str(running.delivery(HERTSO)), "receipted_by": STAFF},
            headers=running.auth(HERTSO),
        )
        page = await running.client.get(
            running.link(LinkAction.RECEIPT, running.delivery(LULEA_BIS))
        )
    finally:
        running.app.dependency_overrides.clear()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json()["detail"].startswith("the message broker is unavailable")
    assert page.status_code == 503, page.text
    assert "<h1>Försök igen om en stund</h1>" in page.text
    assert "Ingenting är kvitterat ännu" in page.text
    assert await running.receipts_on_topic(expected=1, timeout_s=2.0) == []


@pytest.mark.parametrize(
    ("name", "status", "heading", "text"),
    [
        ("tampered", 403, "Länken fungerar inte", "Länken är ogiltig"),
        ("expired", 410, "Länken fungerar inte", "Länken har gått ut"),
        ("other action", 403, "Länken fungerar inte", "Länken är ogiltig"),
        ("no signature", 403, "Länken fungerar inte", "Länken är ogiltig"),
        ("not a uuid", 403, "Länken fungerar inte", "Länken är ogiltig"),
    ],
)
async def test_bad_receipt_links_are_refused(
    running: Running, name: str, status: int, heading: str, text: str
) -> None:
    """A changed, expired, misused or incomplete link is refused and receipts nothing."""
    delivery = running.delivery(LULEA_BIS)
    good = running.link(LinkAction.RECEIPT, delivery)
    path, query = good.split("?")
    links = {
        "tampered": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "expired": running.link(
            LinkAction.RECEIPT, delivery, now=running.clock.now() - timedelta(days=3)
        ),
        "other action": running.link(LinkAction.ACKNOWLEDGE, delivery).replace(
            "/l/bekrafta/", "/l/kvittera/"
        ),
        "no signature": f"{path}?{query.split('&')[0]}",
        "not a uuid": f"/l/kvittera/{PATIENT}?{query}",
    }
    response = await running.client.get(links[name])
    assert response.status_code == status, response.text
    assert f"<h1>{heading}</h1>" in response.text
    assert text in response.text
    assert not contains_identity_number(response.text)
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert await running.receipts_on_topic(expected=1, timeout_s=2.0) == []


async def test_acknowledgement_link_stops_the_ladder(running: Running) -> None:
    """On-call staff acknowledge by link: the digest's deliveries get no further level."""
    hub = running.hub
    level1 = await hub.scanner.scan(local("2027-01-16T11:00:00"))
    assert level1.digests == 3
    records = await read_topic(
        running.settings.kafka.bootstrap_servers,
        running.settings.topic(TopicName.ESCALATIONS),
        expected=3,
    )
    escalations = {
        e.unit: e for e in (decode(Escalation, r.value, dict(r.headers)) for r in records)
    }
    running.clock.set(local("2027-01-16T11:30:00"))
    link = running.link(LinkAction.ACKNOWLEDGE, escalations[LULEA_BIS].escalation_id)
    first = await running.client.get(link)
    assert first.status_code == 200, first.text
    assert "<h1>Bekräftat</h1>" in first.text
    assert "inga fler eskaleringar skickas" in first.text
    bis = await hub.store.delivery(running.delivery(LULEA_BIS))
    assert bis is not None
    assert bis.acknowledged_at == local("2027-01-16T11:30:00")
    assert bis.receipted_at is None  # acknowledging is not receipting
    again = await running.client.get(link)
    assert again.status_code == 200, again.text
    assert "redan bekräftad" in again.text

    level2 = await hub.scanner.scan(local("2027-01-16T12:00:00"))
    assert level2.digests == 2  # Hertsö and home health care climb; the assessment unit not
    records = await read_topic(
        running.settings.kafka.bootstrap_servers,
        running.settings.topic(TopicName.ESCALATIONS),
        expected=5,
    )
    # Partitions interleave: compare the whole set of (level, unit) published so far.
    published = [decode(Escalation, r.value, dict(r.headers)) for r in records]
    assert sorted((e.level, e.unit) for e in published) == [
        (1, LULEA_BIS),
        (1, LULEA_HSV),
        (1, HERTSO),
        (2, LULEA_HSV),
        (2, HERTSO),
    ]

    unknown = await running.client.get(running.link(LinkAction.ACKNOWLEDGE, uuid.uuid4()))
    assert unknown.status_code == 404, unknown.text


async def test_ops_endpoints_report_the_backlog_without_patient_data(running: Running) -> None:
    """Backlog, summary, alerts, metrics, health and the dashboard: figures, no personnummer."""
    hub = running.hub
    alert = OpsAlert(
        alert_id=uuid.uuid4(),
        kind="dead_letter.unroutable",
        severity=AlertSeverity.CRITICAL,
        summary=f"router: refused a message about {PATIENT}",
        raised_at=local("2027-01-15T16:00:00"),
        details={"stage": "router", "patient": PATIENT},
    )
    assert await hub.store.raise_alert(alert)
    # A record the tracker cannot read: one dead letter for /metrics to count.
    await hub.broker.publish(b"not json", running.settings.topic(TopicName.RECEIPTS), key=b"x")
    running.clock.set(local("2027-01-16T12:00:00"))  # Saturday: 20 h after arrival
    client = running.client

    backlog = await client.get("/v1/ops/backlog", params={"include_empty": "false"})
    assert backlog.status_code == 200, backlog.text
    row = {
        "municipality_code": "2580",
        "municipality": "Luleå",
        "unreceipted": 1,
        "weekday": 1,  # arrived on a Friday
        "weekend_or_holiday": 0,
        "oldest_routed_at": "2027-01-15T15:00:00Z",
        "oldest_age_minutes": 20 * 60,
    }
    assert backlog.json() == {
        "generated_at": "2027-01-16T11:00:00Z",
        "units": [
            {
                **row,
                "hsa_id": LULEA_BIS,
                "name": "Biståndsenheten Luleå kommun",
                "kind": "assessment_unit",
            },
            {
                **row,
                "hsa_id": LULEA_HSV,
                "name": "Hemsjukvården Luleå kommun",
                "kind": "home_health_care",
            },
            {**row, "hsa_id": HERTSO, "name": "Hertsö hälsocentral", "kind": "health_centre"},
        ],
    }
    summary = await client.get("/v1/ops/summary")
    assert summary.status_code == 200, summary.text
    assert summary.json() == {
        "generated_at": "2027-01-16T11:00:00Z",
        "units_with_backlog": 3,
        "unreceipted": 3,
        "weekday": 3,
        "weekend_or_holiday": 0,
        "oldest_age_minutes": 1200,
        "acknowledged": 0,
        "overdue": 3,
        "overdue_by_level": [
            {"level": 0, "count": 3},
            {"level": 1, "count": 0},
            {"level": 2, "count": 0},
            {"level": 3, "count": 0},
        ],
        "open_alerts": 1,
        "open_alerts_by_severity": {"critical": 1},
    }
    alerts = await client.get("/v1/ops/alerts")
    assert alerts.status_code == 200, alerts.text
    assert [(a["kind"], a["details"]["stage"]) for a in alerts.json()] == [
        ("dead_letter.unroutable", "router")
    ]
    metrics = await eventually(
        lambda: client.get("/metrics"),
        lambda r: "hub_dead_letters 1.0" in r.text,
        what="dead letter counted in /metrics",
        timeout_s=15.0,
    )
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    for line in (
        "hub_unreceipted_deliveries"
        f'{{kind="assessment_unit",municipality="2580",unit="{LULEA_BIS}"}} 1.0',
        f'hub_unreceipted_oldest_age_seconds{{unit="{HERTSO}"}} 72000.0',
        'hub_overdue_deliveries{level="0"} 3.0',
        'hub_open_alerts{kind="dead_letter.unroutable",severity="critical"} 1.0',
        "hub_dead_letters_known 1.0",
    ):
        assert line in metrics.text.splitlines(), line

    health = await client.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok", "store": "reachable"})
    everything = [backlog, summary, alerts, metrics, health]
    everything.append(await client.get("/"))
    everything.append(await client.get("/?lang=en"))
    everything.append(await client.get("/v1/ops/backlog"))
    for response in everything:
        assert response.status_code == 200, response.text
        assert not contains_identity_number(response.text), response.request.url
        assert "19121212" not in response.text, response.request.url
    # The scan above would fail if it could not see a personnummer where there is one.
    own = await client.get(f"/v1/units/{HERTSO}/deliveries", headers=running.auth(HERTSO))
    assert contains_identity_number(own.text)
