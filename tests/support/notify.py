"""Helpers for the notifier's tests: escalation factories, the SMTP sink as a process, a webhook
receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from deploy.kafka.launcher import free_port
from hub.calendar import NORRBOTTEN_READING_ROUNDS, due_at
from hub.directory import Unit
from hub.notify.smtp_sink import read_messages
from tests.support.envelopes import make_envelope
from topics.catalogue import MessageType
from topics.identifiers import luhn_check_digit
from topics.ids import delivery_id_for, escalation_id_for
from topics.messages import Envelope, Escalation, EscalationTarget

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Level → the target the default ladder sends it to.
DEFAULT_TARGETS = {
    1: EscalationTarget.UNIT_MAILBOX,
    2: EscalationTarget.ON_CALL,
    3: EscalationTarget.MANAGER,
}

#: Synthetic patient names: none may ever appear in a notification.
PATIENT_NAMES = ("Karin Nilsson", "Åke Lindqvist", "Aino Keskitalo", "Nils-Erik Pavval")


def make_escalation(**overrides: Any) -> Escalation:
    """A valid level-2 digest for a Luleå unit; any field can be overridden."""
    now = datetime(2026, 12, 26, 12, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "escalation_id": uuid.UUID("22222222-2222-4222-8222-222222222222"),
        "unit": "SE2120000000-SYN2580BIS",
        "unit_name": "Biståndsenheten Luleå",
        "level": 2,
        "target": EscalationTarget.ON_CALL,
        "recipients": ("jour.lulea@example.org",),
        "delivery_ids": (uuid.UUID("11111111-1111-4111-8111-111111111111"),),
        "count": 3,
        "oldest_arrived_at": now - timedelta(days=1, hours=3, minutes=20),
        "oldest_due_at": now - timedelta(days=1, hours=1),
        "scanned_at": now,
        "link": "https://hub.example.org/units/SE2120000000-SYN2580BIS/inbox",
    }
    fields.update(overrides)
    return Escalation.model_validate(fields)


def synthetic_personnummer(index: int) -> str:
    """A Luhn-valid synthetic personnummer (YYYYMMDD-NNNC), different for each ``index``."""
    year = 1930 + index % 70
    month = 1 + index % 12
    day = 1 + index % 28
    serial = f"{100 + index % 899:03d}"
    nine = f"{year % 100:02d}{month:02d}{day:02d}{serial}"
    return f"{year:04d}{month:02d}{day:02d}-{serial}{luhn_check_digit(nine)}"


@dataclass(frozen=True, slots=True)
class RealisticDigest:
    """An escalation built the way the scanner builds one, and the patient data behind it."""

    escalation: Escalation
    envelopes: tuple[Envelope, ...]
    patient_numbers: tuple[str, ...]
    free_texts: tuple[str, ...] = field(default=())


def realistic_digest(
    unit: Unit,
    *,
    level: int,
    target: EscalationTarget,
    scanned_at: datetime,
    deliveries: int = 3,
    recipients: Sequence[str] = ("jour@example.org", "https://sms.example.org/hooks/hub"),
) -> RealisticDigest:
    """Planning documents and free-text messages about synthetic patients, delivered to ``unit``
    and overdue at ``scanned_at``, summarised into the digest the scanner would publish."""
    envelopes: list[Envelope] = []
    numbers: list[str] = []
    texts: list[str] = []
    for index in range(deliveries):
        patient = synthetic_personnummer(index + zlib.crc32(unit.hsa_id.encode()) % 1000)
        name = PATIENT_NAMES[index % len(PATIENT_NAMES)]
        sent_at = scanned_at - timedelta(days=2, hours=index * 5, minutes=17 * index)
        text = f"{name} ({patient}) behöver hjälp med förflyttning, diabetes typ 2, KOL."
        envelope = make_envelope(
            MessageType.PLANNING_DOCUMENT,
            patient=patient,
            sent_at=sent_at.isoformat(),
            occurred_at=sent_at.isoformat(),
            payload={"summary": text},
        )
        envelopes.append(envelope)
        numbers.append(patient)
        texts.append(text)
    delivery_ids = tuple(delivery_id_for(e.message_id, unit.hsa_id) for e in envelopes)
    oldest = min(e.sent_at for e in envelopes)
    escalation = Escalation(
        escalation_id=escalation_id_for(unit.hsa_id, level, delivery_ids),
        unit=unit.hsa_id,
        unit_name=unit.name,
        level=level,
        target=target,
        recipients=tuple(recipients),
        delivery_ids=delivery_ids,
        count=len(delivery_ids),
        oldest_arrived_at=oldest,
        oldest_due_at=due_at(oldest, NORRBOTTEN_READING_ROUNDS),
        scanned_at=scanned_at,
        link=f"https://hub.example.org/units/{unit.hsa_id}/inbox?level={level}&t=ab12cd34ef",
    )
    return RealisticDigest(escalation, tuple(envelopes), tuple(numbers), tuple(texts))


# --- the SMTP sink as a real process -----------------------------------------------------------


async def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@dataclass(slots=True)
class SmtpSink:
    """``python -m hub.notify.smtp_sink`` run as a child process on a fixed port."""

    port: int
    outdir: Path
    log_file: Path
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (the caller waits for :func:`port_open`)."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hub.notify.smtp_sink",
                    "--port",
                    str(self.port),
                    "--outdir",
                    str(self.outdir),
                    "--print",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO_ROOT,
            )

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, in arrival order."""
        return read_messages(self.outdir) if self.outdir.exists() else []

    async def messages_now(self) -> list[EmailMessage]:
        """:meth:`messages` off the event loop (for ``eventually``)."""
        return await asyncio.to_thread(self.messages)

    def output(self) -> str:
        """What the process printed."""
        return self.log_file.read_text(encoding="utf-8") if self.log_file.exists() else ""


@contextmanager
def smtp_sink_process(tmp_path: Path, *args: str, port: int | None = None) -> Iterator[SmtpSink]:
    """A sink process, started, and stopped at the end (the caller waits until it listens)."""
    sink = SmtpSink(port or free_port(), tmp_path / "mail", tmp_path / "smtp_sink.log", tuple(args))
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# --- a webhook receiver ---------------------------------------------------------------------------


@dataclass(slots=True)
class WebhookReceiver:
    """A minimal HTTP/1.1 server on 127.0.0.1 (raw asyncio) recording JSON POSTs.

    ``statuses`` are answered in order, then 200 for every further request.
    """

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def url(self, path: str = "/hooks/sms") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1").strip()
            headers: dict[str, str] = {}
            while True:
                line = (await reader.readline()).decode("latin-1")
                if line in {"\r\n", "\n", ""}:
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            path = request_line.split(" ")[1] if " " in request_line else ""
            self.requests.append((path, headers, json.loads(body) if body else None))
            status = self.statuses.pop(0) if self.statuses else 200
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
