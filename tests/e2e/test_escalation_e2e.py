"""The escalation ladder end to end and under faults (issue 7, "Tests").

Everything is real except the clock: the Kafka broker of the test session, the SQL store (SQLite
file and PostgreSQL, through ``store_url``), the hub's router, tracker and notifier consumers, and
an SMTP server process (``python -m hub.notify.smtp_sink``) that writes every accepted message to
an ``.eml`` file. The hub runs on a ``FixedClock`` moved by the test, and the escalation scan is
called at the exact instants of the ladder (DOMAIN.md "Default policies" §1-2): level 1 at the end
of the reading round (due), level 2 sixty minutes later, level 3 twenty-four hours later.

"SMTP down for a while, then back" is deliberately not repeated here: on the real broker,
``tests/integration/test_notifier_kafka.py::test_smtp_down_then_back_delivers_once`` proves it
through the consume guard (one e-mail, every failed attempt then the sent one), and
``tests/integration/test_notifier_smtp.py`` covers the in-process retries and the
``NotificationsPending`` hand-over to the guard against a real SMTP server process.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import IO

import pytest

from hub.app import Hub, Part
from hub.calendar import STOCKHOLM
from hub.clock import FixedClock
from hub.directory import Unit
from hub.notify.service import notifications_for
from hub.publishing import Outgoing
from hub.settings import KafkaSettings, Settings, SmtpSettings
from hub.store.repository import Totals
from tests.support.envelopes import make_envelope
from tests.support.kafka import group_lag, read_topic
from tests.support.notify import (
    REPO_ROOT,
    SmtpSink,
    port_open,
    smtp_sink_process,
    synthetic_personnummer,
)
from tests.support.wait import eventually
from topics.catalogue import MessageType, UnitKind
from topics.codec import decode
from topics.identifiers import contains_identity_number
from topics.ids import delivery_id_for
from topics.messages import (
    Delivery,
    DeliveryRole,
    Envelope,
    Escalation,
    Receipt,
    ReceiptChannel,
)
from topics.topics import TopicName

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_HSV = "SE2120000000-SYN2580HSV"
LULEA_BIS = "SE2120000000-SYN2580BIS"
STAFF = "SE2321000230-SYNSTAFF01"
#: ``SmtpSettings.sender``'s default: the Message-ID is ``<notification id@example.se>``.
SENDER_DOMAIN = "example.se"
#: The classic test personnummer the example admission carries (Luhn-valid).
TOLVAN = "19121212-1212"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def local(text: str) -> datetime:
    """A Europe/Stockholm wall time as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


# --- e-mails as the sink stored them ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mail:
    """One accepted message: the ``.eml`` file's text and the parsed message."""

    file: str
    raw: str
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def notification_id(self) -> str:
        return str(self.message["X-Hub-Notification-Id"])

    def text(self) -> str:
        """The plain-text part, decoded."""
        body = self.message.get_body(preferencelist=("plain",))
        assert isinstance(body, EmailMessage), self.file
        content = body.get_content()
        assert isinstance(content, str), self.file
        return content

    def decoded(self) -> str:
        """Every header (decoded) and every text part (decoded from its transfer encoding)."""
        parts = [f"{name}: {value}" for name, value in self.message.items()]
        for part in self.message.walk():
            if part.get_content_maintype() == "text" and isinstance(part, EmailMessage):
                content = part.get_content()
                parts.append(content if isinstance(content, str) else "")
        return "\n".join(parts)


def read_mail(outdir: Path) -> list[Mail]:
    """Every message in the sink's folder, in arrival order (files are named by arrival)."""
    if not outdir.exists():
        return []
    mails: list[Mail] = []
    for path in sorted(outdir.glob("*.eml")):
        data = path.read_bytes()
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage), path.name
        mails.append(Mail(path.name, data.decode("utf-8", "replace"), parsed))
    return mails


