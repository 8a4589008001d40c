"""The notifier's decisions: ids, duplicates, retries, refusals, breakers, attempts recorded."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from hub.clock import FixedClock
from hub.errors import TransientError
from hub.notify.breaker import CircuitBreaker
from hub.notify.errors import ChannelUnavailable, NotificationRefused, NotificationsPending
from hub.notify.service import (
    EMAIL,
    WEBHOOK,
    AttemptOutcome,
    Content,
    MemoryNotificationLog,
    Notification,
    NotificationState,
    Notifier,
    SendRetryPolicy,
    channel_for,
    notification_id_for,
    notifications_for,
)
from tests.support.notify import make_escalation

NOW = datetime(2026, 12, 26, 12, 0, tzinfo=UTC)
JOUR = "jour.lulea@example.org"
CHEF = "chef.lulea@example.org"
HOOK = "https://sms.example.org/hooks/hub"


class FakeTime:
    """A clock, a monotonic timer and a sleep that only move when the code under test sleeps."""

    def __init__(self, start: datetime) -> None:
        self.clock = FixedClock(start)
        self.start = start
        self.sleeps: list[float] = []

    def timer(self) -> float:
        return (self.clock.now() - self.start).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


@dataclass
class FakeChannel:
    """A channel whose answer per call is scripted: an exception to raise, or None to accept."""

    name: str
    script: list[Exception | None] = field(default_factory=list)
    sent: list[tuple[Notification, Content]] = field(default_factory=list)
    calls: int = 0

    def breaker_key(self, recipient: str) -> str:
        return self.name

    async def send(self, notification: Notification, content: Content) -> None:
        self.calls += 1
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        self.sent.append((notification, content))


def notifier(
    *channels: FakeChannel,
    log: MemoryNotificationLog,
    time: FakeTime,
    retry: SendRetryPolicy | None = None,
    breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
) -> Notifier:
    return Notifier(
        channels,
        log,
        time.clock,
        retry=retry,
        breaker_factory=breaker,
        rng=random.Random(7),
        sleep=time.sleep,
        timer=time.timer,
    )


def attempts_of(log: MemoryNotificationLog) -> list[tuple[str, AttemptOutcome, str | None]]:
    return [(a.recipient, a.outcome, a.error) for a in log.attempts]


def test_notification_ids_are_fixed_for_ever() -> None:
    """``uuid5(escalation_id, channel + recipient)``, pinned: it is the de-duplication key."""
    escalation_id = uuid.UUID("22222222-2222-4222-8222-222222222222")
    assert notification_id_for(escalation_id, EMAIL, JOUR) == uuid.uuid5(
        escalation_id, "email" + JOUR
    )
    assert notification_id_for(escalation_id, EMAIL, JOUR) == uuid.UUID(
        "e11950db-f0ef-5fbb-80e3-b44e4a21cd29"
    )


@pytest.mark.parametrize(
    ("recipient", "channel"),
    [
        ("jour@example.org", EMAIL),
        ("https://sms.example.org/x", WEBHOOK),
        ("HTTP://gateway.local:8080/sms", WEBHOOK),
    ],
)
def test_channel_of_an_address(recipient: str, channel: str) -> None:
    """URLs go to the webhook channel, addresses to e-mail."""
    assert channel_for(recipient) == channel


def test_one_notification_per_distinct_recipient() -> None:
    """A digest naming an address twice still gives one notification per address."""
    escalation = make_escalation(recipients=(JOUR, HOOK, JOUR))
    assert notifications_for(escalation) == (
        Notification(
            notification_id_for(escalation.escalation_id, EMAIL, JOUR),
            escalation.escalation_id,
            EMAIL,
            JOUR,
        ),
        Notification(
            notification_id_for(escalation.escalation_id, WEBHOOK, HOOK),
            escalation.escalation_id,
            WEBHOOK,
            HOOK,
        ),
    )


async def test_each_recipient_gets_its_notification_once_even_when_handled_twice() -> None:
    """Handling the same digest again sends nothing more: sent notifications are skipped by id."""
    time, log = FakeTime(NOW), MemoryNotificationLog()
    email, webhook = FakeChannel(EMAIL), FakeChannel(WEBHOOK)
    service = notifier(email, webhook, log=log, time=time)
    escalation = make_escalation(recipients=(JOUR, CHEF, HOOK))
    ids = [n.notification_id for n in notifications_for(escalation)]

    first = await service.handle(escalation, NOW)
    second = await service.handle(escalation, NOW + timedelta(minutes=5))

    assert (sorted(first.sent), first.skipped) == (sorted(ids), ())
    assert (second.sent, sorted(second.skipped)) == ((), sorted(ids))
    assert sorted(n.recipient for n, _ in email.sent) == [CHEF, JOUR]
    assert [n.recipient for n, _ in webhook.sent] == [HOOK]
    assert {log.states[i] for i in ids} == {NotificationState.SENT}
    assert sorted(attempts_of(log)) == sorted(
        [(r, AttemptOutcome.SENT, None) for r in (JOUR, CHEF, HOOK)]
    )


async def test_content_is_rendered_for_now_in_the_notifier_language() -> None:
    """The e-mail and webhook body are the templates' rendering of the digest at ``now``."""
    time, log = FakeTime(NOW), MemoryNotificationLog()
    email = FakeChannel(EMAIL)
    service = Notifier([email], log, time.clock, language="en")
    await service.handle(make_escalation(), NOW)
    ((_, content),) = email.sent
    assert content.created_at == NOW
    assert content.message.subject == ("On call: unreceipted messages at Biståndsenheten Luleå (3)")
    assert content.payload["oldest_age_minutes"] == 27 * 60 + 20


