"""Deterministic ids: the same input always gives the same id, for ever."""

from __future__ import annotations

from uuid import UUID, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import ValidationFailed
from topics.ids import DELIVERY_NAMESPACE, delivery_id_for, delivery_id_text, escalation_id_for

MESSAGE_ID = UUID("00000000-0000-4000-8000-000000000001")
HEALTH_CENTRE = "SE2321000230-SYN2"
HOME_CARE = "SE2321000230-SYN3"

hsa_ids = st.from_regex(r"\ASE[0-9]{10}-[A-Za-z0-9]{1,31}\Z")


def test_delivery_id_is_pinned() -> None:
    """The delivery id of a given message and unit never changes between releases."""
    assert delivery_id_for(MESSAGE_ID, HEALTH_CENTRE) == UUID(
        "9a5fef0a-87a3-5741-8b03-be77c4c1fd0a"
    )


def test_escalation_id_is_pinned() -> None:
    """The escalation id of a given unit, level and deliveries never changes between releases."""
    assert escalation_id_for(HOME_CARE, 2, [UUID(int=1), UUID(int=2)]) == UUID(
        "e966b46d-48b5-5633-8661-9c7020b21b1d"
    )


@given(st.uuids(), hsa_ids, hsa_ids)
def test_delivery_ids_differ_per_unit(message_id: UUID, unit: str, other: str) -> None:
    """Two units get two deliveries of the same message; one unit always the same."""
    assert delivery_id_for(message_id, unit) == delivery_id_for(message_id, unit)
    assert (delivery_id_for(message_id, unit) == delivery_id_for(message_id, other)) == (
        unit == other
    )


@given(st.uuids(), st.uuids(), hsa_ids)
def test_delivery_ids_differ_per_message(first: UUID, second: UUID, unit: str) -> None:
    """Two messages to one unit are two deliveries."""
    assert (delivery_id_for(first, unit) == delivery_id_for(second, unit)) == (first == second)


@given(st.lists(st.uuids(), min_size=1, max_size=10), st.randoms())
def test_escalation_id_ignores_order_and_repetition(ids: list[UUID], rng: object) -> None:
    """A re-run scan that finds the same deliveries in another order gives the same id."""
    shuffled = [*ids, *ids[:2]]
    rng.shuffle(shuffled)  # type: ignore[attr-defined] # st.randoms() gives a random.Random
    assert escalation_id_for(HOME_CARE, 1, shuffled) == escalation_id_for(HOME_CARE, 1, ids)


def test_escalation_id_depends_on_unit_level_and_deliveries() -> None:
    """Changing any one of unit, level or the delivery set gives another digest id."""
    base = escalation_id_for(HOME_CARE, 1, [UUID(int=1)])
    variants = [
        escalation_id_for(HEALTH_CENTRE, 1, [UUID(int=1)]),
        escalation_id_for(HOME_CARE, 2, [UUID(int=1)]),
        escalation_id_for(HOME_CARE, 1, [UUID(int=1), UUID(int=2)]),
        escalation_id_for(HOME_CARE, 1, [UUID(int=2)]),
    ]
    assert len({base, *variants}) == 5


@pytest.mark.parametrize("unit", ["", "SE2321000230", "se2321000230-SYN2", "SE2321000230-SYN2\n"])
def test_ids_need_an_hsa_id(unit: str) -> None:
    """A unit that is not an HSA-id is a contract violation."""
    with pytest.raises(ValidationFailed, match=r"^unit: must be an HSA-id$"):
        delivery_id_for(MESSAGE_ID, unit)
    with pytest.raises(ValidationFailed, match=r"^unit: must be an HSA-id$"):
        escalation_id_for(unit, 1, [MESSAGE_ID])


@pytest.mark.parametrize("level", [0, 4, -1, True])
def test_escalation_levels_are_one_to_three(level: int) -> None:
    """Only levels 1, 2 and 3 exist."""
    with pytest.raises(ValidationFailed, match=r"^level: must be 1, 2 or 3$"):
        escalation_id_for(HOME_CARE, level, [MESSAGE_ID])


def test_escalation_needs_deliveries() -> None:
    """A digest of nothing has no id."""
    with pytest.raises(ValidationFailed, match=r"^delivery_ids: must not be empty$"):
        escalation_id_for(HOME_CARE, 1, [])


@given(st.uuids(), hsa_ids)
def test_delivery_id_is_uuid5_of_message_and_unit(message_id: UUID, unit: str) -> None:
    """The hand-rolled fast path equals ``uuid5(DELIVERY_NAMESPACE, "<message>|<unit>")``."""
    expected = uuid5(DELIVERY_NAMESPACE, f"{message_id}|{unit}")
    assert delivery_id_for(message_id, unit) == expected
    assert delivery_id_for(message_id, unit).version == 5
    assert delivery_id_text(message_id, unit) == str(expected)  # the router writes this text
