"""Per-unit credentials of the recipient API: one bearer key per recipient unit, stored hashed.

A recipient unit's system (a municipality's home health care, a health centre) pulls its own
deliveries and posts receipts with a key that names **exactly one unit**: there are no prefixes
or wildcards here, unlike the ingest gateway's keys (``producers.apikeys``), because the
recipient side is where patient data is read, and one unit must never read another's.

Keys are never stored. ``new_unit_key`` (or ``python -m hub.ops.keys UNIT``) mints a 256-bit
random key, prints the plaintext once and gives the entry to keep: a random salt and
``HMAC-SHA256(salt, key)``, hashed with the gateway's helper (``producers.apikeys.hash_api_key``)
so the hub has one way of hashing keys. A unit may have several entries (key rotation: add the
new key, move the system over, remove the old entry). Checking a key visits every entry with a
constant-time compare, so timing says nothing about which entry matched.

The file (YAML, or JSON by suffix)::

    units:
      - unit: SE2120000000-SYN2580HSV
        label: lulea-hsv-2027      # optional, shows in logs instead of the key
        salt: 1f0c...              # 32-128 hex digits
        key_hash: 9a4e...          # 64 hex digits
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from hub.errors import ConfigurationError
from producers.apikeys import hash_api_key
from topics.identifiers import HsaId

__all__ = [
    "UNIT_KEY_PREFIX",
    "AuthenticatedUnit",
    "UnitKeyEntry",
    "UnitKeyFile",
    "UnitKeyStore",
    "new_unit_key",
]

#: Minted unit keys start with this (the gateway's start with ``dhk_``), so a leaked key is
#: recognisable in a secret scanner and cannot be mistaken for an ingest key.
UNIT_KEY_PREFIX: Final = "dhu_"
_MIN_KEY_LENGTH: Final = 32
_MAX_KEY_LENGTH: Final = 512

_Hex = StringConstraints(pattern=r"^[0-9a-f]+$")


class UnitKeyEntry(BaseModel):
    """One unit's key as stored: the salt and the HMAC, never the key."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    unit: HsaId
    label: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,100}$")] | None = None
    salt: Annotated[str, _Hex, Field(min_length=32, max_length=128)]
    key_hash: Annotated[str, _Hex, Field(min_length=64, max_length=64)]


class UnitKeyFile(BaseModel):
    """The key file's shape."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    units: tuple[UnitKeyEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthenticatedUnit:
    """Who presented a valid key: the one unit it names, and the entry's label for logs."""

    unit: str
    label: str | None


def new_unit_key(unit: str, label: str | None = None) -> tuple[str, UnitKeyEntry]:
    """Mint a key for ``unit``: the plaintext (hand it out once) and the entry to store."""
    key = UNIT_KEY_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    entry = UnitKeyEntry(unit=unit, label=label, salt=salt, key_hash=hash_api_key(key, salt))
    return key, entry


class UnitKeyStore:
    """The entries the recipient API checks bearer keys against."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[UnitKeyEntry] = ()) -> None:
        self._entries = tuple(entries)
        hashes = [entry.key_hash for entry in self._entries]
        if len(set(hashes)) != len(hashes):
            msg = "unit keys: the same key_hash appears twice"
            raise ConfigurationError(msg)

    @classmethod
    def from_file(cls, path: Path) -> UnitKeyStore:
        """Load a key file (YAML, or JSON when the suffix is ``.json``) once at start-up."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"unit keys file {path}: cannot be read ({exc.strerror})"
            raise ConfigurationError(msg) from exc
        kind = "JSON" if path.suffix == ".json" else "YAML"
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            msg = f"unit keys file {path}: not valid {kind}"
            raise ConfigurationError(msg) from exc
        try:
            parsed = UnitKeyFile.model_validate(data if data is not None else {})
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            msg = f"unit keys file {path}: {fields}"
            raise ConfigurationError(msg) from exc
        return cls(parsed.units)

    @property
    def units(self) -> frozenset[str]:
        """The units that have at least one key."""
        return frozenset(entry.unit for entry in self._entries)

    def authenticate(self, presented: str | None) -> AuthenticatedUnit | None:
        """The unit whose key was presented; None if missing, of impossible length or unknown."""
        if not presented or not _MIN_KEY_LENGTH <= len(presented) <= _MAX_KEY_LENGTH:
            return None
        found: AuthenticatedUnit | None = None
        for entry in self._entries:
            # No early exit: every entry is checked whether or not one matched already.
            matched = secrets.compare_digest(hash_api_key(presented, entry.salt), entry.key_hash)
            if matched and found is None:
                found = AuthenticatedUnit(entry.unit, entry.label)
        return found


def _main(argv: list[str]) -> int:
    """``python -m hub.ops.keys UNIT [LABEL]``: mint a key, print it and its entry."""
    if not 1 <= len(argv) <= 2:
        sys.stderr.write("usage: python -m hub.ops.keys UNIT_HSA_ID [LABEL]\n")
        return 2
    try:
        key, entry = new_unit_key(argv[0], argv[1] if len(argv) == 2 else None)
    except ValidationError as exc:
        fields = ", ".join(
            str(e["loc"][0]) for e in exc.errors(include_input=False, include_url=False)
        )
        sys.stderr.write(f"invalid argument: {fields}\n")
        return 2
    sys.stdout.write(f"# give this key to {entry.unit}'s system once; it is not stored anywhere\n")
    sys.stdout.write(f"# key: {key}\n")
    sys.stdout.write(
        yaml.safe_dump(
            {"units": [entry.model_dump(mode="json", exclude_none=True)]}, sort_keys=False
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
