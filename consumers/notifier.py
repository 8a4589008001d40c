"""The notifier: escalation digests in, e-mails and webhook calls out.

Thin over `hub.notify.service.Notifier`. For each digest on the escalations topic:

1. decode the `Escalation` (`topics.codec`; bad input is dead-lettered by the consume guard),
2. send every notification of the digest not yet sent (deduplicated by notification id, retried
   in process with backoff, every attempt recorded),
3. return, and only then let the offset be committed.

A notification still failing raises a `TransientError`: the consume guard retries the digest
(what was sent is skipped) and finally dead-letters it; a permanent refusal dead-letters it at
once with an operations alert. A crash before the commit redelivers the digest; the log's
``sent`` rows keep that from sending twice.

The subscriber's ``max_poll_interval_ms`` is raised to ten minutes: one digest may take the
notifier's in-process budget (about 30 s plus one attempt timeout) times the guard's attempts.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from hub.broker import build_broker, subscriber_options
from hub.clock import Clock, SystemClock
from hub.consume import ConsumeGuard
from hub.notify.breaker import CircuitBreaker
from hub.notify.channels import EmailChannel, WebhookChannel
from hub.notify.service import NotificationLog, Notifier, SendRetryPolicy
from hub.publishing import Outbox
from hub.settings import Settings
from topics.codec import decode
from topics.messages import Escalation
from topics.topics import TopicName

GROUP_ID = "hub-notifier"

#: Long enough for one digest's worst case: the guard's attempts times the notifier's budget.
MAX_POLL_INTERVAL_MS = 600_000


class EscalationHandler:
    """Decodes digests and hands them to the notifier; the handler's only collaborator."""

    def __init__(self, notifier: Notifier, clock: Clock) -> None:
        self.notifier = notifier
        self.clock = clock

    async def handle(self, body: bytes, headers: dict[str, str]) -> None:
        # The notifier logs the one summary event per digest (``notify.handled``).
        escalation = decode(Escalation, body, headers)
        await self.notifier.handle(escalation, self.clock.now())


def build_notifier(
    settings: Settings,
    notification_log: NotificationLog,
    clock: Clock,
    *,
    retry: SendRetryPolicy | None = None,
    breaker_factory: Callable[[], CircuitBreaker] = CircuitBreaker,
    tls_context: ssl.SSLContext | None = None,
    webhook_timeout_s: float = 10.0,
) -> Notifier:
    """A notifier with the e-mail channel from ``settings.smtp`` and the webhook channel."""
    return Notifier(
        [
            EmailChannel(settings.smtp, tls_context=tls_context),
            WebhookChannel(webhook_timeout_s),
        ],
        notification_log,
        clock,
        language=settings.language,
        retry=retry,
        breaker_factory=breaker_factory,
    )


def register(
    broker: KafkaBroker, settings: Settings, handler: EscalationHandler, guard: ConsumeGuard
) -> None:
    """Attach the notifier's subscriber, inside the consume guard, to a broker."""
    routes = KafkaRouter(middlewares=[guard.middleware()])

    @routes.subscriber(
        settings.topic(TopicName.ESCALATIONS),
        **subscriber_options(settings.group(GROUP_ID), max_poll_interval_ms=MAX_POLL_INTERVAL_MS),
    )
    async def on_escalation(message: KafkaMessage) -> None:
        await handler.handle(message.body, message.headers)

    broker.include_router(routes)


def build_app(
    settings: Settings,
    notification_log: NotificationLog,
    clock: Clock | None = None,
    *,
    notifier: Notifier | None = None,
) -> tuple[FastStream, KafkaBroker]:
    """The notifier as a FastStream app (`faststream run --factory` style)."""
    clock = clock or SystemClock()
    broker = build_broker(settings)
    outbox = Outbox(broker, settings)
    register(
        broker,
        settings,
        EscalationHandler(notifier or build_notifier(settings, notification_log, clock), clock),
        ConsumeGuard("notifier", outbox, clock),
    )
    return FastStream(broker), broker
