"""The outbound channel adapters: e-mail over SMTP (aiosmtplib) and webhooks over HTTP (httpx).

Each adapter maps its library's errors to the notifier's, here and nowhere else:

* ``ChannelUnavailable`` (transient): connection refused or lost, timeouts, SMTP 4xx replies,
  HTTP 5xx, 408, 425 and 429;
* ``NotificationRefused`` (permanent): SMTP 5xx replies, a server without a required extension
  (STARTTLS, AUTH), HTTP 4xx and 3xx (redirects are not followed: a moved endpoint is a
  configuration change), a URL httpx cannot use.

The error texts name the exception class and the status code only; the server's reply text is
not kept (it may quote the recipient address).

Every call that leaves the process has a timeout: aiosmtplib's ``timeout=`` from
``SmtpSettings.timeout_s`` (it applies to each SMTP command), and an ``httpx.Timeout`` on every
request. The notifier adds a timeout around each whole attempt on top.

One SMTP connection per message and one HTTP client per request unless one is given: digests
are few (one per unit and level per scan), and nothing needs closing at shutdown.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final
from urllib.parse import urlsplit

import aiosmtplib
import httpx

from hub.notify.errors import ChannelUnavailable, NotificationRefused
from hub.notify.service import EMAIL, WEBHOOK, Content, Notification
from hub.settings import SmtpSettings

__all__ = [
    "EmailChannel",
    "WebhookChannel",
    "http_status_error",
    "message_id_for",
    "smtp_error",
]

_USER_AGENT: Final = "dischargehub-notifier/1"
#: HTTP client errors that are worth retrying: request timeout, too early, too many requests.
_TRANSIENT_4XX: Final = frozenset({408, 425, 429})
_FALLBACK_DOMAIN: Final = "dischargehub.invalid"


def message_id_for(notification: Notification, sender: str) -> str:
    """The e-mail's ``Message-ID``: the notification id at the sender's domain, so that every
    attempt (and every redelivery) of one notification carries the same id."""
    domain = sender.rpartition("@")[2] or _FALLBACK_DOMAIN
    return f"<{notification.notification_id}@{domain}>"


def smtp_error(exc: Exception) -> ChannelUnavailable | NotificationRefused:
    """The notifier error for an aiosmtplib (or socket) error: 5xx and unsupported extensions
    are permanent, everything else (4xx, connection, timeout) transient."""
    name = type(exc).__name__
    code: int | None = None
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({refused.code for refused in exc.recipients})
        code = codes[-1] if codes else None
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        code = exc.code
    if code is not None:
        detail = f"{name} {code}"
        if 500 <= code <= 599:
            return NotificationRefused(EMAIL, detail)
        return ChannelUnavailable(EMAIL, detail)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return NotificationRefused(EMAIL, name)
    return ChannelUnavailable(EMAIL, name)


def http_status_error(status_code: int) -> ChannelUnavailable | NotificationRefused | None:
    """The notifier error for an HTTP response status, or ``None`` for a success (2xx)."""
    if 200 <= status_code <= 299:
        return None
    detail = f"HTTP {status_code}"
    if status_code >= 500 or status_code in _TRANSIENT_4XX:
        return ChannelUnavailable(WEBHOOK, detail)
    return NotificationRefused(WEBHOOK, detail)


class EmailChannel:
    """Sends a notification as one e-mail (text and HTML alternatives) through an SMTP relay.

    ``SmtpSettings.security``: ``plain`` (no TLS: a local sink or a relay on loopback),
    ``starttls`` (upgrade on port 587, refused if the server does not offer it) or ``tls``
    (implicit TLS, port 465). Authentication when ``username`` is set. ``tls_context`` replaces
    the default verifying context (a private CA, say); certificates are always verified.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self._settings = settings
        self._tls_context = tls_context
        self._local_hostname = local_hostname

    @property
    def name(self) -> str:
        """``email``."""
        return EMAIL

    def breaker_key(self, recipient: str) -> str:
        """One breaker for the relay: every address goes through the same server."""
        return f"{EMAIL}:{self._settings.host}:{self._settings.port}"

    def build_message(self, notification: Notification, content: Content) -> EmailMessage:
        """The MIME message for ``notification``: deterministic Message-ID, auto-generated."""
        message = EmailMessage()
        message["From"] = self._settings.sender
        message["To"] = notification.recipient
        message["Subject"] = content.message.subject
        message["Date"] = format_datetime(content.created_at)
        message["Message-ID"] = message_id_for(notification, self._settings.sender)
        # RFC 3834: an automatic message; out-of-office replies should not answer it.
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message["X-Hub-Notification-Id"] = str(notification.notification_id)
        message["X-Hub-Escalation-Id"] = str(notification.escalation_id)
        message.set_content(content.message.text)
        message.add_alternative(content.message.html, subtype="html")
        return message

    async def send(self, notification: Notification, content: Content) -> None:
        """Send one e-mail; raise ``ChannelUnavailable`` or ``NotificationRefused``."""
        settings = self._settings
        password = settings.password.get_secret_value() if settings.password else None
        message = self.build_message(notification, content)
        try:
            await aiosmtplib.send(
                message,
                sender=settings.sender,
                recipients=[notification.recipient],
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=password,
                local_hostname=self._local_hostname,
                use_tls=settings.security == "tls",
                start_tls=settings.security == "starttls",
                validate_certs=True,
                tls_context=self._tls_context,
                timeout=settings.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise smtp_error(exc) from exc


class WebhookChannel:
    """POSTs the notification's JSON body (``hub.notify.templates.webhook_payload``) to a URL,
    for an SMS gateway or a chat integration.

    Headers ``Idempotency-Key`` and ``X-Hub-Notification-Id`` carry the notification id, so a
    receiver can drop a repeated delivery. ``client`` lets the caller share one
    ``httpx.AsyncClient`` (and close it); without one, each send uses its own.
    """

    def __init__(
        self,
        timeout_s: float = 10.0,
        *,
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if timeout_s <= 0:
            msg = "timeout_s: must be positive"
            raise ValueError(msg)
        self._timeout = httpx.Timeout(timeout_s)
        self._client = client
        self._headers = dict(headers or {})

    @property
    def name(self) -> str:
        """``webhook``."""
        return WEBHOOK

    def breaker_key(self, recipient: str) -> str:
        """One breaker per origin (scheme, host and port): one gateway down spares the others."""
        parts = urlsplit(recipient)
        return f"{WEBHOOK}:{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    async def send(self, notification: Notification, content: Content) -> None:
        """POST once; 2xx is success. Raise ``ChannelUnavailable`` or ``NotificationRefused``."""
        headers = {
            **self._headers,
            "User-Agent": _USER_AGENT,
            "Idempotency-Key": str(notification.notification_id),
            "X-Hub-Notification-Id": str(notification.notification_id),
            "X-Hub-Escalation-Id": str(notification.escalation_id),
        }
        try:
            if self._client is not None:
                response = await self._client.post(
                    notification.recipient,
                    json=dict(content.payload),
                    headers=headers,
                    timeout=self._timeout,
                )
            else:
                async with httpx.AsyncClient(
                    timeout=self._timeout, follow_redirects=False
                ) as client:
                    response = await client.post(
                        notification.recipient, json=dict(content.payload), headers=headers
                    )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise NotificationRefused(WEBHOOK, type(exc).__name__) from exc
        except (httpx.TransportError, OSError) as exc:  # timeouts, refused, reset, protocol
            raise ChannelUnavailable(WEBHOOK, type(exc).__name__) from exc
        error = http_status_error(response.status_code)
        if error is not None:
            raise error
