"""The Norrbotten reference files agree with each other."""

from __future__ import annotations

from hub.directory import load_directory
from hub.oncall import load_oncall_config
from hub.settings import NORRBOTTEN
from topics.catalogue import UnitKind


def test_every_unit_on_call_group_has_a_roster() -> None:
    """Each escalating unit's on-call group is a roster in oncall.yaml (none falls to fallback)."""
    directory = load_directory(NORRBOTTEN / "directory.yaml")
    rosters = load_oncall_config(NORRBOTTEN / "oncall.yaml").rosters
    missing = sorted(
        {
            u.on_call_group
            for u in directory.units
            if u.on_call_group and u.kind is not UnitKind.REGIONAL_OPERATIONS
        }
        - set(rosters)
    )
    assert missing == []


def test_every_municipal_unit_has_its_municipality_roster() -> None:
    """Municipal units escalate to jour-<kommunkod>, health centres to jour-primarvard."""
    directory = load_directory(NORRBOTTEN / "directory.yaml")
    for unit in directory.units:
        if unit.kind in (UnitKind.HOME_HEALTH_CARE, UnitKind.ASSESSMENT_UNIT):
            assert unit.on_call_group == f"jour-{unit.municipality_code}", unit.hsa_id
        if unit.kind is UnitKind.HEALTH_CENTRE:
            assert unit.on_call_group == "jour-primarvard", unit.hsa_id