async def test_a_transient_failure_is_retried_and_every_attempt_recorded() -> None:
    """SMTP 451 then success: two attempts recorded (failed with class and code, then sent)."""
    time, log = FakeTime(NOW), MemoryNotificationLog()
    email = FakeChannel(EMAIL, script=[ChannelUnavailable(EMAIL, "SMTPDataError 451")])
    service = notifier(email, log=log, time=time)
    await service.handle(make_escalation(), NOW)

    assert attempts_of(log) == [
        (JOUR, AttemptOutcome.FAILED, "SMTPDataError 451"),
        (JOUR, AttemptOutcome.SENT, None),
    ]
    (delay,) = time.sleeps
    assert 1.0 <= delay <= 2.0  # full jitter in [base/2, base]
    assert log.attempts[1].at == NOW + timedelta(seconds=delay)
    assert len(email.sent) == 1


async def test_exhausted_retries_raise_a_transient_error_and_a_later_try_sends_once() -> None:
    """Still failing after the in-process attempts: ``NotificationsPending`` (transient) and the
    notification stays pending; handled again once the server is back, it is sent exactly once."""
    time, log = FakeTime(NOW), MemoryNotificationLog()
    down = ChannelUnavailable(EMAIL, "SMTPConnectError")
    email = FakeChannel(EMAIL, script=[down] * 4)
    service = notifier(email, log=log, time=time, breaker=lambda: CircuitBreaker(10))
    escalation = make_escalation()

    with pytest.raises(NotificationsPending) as raised:
        await service.handle(escalation, NOW)
    assert isinstance(raised.value, TransientError)
    assert str(raised.value) == (
        "escalation 22222222-2222-4222-8222-222222222222: 1 of 1 notifications not sent yet "
        "(SMTPConnectError)"
    )
    (notification,) = notifications_for(escalation)
    assert log.states[notification.notification_id] is NotificationState.PENDING
    assert len(time.sleeps) == 3
    assert time.timer() <= SendRetryPolicy().budget_s

    await service.handle(escalation, NOW + timedelta(minutes=1))
    assert attempts_of(log) == [(JOUR, AttemptOutcome.FAILED, "SMTPConnectError")] * 4 + [
        (JOUR, AttemptOutcome.SENT, None)
    ]
    assert len(email.sent) == 1