def patient_data_in(mail: Mail, patients: Iterable[str]) -> list[str]:
    """What in ``mail`` looks like patient identity: any Luhn-valid personnummer (in the raw file
    and in every decoded part, since bodies travel base64 or quoted-printable) and any form of
    the given patients' numbers. UUIDs (Message-ID, X-Hub-*) are blanked first: a UUID can hold
    a Luhn-valid ``YYYYMMDD-NNNN`` by chance, and it is an id, not patient data."""
    found: list[str] = []
    for where, text in (("raw", mail.raw), ("decoded", mail.decoded())):
        ids_blanked = _UUID.sub("<uuid>", text)
        if contains_identity_number(ids_blanked):
            found.append(f"{mail.file} ({where}): a Luhn-valid identity number")
        for number in patients:
            forms = {number, number.replace("-", ""), number[2:], number[2:].replace("-", "")}
            if any(form in ids_blanked for form in forms):
                found.append(f"{mail.file} ({where}): a patient's personnummer")
    return found


@asynccontextmanager
async def smtp_sink(tmp_path: Path) -> AsyncIterator[SmtpSink]:
    """The SMTP sink process, listening; stopped at the end."""
    with smtp_sink_process(tmp_path) as sink:

        async def probe() -> tuple[bool, int | None]:
            assert sink.process is not None
            return await port_open(sink.port), sink.process.poll()

        await eventually(
            probe, lambda seen: seen[0] or seen[1] is not None, timeout_s=30, what="sink up"
        )
        assert sink.process is not None
        assert sink.process.poll() is None, sink.output()
        yield sink


async def mail_of(sink: SmtpSink) -> list[Mail]:
    """:func:`read_mail` of the sink's folder, off the event loop (for ``eventually``)."""
    return await asyncio.to_thread(read_mail, sink.outdir)


# --- the hub ------------------------------------------------------------------------------------


def hub_settings(bootstrap: str, topic_prefix: str, store_url: str, smtp_port: int) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix),
        database_url=store_url,
        smtp=SmtpSettings(port=smtp_port),
    )


@asynccontextmanager
async def running(hub: Hub) -> AsyncIterator[None]:
    """``hub.run`` in a task, until the block ends (the hub's engine is disposed after it)."""
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    try:
        await eventually(
            lambda: asyncio.sleep(0, hub.broker.running or runner.done()),
            bool,
            timeout_s=60,
            what="broker up",
        )
        assert not runner.done(), runner
        yield
    finally:
        stop.set()
        await runner


def admission(episode: str, patient: str, sent_at: datetime) -> Envelope:
    """An admission notice (*inskrivningsmeddelande*) of a Luleå patient listed at Hertsö."""
    admitted = sent_at - timedelta(hours=1)
    return make_envelope(
        MessageType.ADMISSION_NOTICE,
        episode_id=episode,
        patient=patient,
        occurred_at=sent_at.astimezone(UTC).isoformat(),
        sent_at=sent_at.astimezone(UTC).isoformat(),
        payload={
            "admitted_at": admitted.astimezone(UTC).isoformat(),
            "expected_discharge_date": (sent_at.date() + timedelta(days=7)).isoformat(),
            "listed_health_centre": HERTSO,
            "home_municipality": "2580",
        },
    )


def sent_count_is(expected: int) -> Callable[[Totals], bool]:
    """A predicate on the store's totals: exactly ``expected`` notifications sent."""
    return lambda totals: totals.notifications_sent == expected


def new_episode() -> str:
    return f"sunderby:{uuid.uuid4().hex[:8]}"


def receipt_of(message_id: uuid.UUID, unit: str, at: datetime) -> Outgoing:
    """A receipt (*kvittens*) by ``unit`` of its delivery of ``message_id``, keyed by unit."""
    receipt = Receipt(
        receipt_id=uuid.uuid4(),
        delivery_id=delivery_id_for(message_id, unit),
        unit=unit,
        receipted_at=at.astimezone(UTC),
        receipted_by=STAFF,
        channel=ReceiptChannel.KAFKA,
    )
    return Outgoing(TopicName.RECEIPTS, receipt, unit)


# --- 1. from an admission to the on-call e-mail ----------------------------------------------


