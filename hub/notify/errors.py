"""Errors of the notifier, mapped from SMTP and HTTP library errors in the channel adapters.

Their messages carry only a channel name, an error class and a status code (``SMTPDataError
451``, ``HTTP 503``): never a recipient address, a server's reply text or anything from the
digest, because they end up in logs, in the attempts table and in dead-letter records.
"""

from __future__ import annotations

from hub.errors import HubError, TransientError
from topics.deadletter import DeadLetterReason

__all__ = [
    "ChannelUnavailable",
    "CircuitOpen",
    "NotificationRefused",
    "NotificationsPending",
]


class ChannelUnavailable(TransientError):
    """The channel could not take the notification now: connection refused, a timeout, an SMTP
    4xx reply, an HTTP 5xx/408/429. Trying again later may succeed."""

    def __init__(self, channel: str, detail: str) -> None:
        super().__init__(f"{channel}: {detail}")
        self.channel = channel
        self.detail = detail


class CircuitOpen(ChannelUnavailable):
    """The channel's circuit breaker is open: no attempt was made (the channel failed recently)."""

    def __init__(self, channel: str) -> None:
        super().__init__(channel, "CircuitOpen")


class NotificationRefused(HubError):
    """The receiving side refused the notification for good (SMTP 5xx, HTTP 4xx, no channel for
    the address): sending it again unchanged will not help.

    Dead-lettered as ``unroutable`` so that the consume guard raises an operations alert as well:
    a refused notification means somebody who should have been told was not.
    """

    reason = DeadLetterReason.UNROUTABLE

    def __init__(self, channel: str, detail: str) -> None:
        super().__init__(f"{channel}: {detail}")
        self.channel = channel
        self.detail = detail


class NotificationsPending(TransientError):
    """Some notifications of a digest were still not sent when the in-process retries ran out.

    Raised by ``Notifier.handle`` so that the consume guard tries the whole digest again later
    (the ones already sent are skipped by id) and, if that does not help either, dead-letters it
    with ``retries_exhausted``: the digest is never dropped.
    """
