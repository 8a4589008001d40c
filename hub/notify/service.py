"""The notifier's decisions: one notification per recipient of a digest, each sent at most once.

For each recipient address of an escalation digest there is one *notification* (*utskick*), with
the deterministic id ``uuid5(escalation_id, channel + recipient)``. A redelivered digest (the
scan ran twice, the consumer crashed before committing) yields the same ids, and a notification
the log already marks ``sent`` is skipped: duplicates are suppressed by id.

Sending a notification is bounded work: up to ``SendRetryPolicy.max_attempts`` attempts with
exponential backoff and full jitter, each attempt under its own timeout, and no new attempt once
``budget_s`` is spent, so that the consume guard's own retries still finish well inside Kafka's
``max_poll_interval_ms``. Every attempt is recorded (outcome, error class and status code only,
duration). A per-channel :class:`~hub.notify.breaker.CircuitBreaker` stops hammering a server
that is down; an attempt it refuses is recorded too (``CircuitOpen``), and the retry waits for
the breaker's cool-down. When the cool-down outlasts the budget, the handling still waits the
budget out before giving up: a digest is dead-lettered only after the channel has been failing
for about the consume guard's attempts times ``budget_s`` (some two and a half minutes with the
defaults), never within seconds because a breaker was open.

Outcomes of one digest: everything sent (or already sent) returns normally, and the consumer's
offset is committed. A notification still failing transiently raises ``NotificationsPending``
(a ``TransientError``): the consume guard retries the digest (already-sent ones are skipped) and
finally dead-letters it, so it is never dropped. A permanent refusal (SMTP 5xx, HTTP 4xx) marks
that notification ``failed`` and, once the others are done, raises ``NotificationRefused`` so
that the digest is dead-lettered with an operations alert.

Exactly once is not possible over SMTP: a crash after the server accepted a message and before
``mark_sent`` sends it again on redelivery. The e-mail's ``Message-ID`` is derived from the
notification id, so a receiving side that de-duplicates by Message-ID drops even that one.

Recipients are sent to concurrently (``asyncio.gather`` with ``return_exceptions``, not a
``TaskGroup``: one recipient's failure must not cancel another's SMTP session half-way, which
could send a message without recording it), bounded by a semaphore per channel.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Protocol
from uuid import UUID, uuid5

from hub.calendar import require_aware
from hub.clock import Clock
from hub.logs import get_logger
from hub.notify.breaker import CircuitBreaker
from hub.notify.errors import (
    ChannelUnavailable,
    CircuitOpen,
    NotificationRefused,
    NotificationsPending,
)
from hub.notify.templates import Language, RenderedMessage, render, webhook_payload
from topics.messages import Escalation

__all__ = [
    "EMAIL",
    "WEBHOOK",
    "AttemptOutcome",
    "AttemptRecord",
    "Channel",
    "Content",
    "HandleResult",
    "MemoryNotificationLog",
    "Notification",
    "NotificationLog",
    "NotificationState",
    "Notifier",
    "SendRetryPolicy",
    "channel_for",
    "notification_id_for",
    "notifications_for",
]

log = get_logger(__name__)

#: Channel names (the ``notifications.channel`` column holds these).
EMAIL: Final = "email"
WEBHOOK: Final = "webhook"


class NotificationState(StrEnum):
    """Where a notification stands (the values of ``notifications.status``)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # refused for good; tried again only when the digest is replayed


class AttemptOutcome(StrEnum):
    """How one attempt went (the values of ``notification_attempts.outcome``)."""

    SENT = "sent"
    FAILED = "failed"


def channel_for(recipient: str) -> str:
    """The channel of an address: ``webhook`` for an http(s) URL, ``email`` otherwise."""
    lowered = recipient.lower()
    if lowered.startswith(("http://", "https://")):
        return WEBHOOK
    return EMAIL


def notification_id_for(escalation_id: UUID, channel: str, recipient: str) -> UUID:
    """The notification id of one digest to one address: ``uuid5(escalation_id, channel +
    recipient)``. Fixed for ever: it is the de-duplication key and the e-mail's Message-ID."""
    return uuid5(escalation_id, channel + recipient)


@dataclass(frozen=True, slots=True)
class Notification:
    """One digest to one address over one channel (*utskick*)."""

    notification_id: UUID
    escalation_id: UUID
    channel: str
    recipient: str


