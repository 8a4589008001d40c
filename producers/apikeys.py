"""Who may post to the ingest gateway, and as which units: API keys per sending system.

This is the framework-free half of the gateway (no FastAPI here), so ``hub.settings`` can hold a
``GatewaySettings`` without importing the web stack.

Keys are never stored. An operator mints a key with ``new_api_key`` (or ``python -m
producers.apikeys SYSTEM UNIT...``), hands the plaintext to the sending system once, and keeps
only the entry: a random per-key salt and ``HMAC-SHA256(salt, key)``. A fast hash is enough
because the keys are 256-bit random tokens, not passwords a person chose: there is no dictionary
to try. Checking a presented key computes its HMAC under every entry's salt and compares with
``hmac.compare_digest``, visiting every entry, so the time taken says nothing about which entry
(if any) matched.

Each entry names the units its system may send for (*the envelope's* ``sender``): exact HSA-ids
(``SE2321000230-SYN1``) or prefixes ending in ``*``. A prefix must include the whole organisation
number (``SE2321000230-*``, or narrower ``SE2321000230-SUN*``), so no entry can say "every unit
of every organisation"; a ward cannot send as another hospital's ward.

The file (YAML or JSON, by suffix) looks like::

    keys:
      - system: sunderby-journal
        salt: 1f0c...            # 32 hex digits
        key_hash: 9a4e...        # 64 hex digits
        units: ["SE2321000230-SUN*"]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Final

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from hub.errors import ConfigurationError
from hub.settings import GatewaySettings

__all__ = [
    "API_KEY_PREFIX",
    "DEFAULT_MAX_BODY_BYTES",
    "ApiKeyEntry",
    "ApiKeyFile",
    "ApiKeyStore",
    "GatewaySettings",
    "hash_api_key",
    "new_api_key",
]

#: Minted keys start with this, so a leaked key is recognisable in a secret scanner.
API_KEY_PREFIX: Final = "dhk_"
DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024
# Anything longer is not one of our keys; refuse it before hashing.
_MAX_PRESENTED_KEY_LENGTH: Final = 512
_MIN_KEY_LENGTH: Final = 32

_UNIT_PATTERN = re.compile(r"SE[0-9]{10}-[A-Za-z0-9]{1,31}|SE[0-9]{10}(?:-[A-Za-z0-9]{0,30})?\*")


def _unit_pattern(value: str) -> str:
    if _UNIT_PATTERN.fullmatch(value) is None:
        msg = (
            "must be an HSA-id, or a prefix ending in '*' that includes the whole "
            "organisation number (SE + 10 digits)"
        )
        raise ValueError(msg)
    return value


_UnitPattern = Annotated[str, AfterValidator(_unit_pattern)]


def _some_units(values: tuple[str, ...]) -> tuple[str, ...]:
    # Not ``min_length``: on tuples pydantic adds a spurious too_short when an item is invalid.
    if not values:
        msg = "must name at least one unit"
        raise ValueError(msg)
    return values


_Hex = StringConstraints(pattern=r"^[0-9a-f]+$")


class ApiKeyEntry(BaseModel):
    """One sending system's key, as stored: the salt and HMAC, never the key."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    system: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,100}$")]
    salt: Annotated[str, _Hex, Field(min_length=32, max_length=128)]
    key_hash: Annotated[str, _Hex, Field(min_length=64, max_length=64)]
    units: Annotated[tuple[_UnitPattern, ...], Field(max_length=1000), AfterValidator(_some_units)]

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is this entry's key (constant time for a given length)."""
        return hmac.compare_digest(hash_api_key(presented, self.salt), self.key_hash)

    def may_send_as(self, hsa_id: str) -> bool:
        """Whether this system may send messages whose sender is ``hsa_id``."""
        for pattern in self.units:
            if pattern.endswith("*"):
                if hsa_id.startswith(pattern[:-1]):
                    return True
            elif hsa_id == pattern:
                return True
        return False


class ApiKeyFile(BaseModel):
    """The key file's shape: a list of entries with distinct system names."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    keys: tuple[ApiKeyEntry, ...] = ()


def hash_api_key(key: str, salt: str) -> str:
    """``HMAC-SHA256(salt, key)`` as hex: what an entry stores."""
    return hmac.new(bytes.fromhex(salt), key.encode("utf-8"), hashlib.sha256).hexdigest()


def new_api_key(system: str, units: Iterable[str]) -> tuple[str, ApiKeyEntry]:
    """Mint a random key for ``system``: the plaintext (give it out once) and the entry to store."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    entry = ApiKeyEntry(
        system=system, salt=salt, key_hash=hash_api_key(key, salt), units=tuple(units)
    )
    return key, entry


class ApiKeyStore:
    """The entries the gateway checks keys against."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[ApiKeyEntry] = ()) -> None:
        self._entries = tuple(entries)
        systems = [entry.system for entry in self._entries]
        if len(set(systems)) != len(systems):
            msg = "api keys: each system may appear only once"
            raise ConfigurationError(msg)

    @classmethod
    def from_file(cls, path: Path) -> ApiKeyStore:
        """Load a key file (YAML, or JSON when the suffix is ``.json``); read once at start-up."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"api keys file {path}: cannot be read ({exc.strerror})"
            raise ConfigurationError(msg) from exc
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            msg = f"api keys file {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}"
            raise ConfigurationError(msg) from exc
        try:
            parsed = ApiKeyFile.model_validate(data if data is not None else {})
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            msg = f"api keys file {path}: {fields}"
            raise ConfigurationError(msg) from exc
        return cls(parsed.keys)

    @property
    def systems(self) -> tuple[str, ...]:
        """The names of the systems that have a key."""
        return tuple(entry.system for entry in self._entries)

    def authenticate(self, presented: str | None) -> ApiKeyEntry | None:
        """The entry whose key was presented; None if missing, of impossible length or unknown."""
        if not presented or not _MIN_KEY_LENGTH <= len(presented) <= _MAX_PRESENTED_KEY_LENGTH:
            return None
        found: ApiKeyEntry | None = None
        for entry in self._entries:
            # No early exit: every entry is checked whether or not one matched already.
            if entry.matches(presented) and found is None:
                found = entry
        return found


def _main(argv: list[str]) -> int:
    """``python -m producers.apikeys SYSTEM UNIT...``: mint a key, print it and its entry."""
    if len(argv) < 2:
        sys.stderr.write("usage: python -m producers.apikeys SYSTEM UNIT [UNIT...]\n")
        return 2
    key, entry = new_api_key(argv[0], argv[1:])
    sys.stdout.write(f"# give this key to {entry.system} once; it is not stored anywhere\n")
    sys.stdout.write(f"# key: {key}\n")
    sys.stdout.write(yaml.safe_dump({"keys": [entry.model_dump(mode="json")]}, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