async def test_admission_to_the_on_call_email(
    bootstrap: str, topic_prefix: str, store_url: str, tmp_path: Path
) -> None:
    """Friday 16:00 admission, nobody receipts: three Swedish reminders to the units' mailboxes at
    Saturday 11:00, then three e-mails to the on-call persons at 12:00, nothing else, no
    personnummer in any of them."""
    friday = local("2027-01-22T16:00:00")  # a Friday; the weekend round is 10:00-11:00
    clock = FixedClock(friday)
    async with smtp_sink(tmp_path) as sink:
        settings = hub_settings(bootstrap, topic_prefix, store_url, sink.port)
        hub = await Hub.open(settings, clock, parts={Part.ROUTER, Part.TRACKER, Part.NOTIFIER})
        episode = new_episode()
        envelope = admission(episode, TOLVAN, friday)
        async with running(hub):
            await hub.outbox.send(TopicName.CARE_EPISODE_EVENTS, envelope, episode)
            await eventually(hub.store.count_open, lambda n: n == 3, what="3 open deliveries")

            clock.set(local("2027-01-23T10:59:59"))
            early = await hub.scanner.scan(clock.now())
            clock.set(local("2027-01-23T11:00:00"))
            due = await hub.scanner.scan(clock.now())
            reminders = await eventually(
                lambda: mail_of(sink), lambda m: len(m) >= 3, timeout_s=60, what="3 reminders"
            )
            clock.set(local("2027-01-23T12:00:00"))
            on_call = await hub.scanner.scan(clock.now())
            await eventually(
                hub.store.totals,
                lambda t: t.notifications_sent == 6,
                timeout_s=60,
                what="6 notifications sent",
            )
            clock.set(local("2027-01-23T12:30:00"))
            again = await hub.scanner.scan(clock.now())
        mails = await mail_of(sink)  # the notifier has stopped: nothing more can arrive

    assert (early.digests, due.digests, on_call.digests, again.digests) == (0, 3, 3, 0)
    assert [(m.to, m.subject) for m in reminders] == [(m.to, m.subject) for m in mails[:3]]
    assert sorted((m.to, m.subject) for m in mails[:3]) == [
        (
            "bistand@lulea.kommun.example",
            "Påminnelse: okvitterade meddelanden hos Biståndsenheten Luleå kommun (1 st)",
        ),
        (
            "hc.hertso@region-norrbotten.example",
            "Påminnelse: okvitterade meddelanden hos Hertsö hälsocentral (1 st)",
        ),
        (
            "hemsjukvard@lulea.kommun.example",
            "Påminnelse: okvitterade meddelanden hos Hemsjukvården Luleå kommun (1 st)",
        ),
    ]
    # Who is on call on Saturday 2027-01-23 12:00 (deploy/norrbotten/oncall.yaml), by hand:
    # * jour-2580 (Luleå's home health care and assessment unit): the layer "kvällar och helger"
    #   covers all of Saturday and rotates Maria Nyström, Lars Nordin, Karin Lind weekly from
    #   Fri 2025-12-26 16:00. The shift from Fri 2027-01-22 16:00 is week 392 / 7 = 56, and
    #   56 % 3 = 2: Karin Lind. No override that day.
    # * jour-primarvard (Hertsö hälsocentral): the layer "helger" covers Saturday and rotates
    #   Björn Sundqvist, Anna Strömberg, Erik Nyström, Maria Nordin from the same Friday:
    #   56 % 4 = 0: Björn Sundqvist.
    assert sorted((m.to, m.subject) for m in mails[3:]) == [
        (
            "bjorn.sundqvist@example.se",
            "Jour/beredskap: okvitterade meddelanden hos Hertsö hälsocentral (1 st)",
        ),
        (
            "karin.lind@example.se",
            "Jour/beredskap: okvitterade meddelanden hos Biståndsenheten Luleå kommun (1 st)",
        ),
        (
            "karin.lind@example.se",
            "Jour/beredskap: okvitterade meddelanden hos Hemsjukvården Luleå kommun (1 st)",
        ),
    ]
    for mail in mails[3:]:
        text = mail.text()
        assert "Eskaleringsnivå 2 av 3: jour/beredskap." in text, text
        # Arrived Friday 16:00, rendered at the scan instant Saturday 12:00.
        assert (
            "Meddelandet har väntat 20 tim; det skulle ha kvitterats senast "
            "lördag 2027-01-23 kl. 11:00 (svensk tid)."
        ) in text, text
    assert {m.message["Message-ID"] for m in mails} == {
        f"<{m.notification_id}@{SENDER_DOMAIN}>" for m in mails
    }
    assert len({m.notification_id for m in mails}) == 6
    assert [finding for m in mails for finding in patient_data_in(m, [TOLVAN])] == []


# --- 2. Christmas 2026: 250 unreceipted in one assessment unit --------------------------------