async def test_no_attempt_starts_once_the_budget_is_spent() -> None:
    """Retries stop when the next wait would overrun the time budget, whatever ``max_attempts``."""
    time, log = FakeTime(NOW), MemoryNotificationLog()
    email = FakeChannel(EMAIL, script=[ChannelUnavailable(EMAIL, "SMTPConnectError")] * 50)
    policy = SendRetryPolicy(max_attempts=50, base_delay_s=4, max_delay_s=8, budget_s=20)
    service = notifier(email, log=log, time=time, retry=policy, breaker=lambda: CircuitBreaker(99))
    with pytest.raises(NotificationsPending):
        await service.handle(make_escalation(), NOW)
    assert sum(time.sleeps) <= 20
    assert 2 <= email.calls < 50


async def test_a_permanent_refusal_fails_that_notification_and_spares_the_others() -> None:
    """SMTP 550 for one address: it is marked failed, the others are sent, then the digest is
    refused (to be dead-lettered with an alert)."""
    time, log = FakeTime(NOW), MemoryNotificationLog()

    class PickyEmail(FakeChannel):
        async def send(self, notification: Notification, content: Content) -> None:
            if notification.recipient == CHEF:
                raise NotificationRefused(EMAIL, "SMTPRecipientsRefused 550")
            await super().send(notification, content)

    email = PickyEmail(EMAIL)
    service = notifier(email, log=log, time=time)
    escalation = make_escalation(recipients=(JOUR, CHEF))
    with pytest.raises(NotificationRefused) as raised:
        await service.handle(escalation, NOW)
    assert str(raised.value) == (
        "email: SMTPRecipientsRefused 550 (escalation 22222222-2222-4222-8222-222222222222: "
        "1 of 2 notifications refused)"
    )
    assert sorted(attempts_of(log)) == [
        (CHEF, AttemptOutcome.FAILED, "SMTPRecipientsRefused 550"),
        (JOUR, AttemptOutcome.SENT, None),
    ]
    states = {n.recipient: log.states[n.notification_id] for n in notifications_for(escalation)}
    assert states == {CHEF: NotificationState.FAILED, JOUR: NotificationState.SENT}
    assert time.sleeps == []  # a refusal is not retried


async def test_pending_wins_over_refused() -> None:
    """One address refused and another still failing: the digest is retried (transient) first."""
    time, log = FakeTime(NOW), MemoryNotificationLog()
    email = FakeChannel(EMAIL, script=[ChannelUnavailable(EMAIL, "SMTPConnectError")] * 8)
    service = notifier(email, log=log, time=time, breaker=lambda: CircuitBreaker(99))
    with pytest.raises(NotificationsPending):
        await service.handle(make_escalation(recipients=(JOUR, HOOK)), NOW)
    refused = [a for a in log.attempts if a.recipient == HOOK]
    assert [(a.outcome, a.error) for a in refused] == [
        (AttemptOutcome.FAILED, "no webhook channel configured")
    ]


async def test_an_open_breaker_refuses_attempts_and_the_retry_waits_for_its_cool_down() -> None:
    """Two failures open the breaker (threshold 2, 5 s); the next digest's first try is refused
    without calling the server (recorded as CircuitOpen), and its retry waits for the cool-down."""
    time, log = FakeTime(NOW), MemoryNotificationLog()
    down = ChannelUnavailable(EMAIL, "SMTPConnectError")
    email = FakeChannel(EMAIL, script=[down, down])
    policy = SendRetryPolicy(max_attempts=2, base_delay_s=0.5, max_delay_s=1, budget_s=30)
    service = notifier(
        email,
        log=log,
        time=time,
        retry=policy,
        breaker=lambda: CircuitBreaker(2, timedelta(seconds=5)),
    )
    with pytest.raises(NotificationsPending):
        await service.handle(make_escalation(recipients=(JOUR,)), NOW)
    opened = time.clock.now()
    await service.handle(make_escalation(recipients=(CHEF,)), opened)
    assert attempts_of(log) == [
        (JOUR, AttemptOutcome.FAILED, "SMTPConnectError"),
        (JOUR, AttemptOutcome.FAILED, "SMTPConnectError"),
        (CHEF, AttemptOutcome.FAILED, "CircuitOpen"),
        (CHEF, AttemptOutcome.SENT, None),
    ]
    assert (email.calls, log.attempts[2].duration_ms) == (3, 0)
    assert log.attempts[3].at == opened + timedelta(seconds=5)


