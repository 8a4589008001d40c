"""The consume guard: the one middleware every hub consumer runs its handlers in.

For each record it binds the log context (topic, partition, offset), runs the handler, and
decides what an exception means:

* a **transient** error (``HubError.retriable``, a retriable aiokafka error, a database
  ``OperationalError``, ``OSError``/timeouts, or an exception the hub has no class for) is retried
  in place with bounded, jittered exponential backoff — well inside ``max_poll_interval_ms``;
* a **permanent** error (validation, unknown type or version, unroutable, unknown delivery, ...)
  goes at once to the dead-letter topic, as does a transient one whose retries ran out;
* the dead-letter record keeps the original bytes and headers, the reason, the stage, the
  attempt count and the first and last failure times; only when the broker has acknowledged it
  does the handler "succeed", so the ack policy commits the offset. If the dead-letter publish
  itself fails, the exception propagates and the offset stays uncommitted (the record is
  redelivered): a record is never dropped silently, and never loops for ever.

FastStream runs broker middlewares inside its acknowledgement middleware, so returning normally
from here is what lets the offset be committed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import BaseMiddleware
from faststream.message import StreamMessage

from hub.clock import Clock
from hub.errors import HubError
from hub.logs import get_logger
from hub.publishing import Outbox, Outgoing
from topics.deadletter import DeadLetterReason
from topics.messages import AlertSeverity, DeadLetter, OpsAlert
from topics.topics import TopicName

log = get_logger(__name__)

#: Reasons that also raise an operations alert: a patient's message must never be silently
#: unroutable, and a receipt nobody can match means a recipient system is misconfigured.
ALERT_REASONS = frozenset(
    {DeadLetterReason.UNROUTABLE, DeadLetterReason.WRONG_RECIPIENT, DeadLetterReason.INTERNAL}
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter."""

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """How long to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(cap / 2, cap)


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same record again later may succeed."""
    if isinstance(exc, HubError):
        return exc.retriable
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    if isinstance(exc, OSError | TimeoutError):
        return True
    # SQLAlchemy's OperationalError (database locked, connection lost) without importing it here.
    return type(exc).__name__ in {"OperationalError", "InterfaceError", "DBAPIError"}


def reason_for(exc: BaseException) -> DeadLetterReason:
    """The dead-letter reason of an exception that will not be retried (again).

    A hub error names its own reason (a transient one names what its exhaustion means, e.g.
    ``TransientError`` -> ``retries_exhausted``); anything else is ``retries_exhausted`` when it
    looked transient, else ``internal`` (a bug: the hub has no class for it).
    """
    if isinstance(exc, HubError):
        return exc.reason
    return DeadLetterReason.RETRIES_EXHAUSTED if is_transient(exc) else DeadLetterReason.INTERNAL


def _record_headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {
        str(k): v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        for k, v in (record.headers or ())
    }


class ConsumeGuard:
    """Builds the middleware for one consumer stage (``router``, ``tracker.receipts``, ...)."""

    def __init__(
        self,
        stage: str,
        outbox: Outbox,
        clock: Clock,
        retry: RetryPolicy | None = None,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.stage = stage
        self.outbox = outbox
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._sleep = sleep

    def middleware(self) -> Callable[..., BaseMiddleware]:
        """The middleware factory to pass as ``middlewares=[guard.middleware()]``."""
        guard = self

        class _Guard(BaseMiddleware):
            async def consume_scope(
                self,
                call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
                msg: StreamMessage[Any],
            ) -> Any:
                return await guard.run(call_next, msg)

        return _Guard

    async def run(
        self,
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        message: StreamMessage[Any],
    ) -> Any:
        """Run the handler with retries; dead-letter what cannot be handled."""
        record = message.raw_message
        batch = isinstance(record, tuple)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            stage=self.stage,
            topic=getattr(record[0] if batch else record, "topic", None),
            partition=None if batch else getattr(record, "partition", None),
            offset=None if batch else getattr(record, "offset", None),
            batch_size=len(record) if batch else None,
        )
        first_failure: datetime | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call_next(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the one broad except: classify, never drop
                now = self.clock.now()
                first_failure = first_failure or now
                transient = is_transient(exc)
                if transient and attempt < self.retry.max_attempts:
                    delay = self.retry.delay_s(attempt, self._rng)
                    log.warning(
                        "consume.retry",
                        attempt=attempt,
                        delay_s=round(delay, 3),
                        error_class=type(exc).__name__,
                    )
                    await self._sleep(delay)
                    continue
                if batch:
                    # A batch handler refuses its bad records one by one (`refuse`); what gets
                    # here failed the whole batch (broker or database down): the batch stays
                    # uncommitted and is consumed again, record by record, after the rewind.
                    log.critical(
                        "consume.batch_failed", attempts=attempt, error_class=type(exc).__name__
                    )
                    raise
                await self.outbox.send_many(self.letters(record, exc, attempt, first_failure, now))
                return None

    def refuse(self, record: ConsumerRecord[Any, Any], exc: Exception) -> list[Outgoing]:
        """For batch handlers: the dead letter of one record that cannot be handled.

        A transient error is re-raised instead: the whole batch is then retried (its records
        are idempotent), so a record is never dead-lettered for a passing outage.
        """
        if is_transient(exc):
            raise exc
        now = self.clock.now()
        return self.letters(record, exc, 1, now, now)

    def letters(
        self,
        record: ConsumerRecord[Any, Any],
        exc: Exception,
        attempts: int,
        first_failure: datetime,
        last_failure: datetime,
    ) -> list[Outgoing]:
        """The dead-letter record (and, for some reasons, the ops alert) of one refused record."""
        reason = reason_for(exc)
        # Hub errors carry messages written to be safe; anything else may quote input, so only
        # its class is kept (the original bytes are in the record for whoever may read them).
        detail = str(exc) if isinstance(exc, HubError) else f"unexpected {type(exc).__name__}"
        letter = DeadLetter(
            original_value=bytes(record.value or b""),
            original_headers=_record_headers(record),
            reason=reason,
            stage=self.stage,
            error_class=type(exc).__name__,
            detail=detail[:4000],
            attempts=attempts,
            first_failure_at=first_failure,
            last_failure_at=last_failure,
            origin_topic=record.topic,
            origin_partition=record.partition,
            origin_offset=record.offset,
        )
        key = record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else self.stage
        items = [Outgoing(TopicName.DEAD_LETTER, letter, key)]
        # A refused escalation means on-call staff were never told: always worth an alert.
        if reason in ALERT_REASONS or self.stage == "notifier":
            origin = f"{record.topic}:{record.partition}:{record.offset}"
            items.append(
                Outgoing(
                    TopicName.OPS_ALERTS,
                    OpsAlert(
                        alert_id=uuid5(NAMESPACE_URL, f"dead-letter:{origin}"),
                        kind=f"dead_letter.{reason.value}",
                        severity=AlertSeverity.CRITICAL,
                        summary=f"{self.stage}: refused ({reason.value}): {detail[:300]}",
                        raised_at=last_failure,
                        details={
                            "stage": self.stage,
                            "origin_topic": record.topic,
                            "origin_partition": str(record.partition),
                            "origin_offset": str(record.offset),
                        },
                    ),
                    f"dead_letter.{reason.value}",
                )
            )
        log.error(
            "consume.dead_lettered",
            reason=reason.value,
            error_class=type(exc).__name__,
            attempts=attempts,
            origin_offset=record.offset,
            detail=detail[:500],
        )
        return items
