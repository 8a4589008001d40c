"""The ops dashboard in a real Chromium (Debian's package, driven by Playwright).

The ops app runs under uvicorn on a free loopback port, in a thread with its own event loop,
over a migrated SQLite store seeded directly (``Store.add_deliveries``) and a publisher stub:
no broker is needed to show counts. The clock is fixed on Monday 2026-12-28 12:00 in
Stockholm, in the Christmas week, so the weekday/holiday split is exercised by julafton
(de-facto holiday), juldagen (a Friday holiday) and an ordinary Monday. The expected figures
below are worked out by hand from those dates, not by the code under test.

No browser build is downloaded: ``browser_type_launch_args`` points Playwright at
``shutil.which("chromium")``. A failing test leaves a screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Page, expect

from hub.calendar import STOCKHOLM
from hub.clock import FixedClock
from hub.directory import DirectoryHistory, load_directory
from hub.ops.api import build_api
from hub.ops.keys import UnitKeyStore
from hub.ops.server import serve
from hub.ops.settings import OpsSettings
from hub.settings import REPO_ROOT, Settings
from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import NewDelivery, Store
from tests.support.envelopes import make_envelope
from topics.catalogue import MessageType
from topics.identifiers import contains_identity_number
from topics.ids import delivery_id_for
from topics.messages import AlertSeverity, OpsAlert, Receipt, ReceiptChannel

pytestmark = pytest.mark.browser

ARTIFACTS = REPO_ROOT / "test-artifacts"

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_HSV = "SE2120000000-SYN2580HSV"
LULEA_BIS = "SE2120000000-SYN2580BIS"
STAFF = "SE2120000000-SYNSTAFF01"
PATIENT = "19121212-1212"  # the examples' patient: must never reach the page
NOW = datetime(2026, 12, 28, 12, 0, tzinfo=STOCKHOLM)  # Monday after Christmas

T = TypeVar("T")


class _NoBroker:
    """The publisher of this test: the dashboard never publishes."""

    async def send(self, topic: object, record: object, key: str) -> object:
        msg = "the dashboard must not publish"
        raise AssertionError(msg)


class LiveOps:
    """The ops app under uvicorn in a background thread, and its store."""

    def __init__(self, tmp_path: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._url = f"sqlite+aiosqlite:///{tmp_path / 'ops.sqlite3'}"
        self._stop: asyncio.Event | None = None
        self._serving: asyncio.Future[None] | None = None
        self.store: Store | None = None
        self.base_url = ""

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run ``coro`` on the server's loop (the store's engine belongs to it)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout_s)

    def start(self) -> None:
        self._thread.start()
        self.call(self._open())

    async def _open(self) -> None:
        await upgrade(self._url)
        self.store = Store(create_engine(self._url))
        settings = Settings()
        app = build_api(
            settings,
            self.store,
            _NoBroker(),
            DirectoryHistory(load_directory(settings.directory_file)),
            FixedClock(NOW),
            UnitKeyStore(),
            options=OpsSettings(dashboard_poll_s=0.5),
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._stop = asyncio.Event()
        self._serving = asyncio.ensure_future(serve(app, self._stop, sock=sock))

    def close(self) -> None:
        if self._thread.is_alive():
            self.call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    async def _close(self) -> None:
        if self._stop is not None and self._serving is not None:
            self._stop.set()
            await self._serving
        if self.store is not None:
            await self.store.engine.dispose()

    def add(self, unit: str, kind: str, *local_arrivals: str) -> list[uuid.UUID]:
        """Store one admission-notice delivery to ``unit`` per local arrival time."""
        rows = [_delivery(unit, kind, arrival) for arrival in local_arrivals]
        assert self.store is not None
        assert self.call(self.store.add_deliveries(rows)) == len(rows)
        return [row.delivery_id for row in rows]

    def receipt(self, unit: str, delivery_id: uuid.UUID) -> None:
        """Record a receipt directly in the store (as the tracker would)."""
        assert self.store is not None
        receipt = Receipt(
            receipt_id=uuid.uuid4(),
            delivery_id=delivery_id,
            unit=unit,
            receipted_at=NOW,
            receipted_by=STAFF,
            channel=ReceiptChannel.KAFKA,
        )
        self.call(self.store.record_receipt(receipt))


def _delivery(unit: str, kind: str, local_arrival: str) -> NewDelivery:
    envelope = make_envelope(
        MessageType.ADMISSION_NOTICE, episode_id=f"sunderby:{uuid.uuid4().hex}"
    )
    routed_at = datetime.fromisoformat(local_arrival).replace(tzinfo=STOCKHOLM)
    return NewDelivery(
        delivery_id=delivery_id_for(envelope.message_id, unit),
        message_id=envelope.message_id,
        message_type=envelope.message_type.value,
        episode_id=envelope.episode_id,
        recipient=unit,
        recipient_kind=kind,
        role="recipient",
        routed_at=routed_at,
        due_at=routed_at + timedelta(hours=2),
        directory_version=1,
        envelope_json=envelope.model_dump_json(),
    )


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[LiveOps]:
    """A running ops app with Christmas-week backlog in two units and one open alert."""
    live = LiveOps(tmp_path)
    try:
        live.start()
        live.add(
            LULEA_BIS,
            "assessment_unit",
            "2026-12-24T10:00:00",  # julafton: a de-facto holiday (Thursday)
            "2026-12-25T09:00:00",  # juldagen: a public holiday (Friday)
            "2026-12-28T08:00:00",  # Monday: a weekday
        )
        live.add(HERTSO, "health_centre", "2026-12-28T09:30:00")
        alert = OpsAlert(
            alert_id=uuid.uuid4(),
            kind="dead_letter.unroutable",
            severity=AlertSeverity.CRITICAL,
            summary=f"router: a message was refused (unroutable) for {PATIENT}",
            raised_at=NOW - timedelta(minutes=5),
        )
        assert live.store is not None
        live.call(live.store.raise_alert(alert))
        yield live
    finally:
        live.close()


@contextmanager
def screenshot_on_failure(page: Page, name: str) -> Iterator[None]:
    """Keep a full-page screenshot in test-artifacts/ when the block fails."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def _row(page: Page, unit: str, column: str) -> Any:
    return page.locator(f'tr[data-unit="{unit}"] .{column}')