async def test_a_breaker_open_past_the_budget_is_waited_out_not_burnt() -> None:
    """A breaker open for longer than the budget: each handling waits the budget out before it
    gives up, so the consume guard's retries span the outage instead of a burst of refusals."""
    time, log = FakeTime(NOW), MemoryNotificationLog()
    email = FakeChannel(EMAIL, script=[ChannelUnavailable(EMAIL, "SMTPConnectError")])
    policy = SendRetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=1, budget_s=10)
    service = notifier(
        email,
        log=log,
        time=time,
        retry=policy,
        breaker=lambda: CircuitBreaker(1, timedelta(seconds=60)),
    )
    for _ in range(2):
        with pytest.raises(NotificationsPending):
            await service.handle(make_escalation(), time.clock.now())
    assert attempts_of(log) == [
        (JOUR, AttemptOutcome.FAILED, "SMTPConnectError"),
        (JOUR, AttemptOutcome.FAILED, "CircuitOpen"),
    ]
    assert (time.sleeps, email.calls) == ([10.0, 10.0], 1)


async def test_a_hanging_server_is_cut_off_by_the_attempt_timeout() -> None:
    """An attempt that never returns is abandoned after ``attempt_timeout_s`` and retried."""
    log = MemoryNotificationLog()
    never = asyncio.Event()

    class Hanging(FakeChannel):
        async def send(self, notification: Notification, content: Content) -> None:
            self.calls += 1
            if self.calls == 1:
                await never.wait()
            await super().send(notification, content)

    email = Hanging(EMAIL)
    policy = SendRetryPolicy(
        max_attempts=2, base_delay_s=0.01, max_delay_s=0.01, attempt_timeout_s=0.05
    )
    service = Notifier([email], log, FixedClock(NOW), retry=policy)
    await service.handle(make_escalation(), NOW)
    assert attempts_of(log) == [
        (JOUR, AttemptOutcome.FAILED, "AttemptTimeout"),
        (JOUR, AttemptOutcome.SENT, None),
    ]


async def test_a_failing_log_is_raised_as_itself() -> None:
    """A store error reaches the consume guard unwrapped (no ExceptionGroup), so it is retried."""

    class BrokenLog(MemoryNotificationLog):
        async def status(self, notification_id: uuid.UUID) -> str | None:
            msg = "database is locked"
            raise OSError(msg)

    service = Notifier([FakeChannel(EMAIL)], BrokenLog(), FixedClock(NOW))
    with pytest.raises(OSError, match="database is locked"):
        await service.handle(make_escalation(recipients=(JOUR, CHEF)), NOW)


def test_retry_policy_delays_grow_and_are_jittered() -> None:
    """Waits are in ``[cap/2, cap]`` with the cap doubling from ``base`` up to ``max``."""
    policy = SendRetryPolicy(base_delay_s=2, max_delay_s=10)
    rng = random.Random(1)
    bounds = [(1, 2), (2, 4), (4, 8), (5, 10), (5, 10)]
    for attempt, (low, high) in enumerate(bounds, start=1):
        assert low <= policy.delay_s(attempt, rng) <= high


async def test_memory_log_keeps_sent_final() -> None:
    """A notification once sent is never turned back into failed."""
    log = MemoryNotificationLog()
    notification_id = uuid.uuid4()
    await log.mark_sent(notification_id, NOW)
    await log.mark_failed(notification_id, "late refusal")
    assert (log.states[notification_id], log.attempts) == (NotificationState.SENT, [])
    assert log.sent_at == {notification_id: NOW}
