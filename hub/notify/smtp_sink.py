"""A local SMTP sink (aiosmtpd): every message it accepts becomes one ``.eml`` file in a folder.

It is the SMTP server of the notifier's integration tests and of ``make demo``; never a relay,
it delivers nothing onwards. Run it as a process::

    python -m hub.notify.smtp_sink --port 8025 --outdir .run/mail --print

``--print`` writes a short summary of each message (envelope, subject, text part) to standard
output as it arrives, which is what the demo shows. ``--security starttls|tls`` with
``--tls-cert/--tls-key`` and ``--auth user:password`` make it a stand-in for a real relay, so
the notifier's TLS and AUTH options are tested against a real server. ``--reject-first N``
answers the first N messages with ``451`` (a transient refusal), to test retries.

Files are named by arrival time (UTC) and written to a temporary name first, then renamed, so a
reader polling the folder never sees half a message. The envelope sender and recipients are
kept as ``X-Sink-Envelope-From`` / ``X-Sink-Envelope-To`` headers at the top of each file.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
import ssl
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, TextIO

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

__all__ = ["MailFolder", "SinkConfig", "main", "read_messages", "serve"]

Security = Literal["plain", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """How the sink listens and where it writes."""

    outdir: Path
    host: str = "127.0.0.1"
    port: int = 8025
    echo: bool = False
    reject_first: int = 0
    security: Security = "plain"
    cert_file: Path | None = None
    key_file: Path | None = None
    auth: tuple[str, str] | None = None  # (user, password) required to send


def read_messages(outdir: Path) -> list[EmailMessage]:
    """Every message in ``outdir``, in arrival order (for tests and the demo's summary)."""
    messages: list[EmailMessage] = []
    for path in sorted(outdir.glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if isinstance(parsed, EmailMessage):
            messages.append(parsed)
    return messages


def _text_part(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    if isinstance(body, EmailMessage):
        content = body.get_content()
        return content if isinstance(content, str) else ""
    return ""


class MailFolder:
    """The aiosmtpd handler: accept, write one file per message, optionally print a summary."""

    def __init__(self, outdir: Path, *, echo: TextIO | None = None, reject_first: int = 0) -> None:
        self.outdir = outdir
        self.echo = echo
        self._to_reject = reject_first
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message; ``451`` for the first ``reject_first`` messages."""
        if self._to_reject > 0:
            self._to_reject -= 1
            return "451 4.3.0 Temporarily refused by the test sink"
        raw: bytes = envelope.original_content or b""
        head = (
            f"X-Sink-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Sink-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        arrived = datetime.now(UTC)
        name = f"{arrived.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.eml"
        await asyncio.to_thread(self._write, name, head + raw)
        self.received += 1
        if self.echo is not None:
            self._print(arrived, head + raw)
        return "250 2.0.0 Message accepted for delivery"

    def _write(self, name: str, data: bytes) -> None:
        temporary = self.outdir / f"{name}.tmp"
        temporary.write_bytes(data)
        temporary.replace(self.outdir / name)

    def _print(self, arrived: datetime, data: bytes) -> None:
        assert self.echo is not None  # noqa: S101 - only called with an echo stream
        message = email.message_from_bytes(data, policy=email.policy.default)
        if not isinstance(message, EmailMessage):
            return
        lines = [
            f"── e-mail {self.received} · {arrived.isoformat(timespec='seconds')} ──",
            f"From:    {message['From']}",
            f"To:      {message['To']}",
            f"Subject: {message['Subject']}",
            "",
            _text_part(message).rstrip(),
            "",
        ]
        self.echo.write("\n".join(lines) + "\n")
        self.echo.flush()


def _tls_context(config: SinkConfig) -> ssl.SSLContext | None:
    if config.security == "plain":
        return None
    if config.cert_file is None or config.key_file is None:
        msg = "--tls-cert and --tls-key are needed for --security starttls or tls"
        raise ValueError(msg)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert_file, config.key_file)
    return context


def _authenticator(user: str, password: str) -> Any:
    def authenticate(
        server: Any,
        session: Any,
        envelope: Any,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


async def serve(config: SinkConfig, *, echo: TextIO | None = None) -> asyncio.Server:
    """Start listening (the caller closes the returned server)."""
    config.outdir.mkdir(parents=True, exist_ok=True)
    if config.auth is not None and config.security == "plain":
        msg = "--auth needs --security starttls or tls (credentials never travel in clear)"
        raise ValueError(msg)
    handler = MailFolder(config.outdir, echo=echo, reject_first=config.reject_first)
    context = _tls_context(config)
    options: dict[str, Any] = {"hostname": "smtp-sink.localhost", "ident": "hub smtp sink"}
    if config.security == "starttls":
        options.update(tls_context=context, require_starttls=True)
    if config.auth is not None:
        options.update(auth_required=True, authenticator=_authenticator(*config.auth))
        if config.security == "tls":
            # aiosmtpd only recognises TLS it negotiated itself (STARTTLS); under implicit TLS
            # the whole connection is encrypted, so AUTH may be offered without it.
            options.update(auth_require_tls=False)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, **options),
        host=config.host,
        port=config.port,
        ssl=context if config.security == "tls" else None,
    )


async def _run(config: SinkConfig) -> None:
    echo = sys.stdout if config.echo else None
    server = await serve(config, echo=echo)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(
        f"smtp_sink listening on {config.host}:{config.port} ({config.security}), "
        f"writing to {config.outdir}\n"
    )
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def _parse(argv: Sequence[str] | None) -> SinkConfig:
    parser = argparse.ArgumentParser(
        prog="python -m hub.notify.smtp_sink",
        description="A local SMTP sink: every accepted message becomes one .eml file in OUTDIR.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--outdir", type=Path, default=Path(".run") / "mail")
    parser.add_argument("--print", dest="echo", action="store_true", help="print each message")
    parser.add_argument("--reject-first", type=int, default=0, metavar="N")
    parser.add_argument("--security", choices=("plain", "starttls", "tls"), default="plain")
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH with these")
    args = parser.parse_args(argv)
    auth: tuple[str, str] | None = None
    if args.auth:
        user, _, password = str(args.auth).partition(":")
        auth = (user, password)
        if args.security == "plain":
            parser.error("--auth needs --security starttls or tls")
    if args.security != "plain" and (args.tls_cert is None or args.tls_key is None):
        parser.error("--security starttls or tls needs --tls-cert and --tls-key")
    return SinkConfig(
        outdir=args.outdir,
        host=args.host,
        port=args.port,
        echo=args.echo,
        reject_first=args.reject_first,
        security=args.security,
        cert_file=args.tls_cert,
        key_file=args.tls_key,
        auth=auth,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink until SIGTERM or Ctrl-C."""
    config = _parse(argv)
    asyncio.run(_run(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
