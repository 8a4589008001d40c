"""Per-unit keys of the recipient API: minted, stored hashed, matched to exactly one unit."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import ConfigurationError
from hub.ops.keys import UNIT_KEY_PREFIX, AuthenticatedUnit, UnitKeyStore, new_unit_key
from producers.apikeys import hash_api_key

HERTSO = "SE2321000230-SYNHCHERTSO"
LULEA_HSV = "SE2120000000-SYN2580HSV"


def test_a_minted_key_names_its_unit_only() -> None:
    """Each key authenticates as its own unit; the other unit's key as the other unit."""
    hertso_key, hertso = new_unit_key(HERTSO, "hertso-2027")
    hsv_key, hsv = new_unit_key(LULEA_HSV)
    keys = UnitKeyStore([hertso, hsv])
    assert keys.authenticate(hertso_key) == AuthenticatedUnit(HERTSO, "hertso-2027")
    assert keys.authenticate(hsv_key) == AuthenticatedUnit(LULEA_HSV, None)
    assert keys.units == frozenset({HERTSO, LULEA_HSV})


def test_the_entry_keeps_a_salted_hash_not_the_key() -> None:
    """The stored entry is HMAC-SHA256 under a fresh salt (the gateway's helper), never the key."""
    key, entry = new_unit_key(HERTSO)
    assert key.startswith(UNIT_KEY_PREFIX)
    assert entry.key_hash == hash_api_key(key, entry.salt)
    assert key not in entry.model_dump_json()
    _, again = new_unit_key(HERTSO)
    assert again.salt != entry.salt


@pytest.mark.parametrize(
    "presented",
    [None, "", "dhu_short", "x" * 513, UNIT_KEY_PREFIX + "A" * 43],
)
def test_missing_malformed_or_unknown_keys_are_nobody(presented: str | None) -> None:
    """No key, a key of impossible length or a key nobody holds authenticates as no unit."""
    _, entry = new_unit_key(HERTSO)
    assert UnitKeyStore([entry]).authenticate(presented) is None


def test_a_unit_may_hold_two_keys_while_rotating() -> None:
    """Old and new keys of one unit both work until the old entry is removed."""
    old_key, old = new_unit_key(HERTSO, "old")
    new_key, new = new_unit_key(HERTSO, "new")
    keys = UnitKeyStore([old, new])
    assert [keys.authenticate(k) for k in (old_key, new_key)] == [
        AuthenticatedUnit(HERTSO, "old"),
        AuthenticatedUnit(HERTSO, "new"),
    ]
    assert UnitKeyStore([new]).authenticate(old_key) is None


def test_the_same_hash_twice_is_a_configuration_error() -> None:
    """A copied entry is refused at start-up."""
    _, entry = new_unit_key(HERTSO)
    with pytest.raises(ConfigurationError) as caught:
        UnitKeyStore([entry, entry])
    assert str(caught.value) == "unit keys: the same key_hash appears twice"


def test_keys_load_from_yaml_and_json(tmp_path: Path) -> None:
    """The key file is read as YAML, or as JSON by its suffix."""
    key, entry = new_unit_key(HERTSO)
    yaml_file = tmp_path / "keys.yaml"
    yaml_file.write_text(
        f"units:\n  - unit: {entry.unit}\n    salt: {entry.salt}\n    key_hash: {entry.key_hash}\n",
        encoding="utf-8",
    )
    json_file = tmp_path / "keys.json"
    json_file.write_text('{"units": [' + entry.model_dump_json() + "]}", encoding="utf-8")
    for path in (yaml_file, json_file):
        assert UnitKeyStore.from_file(path).authenticate(key) == AuthenticatedUnit(HERTSO, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "units:\n  - unit: 19121212-1212\n    salt: "
            + "a" * 32
            + "\n    key_hash: "
            + "b" * 64,
            "units.0.unit: must be an HSA-id",
        ),
        ("units:\n  - unit: SE2321000230-SYNX\n    salt: zz\n    key_hash: b", "units.0.salt"),
        ("units: [", "not valid YAML"),
        ("units:\n  - unit: SE2321000230-SYNX\n    secret: x", "units.0.secret: Extra inputs"),
    ],
)
def test_a_bad_key_file_names_the_field_not_the_value(
    tmp_path: Path, text: str, message: str
) -> None:
    """A broken key file stops start-up with the field path; no value is echoed."""
    path = tmp_path / "keys.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        UnitKeyStore.from_file(path)
    assert message in str(caught.value)
    assert "19121212" not in str(caught.value)


def test_an_unreadable_key_file_says_so(tmp_path: Path) -> None:
    """A missing key file is a configuration error naming the file."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigurationError) as caught:
        UnitKeyStore.from_file(missing)
    assert str(caught.value).startswith(f"unit keys file {missing}: cannot be read")
