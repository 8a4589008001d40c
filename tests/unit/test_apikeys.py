"""Gateway API keys: stored as salted HMACs, checked in constant time, scoped to units."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import ConfigurationError
from producers.apikeys import (
    API_KEY_PREFIX,
    ApiKeyEntry,
    ApiKeyStore,
    GatewaySettings,
    hash_api_key,
    new_api_key,
)

KEY, ENTRY = new_api_key("sunderby-journal", ["SE2321000230-SUN*", "SE2321000230-SYNHCHERTSO"])
OTHER_KEY, OTHER = new_api_key("pitea-journal", ["SE2321000230-PIT*"])
STORE = ApiKeyStore([ENTRY, OTHER])


def test_minted_key_is_long_random_and_not_stored() -> None:
    """A minted key has the dhk_ prefix and 256 random bits; the entry holds only salt and HMAC."""
    assert KEY.startswith(API_KEY_PREFIX)
    assert len(KEY) == len(API_KEY_PREFIX) + 43
    assert KEY not in ENTRY.model_dump_json()
    assert ENTRY.key_hash == hash_api_key(KEY, ENTRY.salt)
    assert new_api_key("x", ["SE2321000230-SUN*"])[0] != KEY


def test_each_key_authenticates_its_own_entry() -> None:
    """The store finds the entry whose key was presented."""
    assert STORE.authenticate(KEY) == ENTRY
    assert STORE.authenticate(OTHER_KEY) == OTHER


@pytest.mark.parametrize(
    "presented",
    [None, "", KEY[:-1], KEY + "x", KEY.upper(), "dhk_short", "x" * 10_000],
    ids=["none", "empty", "truncated", "extended", "case-changed", "short", "huge"],
)
def test_other_keys_are_refused(presented: str | None) -> None:
    """Anything but an exact key is refused."""
    assert STORE.authenticate(presented) is None


@given(st.text(min_size=32, max_size=80))
def test_no_other_text_authenticates(presented: str) -> None:
    """No text other than the two minted keys authenticates."""
    expected = {KEY: ENTRY, OTHER_KEY: OTHER}.get(presented)
    assert STORE.authenticate(presented) == expected


def test_same_key_under_another_salt_hashes_differently() -> None:
    """The salt makes two entries' hashes of one key unrelated."""
    assert hash_api_key(KEY, "00" * 16) != hash_api_key(KEY, "01" * 16)


@pytest.mark.parametrize(
    ("sender", "allowed"),
    [
        ("SE2321000230-SUNMED", True),
        ("SE2321000230-SUN", True),
        ("SE2321000230-SYNHCHERTSO", True),
        ("SE2321000230-SYNHCHERTSO2", False),
        ("SE2321000230-PITMED", False),
        ("SE2321000231-SUNMED", False),
        ("se2321000230-SUNMED", False),
    ],
)
def test_a_key_sends_only_for_its_units(sender: str, allowed: bool) -> None:
    """Exact HSA-ids match exactly; prefixes match what starts with them."""
    assert ENTRY.may_send_as(sender) is allowed


@pytest.mark.parametrize(
    "unit", ["*", "SE*", "SE232100023*", "SE2321000230-SUN?", "", "SE2321000230-"]
)
def test_units_broader_than_one_organisation_are_refused(unit: str) -> None:
    """A unit pattern must include a whole organisation number."""
    with pytest.raises(ValueError, match="must be an HSA-id, or a prefix ending in"):
        ApiKeyEntry(system="x", salt="00" * 16, key_hash="0" * 64, units=(unit,))


def test_whole_organisation_prefix_is_allowed() -> None:
    """SE + organisation number + * covers every unit of that organisation."""
    entry = ApiKeyEntry(system="x", salt="00" * 16, key_hash="0" * 64, units=("SE2321000230*",))
    assert entry.may_send_as("SE2321000230-ANY") is True
    assert entry.may_send_as("SE2321000231-ANY") is False


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_key_file_round_trips(tmp_path: Path, suffix: str) -> None:
    """A store loaded from a YAML or JSON file authenticates the keys it was minted for."""
    data = {"keys": [ENTRY.model_dump(mode="json"), OTHER.model_dump(mode="json")]}
    path = tmp_path / f"keys{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    store = ApiKeyStore.from_file(path)
    assert store.systems == ("sunderby-journal", "pitea-journal")
    assert store.authenticate(KEY) == ENTRY


def test_empty_key_file_has_no_keys(tmp_path: Path) -> None:
    """An empty file is a store with no keys: every request is unauthorised."""
    path = tmp_path / "keys.yaml"
    path.write_text("")
    assert ApiKeyStore.from_file(path).authenticate(KEY) is None


def test_bad_key_file_names_the_field(tmp_path: Path) -> None:
    """A malformed entry stops loading with the path of the bad field."""
    entry = ENTRY.model_dump(mode="json")
    entry["units"] = ["*"]
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"keys": [entry]}))
    with pytest.raises(ConfigurationError) as caught:
        ApiKeyStore.from_file(path)
    assert str(caught.value) == (
        f"api keys file {path}: keys.0.units.0: Value error, must be an HSA-id, or a prefix "
        "ending in '*' that includes the whole organisation number (SE + 10 digits)"
    )


def test_missing_or_unparsable_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A file that cannot be read or parsed is a ConfigurationError naming the file."""
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigurationError, match=r"absent.yaml: cannot be read"):
        ApiKeyStore.from_file(missing)
    broken = tmp_path / "keys.json"
    broken.write_text("{")
    with pytest.raises(ConfigurationError, match=r"keys.json: not valid JSON"):
        ApiKeyStore.from_file(broken)


def test_a_system_appears_once() -> None:
    """Two entries for one system are a configuration error."""
    _, again = new_api_key("sunderby-journal", ["SE2321000230-SUN*"])
    with pytest.raises(ConfigurationError, match="each system may appear only once"):
        ApiKeyStore([ENTRY, again])


def test_gateway_defaults() -> None:
    """The gateway defaults: no key file, 256 KiB bodies, 10,000 remembered ids, 2 s health."""
    assert GatewaySettings().model_dump() == {
        "api_keys_file": None,
        "max_body_bytes": 262_144,
        "idempotency_cache_size": 10_000,
        "health_timeout_s": 2.0,
    }


def test_an_entry_names_at_least_one_unit() -> None:
    """An entry without units could send for nobody: refused."""
    with pytest.raises(ValueError, match="must name at least one unit"):
        ApiKeyEntry(system="x", salt="00" * 16, key_hash="0" * 64, units=())
