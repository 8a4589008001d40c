"""Channel adapters: library errors mapped to hub errors; the e-mail and webhook requests built."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import aiosmtplib
import httpx
import pytest

from hub.notify.channels import (
    EmailChannel,
    WebhookChannel,
    http_status_error,
    message_id_for,
    smtp_error,
)
from hub.notify.errors import ChannelUnavailable, NotificationRefused
from hub.notify.service import Content, Notification
from hub.notify.templates import RenderedMessage
from hub.settings import SmtpSettings

NOW = datetime(2026, 12, 26, 12, 0, tzinfo=UTC)
ADDRESS = "jour.lulea@example.org"
NOTIFICATION = Notification(
    uuid.UUID("e11950db-f0ef-5fbb-80e3-b44e4a21cd29"),
    uuid.UUID("22222222-2222-4222-8222-222222222222"),
    "email",
    ADDRESS,
)
CONTENT = Content(
    RenderedMessage(
        "Jour/beredskap: okvitterade meddelanden hos Boden (2 st)", "text\n", "<p>h</p>"
    ),
    {"unit": "Boden", "level": 2, "count": 2, "oldest_age_minutes": 75, "link": "https://h/x"},
    NOW,
)


@pytest.mark.parametrize(
    ("exc", "kind", "detail"),
    [
        (
            aiosmtplib.SMTPConnectError("Error connecting to 127.0.0.1 on port 1"),
            ChannelUnavailable,
            "SMTPConnectError",
        ),
        (
            aiosmtplib.SMTPConnectTimeoutError("timed out"),
            ChannelUnavailable,
            "SMTPConnectTimeoutError",
        ),
        (aiosmtplib.SMTPServerDisconnected("lost"), ChannelUnavailable, "SMTPServerDisconnected"),
        (aiosmtplib.SMTPReadTimeoutError("timed out"), ChannelUnavailable, "SMTPReadTimeoutError"),
        (ConnectionRefusedError(111, "refused"), ChannelUnavailable, "ConnectionRefusedError"),
        (aiosmtplib.SMTPDataError(451, "4.3.0 try later"), ChannelUnavailable, "SMTPDataError 451"),
        (
            aiosmtplib.SMTPSenderRefused(421, "busy", "hub@example.se"),
            ChannelUnavailable,
            "SMTPSenderRefused 421",
        ),
        (aiosmtplib.SMTPDataError(554, "5.7.1 rejected"), NotificationRefused, "SMTPDataError 554"),
        (
            aiosmtplib.SMTPAuthenticationError(535, "bad credentials"),
            NotificationRefused,
            "SMTPAuthenticationError 535",
        ),
        (
            aiosmtplib.SMTPNotSupported("STARTTLS extension not supported"),
            NotificationRefused,
            "SMTPNotSupported",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, f"5.1.1 <{ADDRESS}> unknown", ADDRESS)]
            ),
            NotificationRefused,
            "SMTPRecipientsRefused 550",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(452, "4.2.2 mailbox full", ADDRESS)]
            ),
            ChannelUnavailable,
            "SMTPRecipientsRefused 452",
        ),
    ],
)
def test_smtp_errors_map_to_transient_or_permanent(
    exc: Exception, kind: type[Exception], detail: str
) -> None:
    """4xx, connection and timeout errors are transient; 5xx and missing extensions permanent;
    the detail is the class and code only (never the reply text or the address)."""
    mapped = smtp_error(exc)
    assert (type(mapped), mapped.detail, str(mapped)) == (kind, detail, f"email: {detail}")
    assert ADDRESS not in str(mapped)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (202, None),
        (204, None),
        (301, NotificationRefused),
        (400, NotificationRefused),
        (401, NotificationRefused),
        (404, NotificationRefused),
        (408, ChannelUnavailable),
        (425, ChannelUnavailable),
        (429, ChannelUnavailable),
        (500, ChannelUnavailable),
        (502, ChannelUnavailable),
        (503, ChannelUnavailable),
    ],
)
def test_http_statuses_map_to_success_transient_or_permanent(
    status: int, kind: type[Exception] | None
) -> None:
    """2xx succeeds; 5xx, 408, 425 and 429 are transient; other 4xx and 3xx are permanent."""
    mapped = http_status_error(status)
    assert (type(mapped) if mapped else None) == kind
    if mapped is not None:
        assert mapped.detail == f"HTTP {status}"


def test_email_message_headers_and_parts() -> None:
    """One e-mail: From/To/Subject, a Message-ID from the notification id, auto-generated,
    a text and an HTML alternative."""
    channel = EmailChannel(SmtpSettings(sender="hub@norrbotten.example.se"))
    message = channel.build_message(NOTIFICATION, CONTENT)
    headers = {k: str(v) for k, v in message.items()}
    assert {k: v for k, v in headers.items() if k != "Content-Type"} == {
        "From": "hub@norrbotten.example.se",
        "To": ADDRESS,
        "Subject": "Jour/beredskap: okvitterade meddelanden hos Boden (2 st)",
        "Date": "Sat, 26 Dec 2026 12:00:00 +0000",
        "Message-ID": "<e11950db-f0ef-5fbb-80e3-b44e4a21cd29@norrbotten.example.se>",
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
        "X-Hub-Notification-Id": "e11950db-f0ef-5fbb-80e3-b44e4a21cd29",
        "X-Hub-Escalation-Id": "22222222-2222-4222-8222-222222222222",
        "MIME-Version": "1.0",
    }
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert message.get_body(("plain",)).get_content() == "text\n"  # type: ignore[union-attr]
    assert message.get_body(("html",)).get_content() == "<p>h</p>\n"  # type: ignore[union-attr]


def test_message_id_is_the_same_for_every_attempt() -> None:
    """The Message-ID depends only on the notification, so a receiver can drop a repeat."""
    first = message_id_for(NOTIFICATION, "hub@example.se")
    again = message_id_for(NOTIFICATION, "hub@example.se")
    other = message_id_for(
        Notification(uuid.uuid4(), NOTIFICATION.escalation_id, "email", "chef@example.org"),
        "hub@example.se",
    )
    assert (first, first == again, first == other) == (
        "<e11950db-f0ef-5fbb-80e3-b44e4a21cd29@example.se>",
        True,
        False,
    )


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://sms.example.org/hooks/a", "webhook:https://sms.example.org"),
        ("https://sms.example.org/hooks/b?x=1", "webhook:https://sms.example.org"),
        ("http://user:secret@gw.local:8080/sms", "webhook:http://gw.local:8080"),
    ],
)
def test_webhook_breakers_are_per_origin(url: str, key: str) -> None:
    """One breaker per gateway (scheme, host, port); credentials in a URL are not part of it."""
    assert WebhookChannel().breaker_key(url) == key


def _raise(error: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        msg = "scripted failure"
        raise error(msg, request=request)

    return answer


def _webhook(handler: httpx.MockTransport) -> WebhookChannel:
    return WebhookChannel(2.0, client=httpx.AsyncClient(transport=handler))


async def test_webhook_posts_the_payload_with_the_idempotency_key() -> None:
    """A JSON POST of the payload, with the notification id as Idempotency-Key; 2xx succeeds."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    notification = Notification(
        NOTIFICATION.notification_id, NOTIFICATION.escalation_id, "webhook", "https://gw/sms"
    )
    await _webhook(httpx.MockTransport(answer)).send(notification, CONTENT)
    (request,) = seen
    assert (request.method, str(request.url), json.loads(request.content)) == (
        "POST",
        "https://gw/sms",
        dict(CONTENT.payload),
    )
    assert request.headers["idempotency-key"] == str(NOTIFICATION.notification_id)
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("answer", "kind", "detail"),
    [
        (lambda _: httpx.Response(503), ChannelUnavailable, "HTTP 503"),
        (lambda _: httpx.Response(404), NotificationRefused, "HTTP 404"),
        (
            _raise(httpx.ConnectError),
            ChannelUnavailable,
            "ConnectError",
        ),
        (
            _raise(httpx.ReadTimeout),
            ChannelUnavailable,
            "ReadTimeout",
        ),
        (
            _raise(httpx.UnsupportedProtocol),
            NotificationRefused,
            "UnsupportedProtocol",
        ),
    ],
)
async def test_webhook_failures_map_to_hub_errors(
    answer: Callable[[httpx.Request], httpx.Response], kind: type[Exception], detail: str
) -> None:
    """5xx and transport errors are transient, 4xx and unusable URLs permanent."""
    notification = Notification(
        NOTIFICATION.notification_id, NOTIFICATION.escalation_id, "webhook", "https://gw/sms"
    )
    channel = _webhook(httpx.MockTransport(answer))
    with pytest.raises(kind) as raised:
        await channel.send(notification, CONTENT)
    assert raised.value.detail == detail  # type: ignore[attr-defined]


async def test_email_to_a_closed_port_is_transient() -> None:
    """Nothing listening: aiosmtplib's connect error becomes ``ChannelUnavailable``."""
    from tests.support.notify import free_port  # noqa: PLC0415

    channel = EmailChannel(SmtpSettings(port=free_port(), timeout_s=2))
    with pytest.raises(ChannelUnavailable) as raised:
        await channel.send(NOTIFICATION, CONTENT)
    assert raised.value.detail == "SMTPConnectError"