def notifications_for(escalation: Escalation) -> tuple[Notification, ...]:
    """The notifications of a digest, one per distinct recipient, in the digest's order."""
    seen: dict[UUID, Notification] = {}
    for recipient in escalation.recipients:
        channel = channel_for(recipient)
        notification_id = notification_id_for(escalation.escalation_id, channel, recipient)
        seen.setdefault(
            notification_id,
            Notification(notification_id, escalation.escalation_id, channel, recipient),
        )
    return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class Content:
    """What a channel sends: the e-mail, the webhook body, and the instant they were made for."""

    message: RenderedMessage
    payload: Mapping[str, object]
    created_at: datetime


class Channel(Protocol):
    """An outbound channel adapter (``hub.notify.channels``).

    ``send`` returns once the other side accepted the notification; it raises
    ``ChannelUnavailable`` for a failure worth retrying and ``NotificationRefused`` for a refusal.
    """

    @property
    def name(self) -> str:
        """The channel name, ``email`` or ``webhook``."""
        ...

    def breaker_key(self, recipient: str) -> str:
        """Which circuit breaker guards sends to ``recipient`` (one per server)."""
        ...

    async def send(self, notification: Notification, content: Content) -> None:
        """Send one notification."""
        ...


class NotificationLog(Protocol):
    """Where notifications and their attempts are recorded (``hub.notify.store_log`` over the
    SQL store; :class:`MemoryNotificationLog` in tests). ``error`` texts carry an error class and
    a status code, never patient data or server replies."""

    async def status(self, notification_id: UUID) -> str | None:
        """The notification's ``NotificationState`` value, or ``None`` if never attempted."""
        ...

    async def record_attempt(
        self,
        notification_id: UUID,
        *,
        escalation_id: UUID,
        channel: str,
        recipient: str,
        outcome: AttemptOutcome,
        error: str | None,
        duration_ms: int,
        at: datetime,
    ) -> None:
        """Record one attempt (creating the notification, pending, on its first attempt)."""
        ...

    async def mark_sent(self, notification_id: UUID, at: datetime) -> None:
        """The notification was accepted by the other side at ``at``."""
        ...

    async def mark_failed(self, notification_id: UUID, error: str) -> None:
        """The notification was refused for good."""
        ...


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One recorded attempt (as :class:`MemoryNotificationLog` keeps it)."""

    notification_id: UUID
    escalation_id: UUID
    channel: str
    recipient: str
    outcome: AttemptOutcome
    error: str | None
    duration_ms: int
    at: datetime


@dataclass(slots=True)
class MemoryNotificationLog:
    """A :class:`NotificationLog` in memory, for tests and for running without a database."""

    states: dict[UUID, NotificationState] = field(default_factory=dict)
    attempts: list[AttemptRecord] = field(default_factory=list)
    sent_at: dict[UUID, datetime] = field(default_factory=dict)

    async def status(self, notification_id: UUID) -> str | None:
        """The state, or ``None`` if never attempted."""
        state = self.states.get(notification_id)
        return None if state is None else state.value

    async def record_attempt(
        self,
        notification_id: UUID,
        *,
        escalation_id: UUID,
        channel: str,
        recipient: str,
        outcome: AttemptOutcome,
        error: str | None,
        duration_ms: int,
        at: datetime,
    ) -> None:
        """Append the attempt; a new notification starts pending."""
        self.states.setdefault(notification_id, NotificationState.PENDING)
        self.attempts.append(
            AttemptRecord(
                notification_id,
                escalation_id,
                channel,
                recipient,
                AttemptOutcome(outcome),
                error,
                duration_ms,
                require_aware(at, "at"),
            )
        )

    async def mark_sent(self, notification_id: UUID, at: datetime) -> None:
        """Sent is final."""
        self.states[notification_id] = NotificationState.SENT
        self.sent_at[notification_id] = require_aware(at, "at")

    async def mark_failed(self, notification_id: UUID, error: str) -> None:
        """Failed, unless already sent."""
        if self.states.get(notification_id) is not NotificationState.SENT:
            self.states[notification_id] = NotificationState.FAILED


@dataclass(frozen=True, slots=True)
class SendRetryPolicy:
    """In-process retries of one notification: bounded in count and in time, jittered.

    The defaults give 4 attempts within about 30 s (waits of 1-2 s, 2-4 s, 4-8 s), each attempt
    limited to ``attempt_timeout_s``; the consume guard retries the whole digest a few more times.
    """

    max_attempts: int = 4
    base_delay_s: float = 2.0
    max_delay_s: float = 10.0
    budget_s: float = 30.0
    attempt_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = "max_attempts: must be at least 1"
            raise ValueError(msg)
        if min(self.base_delay_s, self.max_delay_s, self.budget_s, self.attempt_timeout_s) <= 0:
            msg = "base_delay_s, max_delay_s, budget_s, attempt_timeout_s: must be positive"
            raise ValueError(msg)

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """How long to wait after failed attempt ``attempt`` (1-based): full jitter in
        ``[cap/2, cap]`` with ``cap = min(max_delay_s, base_delay_s * 2**(attempt-1))``."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(cap / 2, cap)


