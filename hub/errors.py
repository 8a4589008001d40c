"""One hierarchy for every error the hub raises on purpose.

Retry logic reads only the two class variables: ``retriable`` (try again later) and ``reason``
(what the dead-letter record says when it is not retried). Messages name the field path and the
rule, never a value that may be patient data.
"""

from __future__ import annotations

from typing import ClassVar

from topics.deadletter import DeadLetterReason


class HubError(Exception):
    """Root of the hub's own errors."""

    retriable: ClassVar[bool] = False
    reason: ClassVar[DeadLetterReason] = DeadLetterReason.INTERNAL


class ValidationFailed(HubError, ValueError):
    """Input breaks the contract; the message names the field path and the rule."""

    reason = DeadLetterReason.INVALID


class UndecodableMessage(HubError):
    """The bytes on the wire are not a message at all (not UTF-8, not JSON, truncated)."""

    reason = DeadLetterReason.UNDECODABLE


class UnknownMessageType(HubError):
    """The message type is not in the catalogue; it is refused, never guessed at."""

    reason = DeadLetterReason.UNKNOWN_TYPE


class UnknownSchemaVersion(HubError):
    """The schema-version header names a version this hub does not understand."""

    reason = DeadLetterReason.UNKNOWN_VERSION


class Unroutable(HubError):
    """The recipients of a message cannot be determined from the directory and episode state."""

    reason = DeadLetterReason.UNROUTABLE


class UnknownDelivery(HubError):
    """A receipt names a delivery the hub never made."""

    reason = DeadLetterReason.UNKNOWN_DELIVERY


class WrongRecipient(HubError):
    """A receipt comes from a unit that was not the delivery's recipient."""

    reason = DeadLetterReason.WRONG_RECIPIENT


class TransientError(HubError):
    """Something outside the hub is briefly unavailable (broker, database, SMTP): retry."""

    retriable = True
    reason = DeadLetterReason.RETRIES_EXHAUSTED


class ConfigurationError(HubError):
    """Configuration or reference data (directory, rosters, policies) is invalid."""