async def test_christmas_backlog_of_250_is_one_digest_per_level(
    bootstrap: str, topic_prefix: str, store_url: str, tmp_path: Path
) -> None:
    """Julafton 2026, 250 admissions of Luleå patients: Hertsö and home health care receipt
    theirs, the assessment unit none. One e-mail per level (mailbox, on-call, manager), each
    counting 250, never one per delivery, none naming a patient."""
    arrival = local("2026-12-24T09:30:00")  # julafton: one round, 10:00-11:00, due 11:00
    clock = FixedClock(arrival)
    patients = [synthetic_personnummer(index) for index in range(250)]
    admissions = [(new_episode(), patient) for patient in patients]
    envelopes = [admission(episode, patient, arrival) for episode, patient in admissions]
    async with smtp_sink(tmp_path) as sink:
        settings = hub_settings(bootstrap, topic_prefix, store_url, sink.port)
        hub = await Hub.open(settings, clock, parts={Part.ROUTER, Part.TRACKER, Part.NOTIFIER})
        async with running(hub):
            await hub.outbox.send_many(
                Outgoing(TopicName.CARE_EPISODE_EVENTS, envelope, episode)
                for (episode, _), envelope in zip(admissions, envelopes, strict=True)
            )
            await eventually(
                hub.store.count_open, lambda n: n == 750, timeout_s=120, what="750 deliveries"
            )
            receipted_at = arrival + timedelta(minutes=20)
            await hub.outbox.send_many(
                receipt_of(envelope.message_id, unit, receipted_at)
                for envelope in envelopes
                for unit in (HERTSO, LULEA_HSV)
            )
            await eventually(
                hub.store.count_open, lambda n: n == 250, timeout_s=120, what="250 still open"
            )

            scans = []
            ladder = ("2026-12-24T11:00:00", "2026-12-24T12:00:00", "2026-12-25T11:00:00")
            for sent, instant in enumerate(ladder, start=1):
                clock.set(local(instant))
                scans.append(await hub.scanner.scan(clock.now()))
                await eventually(
                    hub.store.totals,
                    sent_count_is(sent),
                    timeout_s=60,
                    what=f"{sent} notifications sent",
                )
            clock.set(local("2026-12-26T11:00:00"))
            after_top = await hub.scanner.scan(clock.now())
            totals = await hub.store.totals()
            levels = Counter(
                row.highest_level_sent
                for row in await hub.store.open_deliveries_due_before(clock.now(), limit=1000)
            )
        mails = await mail_of(sink)

    assert [(s.open_due, s.digests) for s in scans] == [(250, 1)] * 3
    assert after_top.digests == 0
    assert (totals.deliveries, totals.receipted, totals.escalations_by_level) == (
        750,
        500,
        {1: 1, 2: 1, 3: 1},
    )
    assert levels == {3: 250}
    # Level 2 at julafton 12:00: jour-2580's override "Julafton" (2026-12-24 08:00 to
    # 2026-12-25 08:00) beats every layer: Johan Backman.
    assert [(m.to, m.subject) for m in mails] == [
        (
            "bistand@lulea.kommun.example",
            "Påminnelse: okvitterade meddelanden hos Biståndsenheten Luleå kommun (250 st)",
        ),
        (
            "johan.backman@example.se",
            "Jour/beredskap: okvitterade meddelanden hos Biståndsenheten Luleå kommun (250 st)",
        ),
        (
            "enhetschef.bistand@lulea.kommun.example",
            "Enhetschef: okvitterade meddelanden hos Biståndsenheten Luleå kommun (250 st)",
        ),
    ]
    for mail in mails:
        text = mail.text()
        assert (
            "Biståndsenheten Luleå kommun har 250 okvitterade meddelanden som har passerat "
            "sin kvittenstid."
        ) in text, text
        assert "det första skulle ha kvitterats senast torsdag 2026-12-24 kl. 11:00" in text
    assert [finding for m in mails for finding in patient_data_in(m, patients)] == []


# --- 3. tracker and notifier SIGKILLed mid-work --------------------------------------------------

#: The ladder's instants for a delivery arriving Friday 2027-01-22 16:00 (due Saturday 11:00).
LADDER = ("2027-01-23T11:00:00", "2027-01-23T12:00:00", "2027-01-24T11:00:00")
ESCALATED_PER_UNIT = 2
RECEIPTED_PER_UNIT = 20


