"""Dead-letter reason codes: the closed set of reasons a message can be refused for."""

from __future__ import annotations

from enum import StrEnum


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter topic instead of being processed."""

    UNDECODABLE = "undecodable"  # not JSON / not UTF-8 / truncated
    INVALID = "invalid"  # decoded, but a field breaks the schema or a domain rule
    UNKNOWN_TYPE = "unknown_type"  # message type not in topics.catalogue.MessageType
    UNKNOWN_VERSION = "unknown_version"  # schema version header this hub does not know
    UNROUTABLE = "unroutable"  # recipients cannot be determined (unknown unit, no admission)
    UNKNOWN_DELIVERY = "unknown_delivery"  # a receipt for a delivery the hub never made
    WRONG_RECIPIENT = "wrong_recipient"  # a receipt by a unit that was not the recipient
    RETRIES_EXHAUSTED = "retries_exhausted"  # a transient error that did not clear in time
    INTERNAL = "internal"  # a bug: an exception the hub has no class for