class _Outcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # already sent before
    REFUSED = "refused"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class _Result:
    notification: Notification
    outcome: _Outcome
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class HandleResult:
    """What handling one digest did, per notification id."""

    sent: tuple[UUID, ...]
    skipped: tuple[UUID, ...]


class Notifier:
    """Sends escalation digests over its channels; the notifier consumer's collaborator."""

    def __init__(
        self,
        channels: Iterable[Channel],
        log: NotificationLog,
        clock: Clock,
        *,
        language: Language = "sv",
        retry: SendRetryPolicy | None = None,
        breaker_factory: Callable[[], CircuitBreaker] = CircuitBreaker,
        concurrency_per_channel: int = 4,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channels = {channel.name: channel for channel in channels}
        self._log = log
        self._clock = clock
        self._language: Language = language
        self._retry = retry or SendRetryPolicy()
        self._breaker_factory = breaker_factory
        self._breakers: dict[str, CircuitBreaker] = {}
        self._semaphores = {
            name: asyncio.Semaphore(concurrency_per_channel) for name in self._channels
        }
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._sleep = sleep
        self._timer = timer

    def breaker(self, key: str) -> CircuitBreaker:
        """The circuit breaker for ``key`` (see ``Channel.breaker_key``), created on first use."""
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = self._breaker_factory()
        return breaker

    async def handle(self, escalation: Escalation, now: datetime) -> HandleResult:
        """Send every notification of ``escalation`` not yet sent; ``now`` is the instant the
        messages are rendered for (the age of the oldest delivery). Attempts are timed by the
        notifier's clock. Raises ``NotificationsPending`` or ``NotificationRefused``."""
        now = require_aware(now, "now")
        content = Content(
            message=render(escalation, self._language, now),
            payload=webhook_payload(escalation, self._language, now),
            created_at=now,
        )
        notifications = notifications_for(escalation)
        gathered = await asyncio.gather(
            *(self._deliver(n, content) for n in notifications), return_exceptions=True
        )
        results: list[_Result] = []
        for item in gathered:
            if isinstance(item, BaseException):
                # A store failure or a bug: the consume guard classifies it (retry or dead-letter).
                raise item
            results.append(item)
        return self._conclude(escalation, results)

    def _conclude(self, escalation: Escalation, results: list[_Result]) -> HandleResult:
        by_outcome: dict[_Outcome, list[_Result]] = {outcome: [] for outcome in _Outcome}
        for result in results:
            by_outcome[result.outcome].append(result)
        log.info(
            "notify.handled",
            escalation_id=str(escalation.escalation_id),
            unit=escalation.unit,
            level=escalation.level,
            **{outcome.value: len(items) for outcome, items in by_outcome.items()},
        )
        pending, refused = by_outcome[_Outcome.PENDING], by_outcome[_Outcome.REFUSED]
        if pending:
            errors = ", ".join(sorted({r.detail or "unknown" for r in pending}))
            msg = (
                f"escalation {escalation.escalation_id}: {len(pending)} of {len(results)} "
                f"notifications not sent yet ({errors})"
            )
            raise NotificationsPending(msg)
        if refused:
            first = refused[0]
            detail = (
                f"{first.detail} (escalation {escalation.escalation_id}: "
                f"{len(refused)} of {len(results)} notifications refused)"
            )
            raise NotificationRefused(first.notification.channel, detail)
        return HandleResult(
            sent=tuple(r.notification.notification_id for r in by_outcome[_Outcome.SENT]),
            skipped=tuple(r.notification.notification_id for r in by_outcome[_Outcome.SKIPPED]),
        )

    async def _deliver(self, notification: Notification, content: Content) -> _Result:
        if await self._log.status(notification.notification_id) == NotificationState.SENT:
            log.info(
                "notify.duplicate",
                notification_id=str(notification.notification_id),
                escalation_id=str(notification.escalation_id),
                channel=notification.channel,
            )
            return _Result(notification, _Outcome.SKIPPED)
        channel = self._channels.get(notification.channel)
        if channel is None:
            detail = f"no {notification.channel} channel configured"
            await self._record(notification, AttemptOutcome.FAILED, detail, 0)
            await self._log.mark_failed(notification.notification_id, detail)
            return _Result(notification, _Outcome.REFUSED, detail)
        async with self._semaphores[channel.name]:
            return await self._attempts(channel, notification, content)

    async def _attempts(
        self, channel: Channel, notification: Notification, content: Content
    ) -> _Result:
        policy = self._retry
        breaker = self.breaker(channel.breaker_key(notification.recipient))
        started = self._timer()
        detail: str | None = None
        for attempt in range(1, policy.max_attempts + 1):
            outcome, detail = await self._attempt(channel, breaker, notification, content)
            if outcome is not _Outcome.PENDING:
                return _Result(notification, outcome, detail)
            if attempt == policy.max_attempts:
                break
            delay = policy.delay_s(attempt, self._rng)
            reopens = breaker.retry_at(self._clock.now())
            if reopens is not None:
                delay = max(delay, (reopens - self._clock.now()) / timedelta(seconds=1))
            remaining = policy.budget_s - (self._timer() - started)
            if delay > remaining:
                if reopens is not None and remaining > 0:
                    # The breaker stays open past the budget. Wait the budget out anyway, so
                    # that the consume guard's retries of this digest are spread over about
                    # ``guard attempts x budget_s`` of outage instead of spent in a burst
                    # against an open breaker (and the digest dead-lettered within seconds).
                    await self._sleep(remaining)
                break
            log.warning(
                "notify.retry",
                notification_id=str(notification.notification_id),
                channel=notification.channel,
                attempt=attempt,
                delay_s=round(delay, 3),
                error=detail,
            )
            await self._sleep(delay)
        return _Result(notification, _Outcome.PENDING, detail)

    async def _attempt(
        self,
        channel: Channel,
        breaker: CircuitBreaker,
        notification: Notification,
        content: Content,
    ) -> tuple[_Outcome, str | None]:
        if not breaker.allow(self._clock.now()):
            detail = CircuitOpen(channel.name).detail
            await self._record(notification, AttemptOutcome.FAILED, detail, 0)
            return _Outcome.PENDING, detail
        began = self._timer()
        try:
            async with asyncio.timeout(self._retry.attempt_timeout_s):
                await channel.send(notification, content)
        except ChannelUnavailable as exc:
            detail = exc.detail
        except TimeoutError:
            detail = "AttemptTimeout"
        except NotificationRefused as exc:
            breaker.record_success(self._clock.now())  # the server answered
            await self._record(notification, AttemptOutcome.FAILED, exc.detail, self._ms(began))
            await self._log.mark_failed(notification.notification_id, exc.detail)
            log.warning(
                "notify.refused",
                notification_id=str(notification.notification_id),
                escalation_id=str(notification.escalation_id),
                channel=notification.channel,
                error=exc.detail,
            )
            return _Outcome.REFUSED, exc.detail
        else:
            at = self._clock.now()
            breaker.record_success(at)
            await self._record(notification, AttemptOutcome.SENT, None, self._ms(began))
            await self._log.mark_sent(notification.notification_id, at)
            log.info(
                "notify.sent",
                notification_id=str(notification.notification_id),
                escalation_id=str(notification.escalation_id),
                channel=notification.channel,
            )
            return _Outcome.SENT, None
        breaker.record_failure(self._clock.now())
        await self._record(notification, AttemptOutcome.FAILED, detail, self._ms(began))
        return _Outcome.PENDING, detail

    def _ms(self, began: float) -> int:
        return max(0, round((self._timer() - began) * 1000))

    async def _record(
        self, notification: Notification, outcome: AttemptOutcome, error: str | None, ms: int
    ) -> None:
        await self._log.record_attempt(
            notification.notification_id,
            escalation_id=notification.escalation_id,
            channel=notification.channel,
            recipient=notification.recipient,
            outcome=outcome,
            error=error,
            duration_ms=ms,
            at=self._clock.now(),
        )