def delivery_to(unit: Unit, routed_at: datetime, directory_version: int) -> Delivery:
    """A planning document routed to ``unit`` at ``routed_at``, as the router publishes it."""
    envelope = make_envelope(MessageType.PLANNING_DOCUMENT, episode_id=new_episode())
    return Delivery(
        delivery_id=delivery_id_for(envelope.message_id, unit.hsa_id),
        message=envelope,
        recipient=unit.hsa_id,
        recipient_kind=unit.kind,
        role=DeliveryRole.RECIPIENT,
        routed_at=routed_at.astimezone(UTC),
        directory_version=directory_version,
    )


def open_log(path: Path) -> IO[bytes]:
    """The worker's log file (both runs append to it), opened outside the event loop's path."""
    return path.open("ab")


async def start_worker(settings: Settings, log: IO[bytes]) -> asyncio.subprocess.Process:
    """``hub run --only tracker --only notifier`` as its own process, on the test's settings."""
    env = {
        **os.environ,
        "HUB_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "HUB_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_SMTP__PORT": str(settings.smtp.port),
        "HUB_LOG_FORMAT": "json",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub.cli",
        "run",
        "--only",
        "tracker",
        "--only",
        "notifier",
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )


async def stop_worker(worker: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within 30 s."""
    if worker.returncode is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(worker.wait(), 30)
    except TimeoutError:
        worker.kill()
        await asyncio.wait_for(worker.wait(), 10)


def pick_units(units: Sequence[Unit]) -> tuple[list[Unit], list[Unit]]:
    """30 units to escalate (every municipal unit and two health centres) and 20 other health
    centres whose deliveries are receipted."""
    active = [u for u in units if u.active]
    municipal = [
        u for u in active if u.kind in {UnitKind.HOME_HEALTH_CARE, UnitKind.ASSESSMENT_UNIT}
    ]
    centres = [u for u in active if u.kind is UnitKind.HEALTH_CENTRE]
    assert len(municipal) == 28, [u.hsa_id for u in municipal]  # 14 municipalities x 2
    assert len(centres) >= 22, [u.hsa_id for u in centres]
    return [*municipal, *centres[:2]], centres[2:22]


async def test_worker_sigkilled_mid_sending_sends_each_email_once_and_loses_nothing(
    bootstrap: str, topic_prefix: str, store_url: str, tmp_path: Path
) -> None:
    """The tracker+notifier process is SIGKILLed while it sends 90 digests, after it applied some
    of 400 receipts (the rest are published while it is dead), then restarted: every e-mail
    arrives, at most the one in flight twice and then with the identical Message-ID; every
    receipt and every escalation level is in the store. (A kill in the middle of a receipt batch
    is `tests/e2e/test_tracker_kill.py`.)

    Why "at most one, twice": ``hub/notify/service.py`` documents that exactly once is not
    possible over SMTP. A kill after the server accepted a message and before ``mark_sent``
    sends that notification again when the digest is redelivered, and the e-mail's Message-ID
    (``<notification id@sender domain>``) is what lets the receiving side drop it. The notifier
    consumer handles one digest at a time and each digest here has one recipient, so at most
    one notification can be in that window when the process dies. A sent-and-recorded
    notification is never sent again (the redelivered digest finds it ``sent``).
    """
    clock = FixedClock(local("2027-01-22T16:00:00"))
    friday = clock.now()
    after_last_scan = local("2027-01-24T11:30:00")  # due Monday 10:00: never due in this test
    async with smtp_sink(tmp_path) as sink:
        settings = hub_settings(bootstrap, topic_prefix, store_url, sink.port)
        hub = await Hub.open(settings, clock, parts=())  # store, topics, outbox and scanner
        version = hub.directory.current.version
        escalated, receipting = pick_units(hub.directory.current.units)
        to_escalate = [
            delivery_to(unit, friday, version)
            for unit in escalated
            for _ in range(ESCALATED_PER_UNIT)
        ]
        to_receipt = [
            delivery_to(unit, after_last_scan, version)
            for unit in receipting
            for _ in range(RECEIPTED_PER_UNIT)
        ]
        expected_mails = len(escalated) * len(LADDER)
        log = open_log(tmp_path / "worker.log")
        async with running(hub):
            worker = await start_worker(settings, log)
            try:
                await hub.outbox.send_many(
                    Outgoing(TopicName.DELIVERIES, d, d.recipient) for d in to_escalate + to_receipt
                )
                await eventually(
                    hub.store.count_open,
                    lambda n: n == len(to_escalate) + len(to_receipt),
                    timeout_s=120,
                    what="every delivery stored by the worker",
                )
                scans = [await hub.scanner.scan(local(instant)) for instant in LADDER]
                receipts = [
                    receipt_of(d.message.message_id, d.recipient, after_last_scan)
                    for d in to_receipt
                ]
                # Half now; the tracker applies a batch of receipts in one transaction, so the
                # other half is published while the worker is dead, for after its restart.
                half = len(receipts) // 2
                await hub.outbox.send_many(receipts[:half])

                async def progress() -> tuple[int, int]:
                    return len(await mail_of(sink)), (await hub.store.totals()).receipted

                # Both consumers are busy: some e-mails out, some receipts applied, more to come.
                await eventually(
                    progress,
                    lambda seen: seen[0] >= 20 and seen[1] >= 1,
                    timeout_s=120,
                    what="20 e-mails sent and a receipt applied before the kill",
                )
                worker.kill()  # SIGKILL: no shutdown, no offset commit, no flush
                await asyncio.wait_for(worker.wait(), 10)
                at_kill = await mail_of(sink)
                receipted_at_kill = (await hub.store.totals()).receipted
                await hub.outbox.send_many(receipts[half:])

                worker = await start_worker(settings, log)
                await eventually(
                    hub.store.totals,
                    lambda t: (
                        (t.notifications_sent, t.receipted) == (expected_mails, len(to_receipt))
                    ),
                    timeout_s=180,
                    what="every notification sent and every receipt applied after the restart",
                )
                # Only once the worker's groups have committed everything can no redelivered
                # digest add a duplicate later.
                for group, topic in (
                    ("hub-notifier", TopicName.ESCALATIONS),
                    ("hub-tracker-receipts", TopicName.RECEIPTS),
                ):
                    await eventually(
                        partial(group_lag, bootstrap, settings.group(group), settings.topic(topic)),
                        lambda behind: behind == {},
                        timeout_s=60,
                        interval_s=0.5,
                        what=f"{group} committed to the end of {topic}",
                    )
                totals = await hub.store.totals()
                still_open = await hub.store.open_deliveries_due_before(
                    local("2027-12-31T00:00:00"), limit=1000
                )
            finally:
                await stop_worker(worker)
                log.close()
        records = await read_topic(
            bootstrap, settings.topic(TopicName.ESCALATIONS), expected=expected_mails
        )
        mails = await mail_of(sink)

    worker_log = (tmp_path / "worker.log").read_text(encoding="utf-8", errors="replace")[-3000:]
    assert [s.digests for s in scans] == [len(escalated)] * len(LADDER)
    assert len(at_kill) < expected_mails, "the notifier finished before it could be killed"
    assert 0 < receipted_at_kill <= len(to_receipt) // 2, "receipts before the kill not applied"

    escalations = [decode(Escalation, r.value, dict(r.headers)) for r in records]
    expected = {
        str(n.notification_id): n.recipient for e in escalations for n in notifications_for(e)
    }
    assert len(expected) == expected_mails
    arrived = Counter(m.notification_id for m in mails)
    assert set(arrived) == set(expected), worker_log  # nothing lost, nothing unknown
    for mail in mails:
        assert (mail.to, mail.message["Message-ID"]) == (
            expected[mail.notification_id],
            f"<{mail.notification_id}@{SENDER_DOMAIN}>",
        )
    twice = {nid: n for nid, n in arrived.items() if n > 1}
    assert len(twice) <= 1, f"more than the one in-flight notification was resent: {twice}"
    assert set(twice.values()) <= {2}, twice
    assert (totals.deliveries, totals.receipted, totals.notifications_sent) == (
        len(to_escalate) + len(to_receipt),
        len(to_receipt),
        expected_mails,
    )
    assert totals.escalations_by_level == dict.fromkeys(range(1, 4), len(escalated))
    assert sorted((row.delivery_id, row.highest_level_sent) for row in still_open) == sorted(
        (d.delivery_id, 3) for d in to_escalate
    )
