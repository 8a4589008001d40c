"""Signed links in notifications: a one-click receipt or acknowledgement without a password.

A link carries what it acts on and an expiry, signed with HMAC-SHA256 under
``Settings.link_secret``. It names ids only (a delivery, an escalation), never patient data,
and is refused once expired or if any part of it was changed.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlencode
from uuid import UUID

from hub.errors import ValidationFailed


class LinkAction(StrEnum):
    """What a signed link does."""

    RECEIPT = "kvittera"  # receipt one delivery
    ACKNOWLEDGE = "bekrafta"  # on-call acknowledges an escalation digest


class InvalidLink(ValidationFailed):
    """The link was changed, signed with another secret, or has expired."""


def _signature(secret: bytes, action: LinkAction, target: UUID, expires: int) -> str:
    payload = f"{action.value}:{target}:{expires}".encode()
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()[:32]


def sign(
    secret: bytes, *, base_url: str, action: LinkAction, target: UUID, now: datetime, ttl: timedelta
) -> str:
    """The absolute URL of a signed link for ``action`` on ``target``, valid for ``ttl``."""
    expires = int((now + ttl).timestamp())
    query = urlencode({"exp": expires, "sig": _signature(secret, action, target, expires)})
    return f"{base_url.rstrip('/')}/l/{action.value}/{target}?{query}"


def verify(
    secret: bytes, *, action: LinkAction, target: UUID, expires: int, signature: str, now: datetime
) -> None:
    """Raise `InvalidLink` unless the signature matches and the link has not expired."""
    expected = _signature(secret, action, target, expires)
    if not hmac.compare_digest(expected, signature):
        msg = "sig: the link's signature does not match"
        raise InvalidLink(msg)
    if now.timestamp() > expires:
        msg = "exp: the link has expired"
        raise InvalidLink(msg)