def test_counts_are_shown_per_unit_in_swedish(ops: LiveOps, page: Page) -> None:
    """The page shows each unit's unreceipted count, weekday/holiday split and oldest age."""
    page.goto(ops.base_url + "/")
    with screenshot_on_failure(page, "dashboard-counts"):
        expect(page.locator("h1")).to_have_text("Okvitterade meddelanden")
        expect(page.locator("#total-unreceipted")).to_have_text("4")
        expect(page.locator("#units-with-backlog")).to_have_text("2")
        # julafton 10:00 to Monday 12:00 is 4 days and 2 hours.
        expect(page.locator("#oldest-age")).to_have_text("4 dygn 2 tim")
        expect(page.locator("#weekend-share")).to_have_text("50 %")  # 2 of 4
        expect(_row(page, LULEA_BIS, "name")).to_have_text("Biståndsenheten Luleå kommun")
        expect(_row(page, LULEA_BIS, "count")).to_have_text("3")
        expect(_row(page, LULEA_BIS, "weekday")).to_have_text("1")
        expect(_row(page, LULEA_BIS, "weekend")).to_have_text("2")
        expect(_row(page, LULEA_BIS, "oldest")).to_have_text("4 dygn 2 tim")
        expect(_row(page, HERTSO, "count")).to_have_text("1")
        expect(_row(page, HERTSO, "oldest")).to_have_text("2 tim 30 min")
        expect(_row(page, LULEA_HSV, "count")).to_have_text("0")
        expect(page.locator("#open-alerts-count")).to_have_text("1")
        expect(page.locator("#alerts .alert .severity")).to_have_text("kritiskt")
        # The largest backlog is listed first.
        expect(page.locator("#backlog tbody tr").first).to_have_attribute("data-unit", LULEA_BIS)


def test_counts_update_live_without_reload(ops: LiveOps, page: Page) -> None:
    """New deliveries and receipts in the store show on the open page within a few polls."""
    page.goto(ops.base_url + "/")
    with screenshot_on_failure(page, "dashboard-live"):
        expect(page.locator("#total-unreceipted")).to_have_text("4")
        ops.add(LULEA_HSV, "home_health_care", "2026-12-28T10:00:00", "2026-12-28T11:00:00")
        expect(_row(page, LULEA_HSV, "count")).to_have_text("2")
        expect(_row(page, LULEA_HSV, "oldest")).to_have_text("2 tim")
        expect(page.locator("#total-unreceipted")).to_have_text("6")
        expect(page.locator("#units-with-backlog")).to_have_text("3")
        expect(page.locator("#weekend-share")).to_have_text("33 %")  # 2 of 6
        (hertso,) = ops.add(HERTSO, "health_centre", "2026-12-28T11:30:00")
        expect(_row(page, HERTSO, "count")).to_have_text("2")
        ops.receipt(HERTSO, hertso)
        expect(_row(page, HERTSO, "count")).to_have_text("1")
        expect(page.locator("#total-unreceipted")).to_have_text("6")


def test_english_on_request(ops: LiveOps, page: Page) -> None:
    """``?lang=en`` gives the English page, with the same figures."""
    page.goto(ops.base_url + "/?lang=en")
    with screenshot_on_failure(page, "dashboard-english"):
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator("h1")).to_have_text("Unreceipted messages")
        expect(_row(page, LULEA_BIS, "oldest")).to_have_text("4 days 2 h")
        expect(page.locator("#alerts .alert .severity")).to_have_text("critical")
        expect(_row(page, LULEA_BIS, "kind")).to_have_text("Assessment unit")


def test_page_carries_no_personnummer(ops: LiveOps, page: Page) -> None:
    """Neither the rendered text nor the HTML holds a personnummer, before or after polling."""
    page.goto(ops.base_url + "/")
    with screenshot_on_failure(page, "dashboard-no-patient-data"):
        expect(page.locator("#total-unreceipted")).to_have_text("4")
        first = (page.locator("body").inner_text(), page.content())
        ops.add(LULEA_HSV, "home_health_care", "2026-12-28T10:00:00")
        expect(page.locator("#total-unreceipted")).to_have_text("5")
        second = (page.locator("body").inner_text(), page.content())
        for text in (*first, *second):
            assert not contains_identity_number(text)
            assert "19121212" not in text
        # The alert's summary did name one: it is shown masked.
        expect(page.locator("#alerts .summary")).to_contain_text("router: a message was refused")


def test_unit_filter_hides_empty_units(ops: LiveOps, page: Page) -> None:
    """Ticking "hide units with nothing unreceipted" leaves only the units with a backlog."""
    page.goto(ops.base_url + "/")
    with screenshot_on_failure(page, "dashboard-filter"):
        expect(_row(page, LULEA_HSV, "count")).to_be_visible()
        page.get_by_label("Dölj enheter utan okvitterade").check()
        expect(_row(page, LULEA_HSV, "count")).to_be_hidden()
        expect(page.locator("#backlog tbody tr:visible")).to_have_count(2)
