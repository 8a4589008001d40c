"""Routing: who receives each message of an episode, against the Norrbotten reference directory.

Expected recipients are written out by hand as HSA-ids from deploy/norrbotten/directory.yaml,
never computed from the router's own tables.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.directory import Directory, Unit, load_directory
from hub.errors import Unroutable
from hub.routing import (
    DeliveredMessage,
    DeliveryRole,
    EpisodeState,
    Redelivery,
    RoutingDecision,
    RoutingInput,
    Target,
    route,
)
from topics.catalogue import MessageType, UnitKind

REFERENCE = Path(__file__).resolve().parents[2] / "deploy" / "norrbotten" / "directory.yaml"

SUNDERBY_MED = "SE2321000230-SYNSUNMED"
SUNDERBY_IVA = "SE2321000230-SYNSUNIVA"  # inactive in the reference file
PITEA_MED = "SE2321000230-SYNPITMED"
KIRUNA_WARD = "SE2321000230-SYNKIRVA"
HERTSO = "SE2321000230-SYNHCHERTSO"
BJORKNAS = "SE2321000230-SYNHCBJORKNAS"
CEDERKLINIKEN = "SE5560000000-SYNHCCEDERKLINIKEN"
LAPONIA = "SE2321000230-SYNHCLAPONIA"
LULEA_HHC = "SE2120000000-SYN2580HSV"
LULEA_AU = "SE2120000000-SYN2580BIS"
BODEN_HHC = "SE2120000000-SYN2582HSV"
BODEN_AU = "SE2120000000-SYN2582BIS"
ALVSBYN_HHC = "SE2120000000-SYN2560HSV"
ALVSBYN_AU = "SE2120000000-SYN2560BIS"
KIRUNA_HHC = "SE2120000000-SYN2584HSV"
KIRUNA_AU = "SE2120000000-SYN2584BIS"
REGIONAL_OPS = "SE2321000230-SYNREGOPS"

WARD = UnitKind.HOSPITAL_WARD
HC = UnitKind.HEALTH_CENTRE
HHC = UnitKind.HOME_HEALTH_CARE
AU = UnitKind.ASSESSMENT_UNIT
EPISODE = "episode-1"


def mid(n: int) -> UUID:
    return UUID(int=n)


def msg(
    n: int,
    message_type: MessageType,
    sender: str = SUNDERBY_MED,
    *,
    listed_health_centre: str | None = None,
    home_municipality: str | None = None,
    recipients: tuple[str, ...] = (),
    cancelled_message_id: UUID | None = None,
) -> RoutingInput:
    return RoutingInput(
        message_id=mid(n),
        message_type=message_type,
        episode_id=EPISODE,
        sender=sender,
        listed_health_centre=listed_health_centre,
        home_municipality=home_municipality,
        recipients=recipients,
        cancelled_message_id=cancelled_message_id,
    )


def admission(
    n: int = 1, hc: str = HERTSO, municipality: str = "2580", sender: str = SUNDERBY_MED
) -> RoutingInput:
    return msg(
        n,
        MessageType.ADMISSION_NOTICE,
        sender,
        listed_health_centre=hc,
        home_municipality=municipality,
    )


def to(unit: str, kind: UnitKind) -> Target:
    return Target(unit, kind, DeliveryRole.RECIPIENT)


def left(unit: str, kind: UnitKind) -> Target:
    return Target(unit, kind, DeliveryRole.LEFT_RECIPIENT_SET)


def again(n: int, unit: str, kind: UnitKind) -> Redelivery:
    return Redelivery(mid(n), Target(unit, kind, DeliveryRole.HISTORY))


def units(decision: RoutingDecision) -> list[str]:
    return [t.unit_hsa_id for t in decision.targets]


def run(directory: Directory, *inputs: RoutingInput) -> tuple[RoutingDecision, EpisodeState]:
    """Route inputs in order; return the last decision and the state after it."""
    state: EpisodeState | None = None
    decision: RoutingDecision | None = None
    for inp in inputs:
        decision = route(inp, state, directory)
        state = decision.new_state
    assert decision is not None
    assert state is not None
    return decision, state


def derived(
    directory: Directory, *, deactivate: tuple[str, ...] = (), add: tuple[Unit, ...] = ()
) -> Directory:
    """The reference directory with some units deactivated and others added."""
    return Directory(
        municipalities=directory.municipalities,
        hospitals=directory.hospitals,
        units=(
            *(replace(u, active=False) if u.hsa_id in deactivate else u for u in directory.units),
            *add,
        ),
    )


def unroutable_reason(inp: RoutingInput, state: EpisodeState | None, directory: Directory) -> str:
    with pytest.raises(Unroutable) as info:
        route(inp, state, directory)
    return str(info.value)


@pytest.fixture(scope="module")
def ref() -> Directory:
    return load_directory(REFERENCE)


@pytest.fixture
def admitted(ref: Directory) -> EpisodeState:
    """Sunderby medicine ward, patient listed at Hertsö, living in Luleå."""
    state = route(admission(), None, ref).new_state
    assert state is not None
    return state


# --- the admission notice -----------------------------------------------------------------------


def test_admission_at_sunderby_for_hertso_and_lulea(ref: Directory) -> None:
    """Hertsö hälsocentral and Luleå's home health care and assessment unit, nothing else."""
    decision = route(admission(), None, ref)
    assert decision == RoutingDecision(
        targets=(to(HERTSO, HC), to(LULEA_HHC, HHC), to(LULEA_AU, AU)),
        new_state=EpisodeState(
            episode_id=EPISODE,
            ward=SUNDERBY_MED,
            listed_health_centre=HERTSO,
            home_municipality="2580",
            recipients=(HERTSO, LULEA_HHC, LULEA_AU),
            delivered=(
                DeliveredMessage(
                    mid(1), MessageType.ADMISSION_NOTICE, (HERTSO, LULEA_HHC, LULEA_AU)
                ),
            ),
            discharged=False,
        ),
        history=(),
    )


@pytest.mark.parametrize(
    ("ward", "hc", "municipality", "expected"),
    [
        (PITEA_MED, CEDERKLINIKEN, "2560", [CEDERKLINIKEN, ALVSBYN_HHC, ALVSBYN_AU]),
        (KIRUNA_WARD, LAPONIA, "2584", [LAPONIA, KIRUNA_HHC, KIRUNA_AU]),
        (SUNDERBY_MED, BJORKNAS, "2580", [BJORKNAS, LULEA_HHC, LULEA_AU]),
    ],
)
def test_admission_examples(
    ref: Directory, ward: str, hc: str, municipality: str, expected: list[str]
) -> None:
    """The listed health centre and the home municipality are independent of each other."""
    decision = route(admission(hc=hc, municipality=municipality, sender=ward), None, ref)
    assert units(decision) == expected
    assert decision.new_state is not None
    assert decision.new_state.ward == ward


# --- later messages of the episode --------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_type", "sender", "expected"),
    [
        (
            MessageType.PLANNING_DOCUMENT,
            SUNDERBY_MED,
            [to(HERTSO, HC), to(LULEA_HHC, HHC), to(LULEA_AU, AU)],
        ),
        (
            MessageType.DISCHARGE_DATE_CHANGED,
            SUNDERBY_MED,
            [to(HERTSO, HC), to(LULEA_HHC, HHC), to(LULEA_AU, AU)],
        ),
        (
            MessageType.READY_FOR_DISCHARGE,
            SUNDERBY_MED,
            [to(HERTSO, HC), to(LULEA_HHC, HHC), to(LULEA_AU, AU)],
        ),
        (
            MessageType.READY_FOR_DISCHARGE_RETRACTED,
            SUNDERBY_MED,
            [to(HERTSO, HC), to(LULEA_HHC, HHC), to(LULEA_AU, AU)],
        ),
        (
            MessageType.DISCHARGE_NOTICE,
            SUNDERBY_MED,
            [to(HERTSO, HC), to(LULEA_HHC, HHC), to(LULEA_AU, AU)],
        ),
        (
            MessageType.CARE_CONTACT_APPOINTED,
            HERTSO,
            [to(SUNDERBY_MED, WARD), to(LULEA_HHC, HHC), to(LULEA_AU, AU)],
        ),
        (MessageType.SIP_INVITATION, HERTSO, [to(LULEA_HHC, HHC), to(LULEA_AU, AU)]),
        (MessageType.SIP_DECLINED, HERTSO, [to(LULEA_HHC, HHC), to(LULEA_AU, AU)]),
    ],
)
def test_episode_messages_go_to_the_episode(
    ref: Directory,
    admitted: EpisodeState,
    message_type: MessageType,
    sender: str,
    expected: list[Target],
) -> None:
    """Each later message reaches the episode's units for its type, never its sender."""
    decision = route(msg(2, message_type, sender), admitted, ref)
    assert list(decision.targets) == expected
    assert decision.history == ()
    assert decision.new_state is not None
    assert decision.new_state.delivered[-1] == DeliveredMessage(
        mid(2), message_type, tuple(t.unit_hsa_id for t in expected)
    )


def test_discharge_notice_marks_the_episode_discharged(
    ref: Directory, admitted: EpisodeState
) -> None:
    """After the discharge notice the state says discharged; cancelling it undoes that."""
    after = route(msg(2, MessageType.DISCHARGE_NOTICE), admitted, ref).new_state
    assert after is not None
    assert after.discharged is True
    cancelled = route(
        msg(3, MessageType.CANCELLATION, cancelled_message_id=mid(2)), after, ref
    ).new_state
    assert cancelled is not None
    assert cancelled.discharged is False


def test_messages_after_discharge_still_route(ref: Directory, admitted: EpisodeState) -> None:
    """A SIP invitation after discharge still reaches the municipality (SIP is often held later)."""
    _, state = run(ref, admission(), msg(2, MessageType.DISCHARGE_NOTICE))
    decision = route(msg(3, MessageType.SIP_INVITATION, HERTSO), state, ref)
    assert units(decision) == [LULEA_HHC, LULEA_AU]


def test_general_message_to_named_actors(ref: Directory, admitted: EpisodeState) -> None:
    """A general message goes to the named actors once each, in the order named, not the sender."""
    inp = msg(
        2,
        MessageType.GENERAL_MESSAGE,
        HERTSO,
        recipients=(SUNDERBY_MED, LULEA_HHC, SUNDERBY_MED, HERTSO),
    )
    assert route(inp, admitted, ref).targets == (to(SUNDERBY_MED, WARD), to(LULEA_HHC, HHC))


@pytest.mark.parametrize(
    ("recipients", "reason"),
    [
        ((BODEN_HHC,), "recipients[0]: the unit is not an actor of the episode"),
        ((LULEA_HHC, REGIONAL_OPS), "recipients[1]: the unit is not an actor of the episode"),
        (("SE2321000230-SYNNOSUCH",), "recipients[0]: unknown unit"),
        ((SUNDERBY_IVA,), "recipients[0]: the unit is inactive"),
        ((), "recipients: a general_message must name at least one unit"),
        ((HERTSO,), "recipients: a general_message must name a unit other than the sender"),
    ],
)
def test_general_message_unroutable(
    ref: Directory, admitted: EpisodeState, recipients: tuple[str, ...], reason: str
) -> None:
    """Naming a unit outside the episode, unknown or inactive, or nobody, is unroutable."""
    inp = msg(2, MessageType.GENERAL_MESSAGE, HERTSO, recipients=recipients)
    assert unroutable_reason(inp, admitted, ref) == reason


# --- moving the recipient set -------------------------------------------------------------------


def test_move_from_lulea_to_boden(ref: Directory) -> None:
    """Boden's units join with history of what Luleå's held; Luleå's units are told they left."""
    decision, state = run(
        ref,
        admission(1),
        msg(2, MessageType.PLANNING_DOCUMENT),
        msg(3, MessageType.GENERAL_MESSAGE, recipients=(LULEA_HHC,)),
        msg(4, MessageType.CARE_CONTACT_APPOINTED, HERTSO),
        msg(5, MessageType.EPISODE_UPDATED, home_municipality="2582"),
    )
    assert decision.targets == (
        to(HERTSO, HC),
        to(BODEN_HHC, HHC),
        to(BODEN_AU, AU),
        left(LULEA_HHC, HHC),
        left(LULEA_AU, AU),
    )
    assert decision.history == (
        again(1, BODEN_HHC, HHC),
        again(1, BODEN_AU, AU),
        again(2, BODEN_HHC, HHC),
        again(2, BODEN_AU, AU),
        again(3, BODEN_HHC, HHC),
        again(4, BODEN_HHC, HHC),
        again(4, BODEN_AU, AU),
    )
    assert (state.recipients, state.home_municipality, state.listed_health_centre) == (
        (HERTSO, BODEN_HHC, BODEN_AU),
        "2582",
        HERTSO,
    )
    assert [(d.message_id, d.units) for d in state.delivered] == [
        (mid(1), (HERTSO, LULEA_HHC, LULEA_AU, BODEN_HHC, BODEN_AU)),
        (mid(2), (HERTSO, LULEA_HHC, LULEA_AU, BODEN_HHC, BODEN_AU)),
        (mid(3), (LULEA_HHC, BODEN_HHC)),
        (mid(4), (SUNDERBY_MED, LULEA_HHC, LULEA_AU, BODEN_HHC, BODEN_AU)),
        (mid(5), (HERTSO, BODEN_HHC, BODEN_AU, LULEA_HHC, LULEA_AU)),
    ]


def test_after_the_move_messages_follow_the_new_set(ref: Directory) -> None:
    """Later messages go to Boden; Luleå's units are no longer actors; cancellations reach all."""
    _, state = run(ref, admission(1), msg(2, MessageType.EPISODE_UPDATED, home_municipality="2582"))
    assert units(route(msg(3, MessageType.DISCHARGE_DATE_CHANGED), state, ref)) == [
        HERTSO,
        BODEN_HHC,
        BODEN_AU,
    ]
    general = msg(3, MessageType.GENERAL_MESSAGE, recipients=(LULEA_HHC,))
    assert unroutable_reason(general, state, ref) == (
        "recipients[0]: the unit is not an actor of the episode"
    )
    cancel = route(msg(3, MessageType.CANCELLATION, cancelled_message_id=mid(1)), state, ref)
    assert cancel.targets == (
        to(HERTSO, HC),
        to(LULEA_HHC, HHC),
        to(LULEA_AU, AU),
        to(BODEN_HHC, HHC),
        to(BODEN_AU, AU),
    )


def test_move_of_health_centre_and_municipality_together(ref: Directory) -> None:
    """Re-listing at Björknäs and moving to Boden replaces all three recipients."""
    decision, state = run(
        ref,
        admission(1),
        msg(
            2, MessageType.EPISODE_UPDATED, listed_health_centre=BJORKNAS, home_municipality="2582"
        ),
    )
    assert decision.targets == (
        to(BJORKNAS, HC),
        to(BODEN_HHC, HHC),
        to(BODEN_AU, AU),
        left(HERTSO, HC),
        left(LULEA_HHC, HHC),
        left(LULEA_AU, AU),
    )
    assert decision.history == (
        again(1, BJORKNAS, HC),
        again(1, BODEN_HHC, HHC),
        again(1, BODEN_AU, AU),
    )
    assert state.recipients == (BJORKNAS, BODEN_HHC, BODEN_AU)


def test_moving_back_gives_only_what_was_missed(ref: Directory) -> None:
    """Units returning to the set get only messages sent while they were away."""
    decision, _ = run(
        ref,
        admission(1),
        msg(2, MessageType.EPISODE_UPDATED, home_municipality="2582"),
        msg(3, MessageType.DISCHARGE_DATE_CHANGED),
        msg(4, MessageType.EPISODE_UPDATED, home_municipality="2580"),
    )
    assert decision.targets == (
        to(HERTSO, HC),
        to(LULEA_HHC, HHC),
        to(LULEA_AU, AU),
        left(BODEN_HHC, HHC),
        left(BODEN_AU, AU),
    )
    assert decision.history == (again(3, LULEA_HHC, HHC), again(3, LULEA_AU, AU))


def test_cancelled_messages_are_not_history(ref: Directory) -> None:
    """A cancelled planning document and its cancellation are not re-delivered to joiners."""
    decision, _ = run(
        ref,
        admission(1),
        msg(2, MessageType.PLANNING_DOCUMENT),
        msg(3, MessageType.CANCELLATION, cancelled_message_id=mid(2)),
        msg(4, MessageType.EPISODE_UPDATED, home_municipality="2582"),
    )
    assert decision.history == (again(1, BODEN_HHC, HHC), again(1, BODEN_AU, AU))


def test_update_without_change_keeps_the_set(ref: Directory, admitted: EpisodeState) -> None:
    """An update that changes neither field reaches the set and moves nothing."""
    decision = route(msg(2, MessageType.EPISODE_UPDATED, home_municipality="2580"), admitted, ref)
    assert (decision.targets, decision.history) == (
        (to(HERTSO, HC), to(LULEA_HHC, HHC), to(LULEA_AU, AU)),
        (),
    )
    assert decision.new_state is not None
    assert decision.new_state.recipients == admitted.recipients


def test_recipient_deactivated_in_directory(ref: Directory, admitted: EpisodeState) -> None:
    """A recipient that became inactive blocks routing until an update moves the set."""
    new_hhc = Unit(
        hsa_id="SE2120000000-SYN2580HSV2",
        kind=HHC,
        name="Hemsjukvården Luleå kommun (ny)",
        municipality_code="2580",
        functional_mailbox="hemsjukvard2@lulea.kommun.example",
        on_call_group="beredskap-kommun-lulea",
        manager_email="enhetschef.hemsjukvard2@lulea.kommun.example",
    )
    changed = derived(ref, deactivate=(LULEA_HHC,), add=(new_hhc,))
    plan = msg(2, MessageType.PLANNING_DOCUMENT)
    assert unroutable_reason(plan, admitted, changed) == (
        "planning_document: the episode's home_health_care is no longer an active unit in the "
        "directory; update the directory or the episode"
    )
    update = route(msg(2, MessageType.EPISODE_UPDATED), admitted, changed)
    assert update.targets == (
        to(HERTSO, HC),
        to("SE2120000000-SYN2580HSV2", HHC),
        to(LULEA_AU, AU),
    )  # the inactive unit that left gets no delivery
    assert update.history == (again(1, "SE2120000000-SYN2580HSV2", HHC),)
    cancel = route(msg(2, MessageType.CANCELLATION, cancelled_message_id=mid(1)), admitted, changed)
    assert cancel.targets == (to(HERTSO, HC), to(LULEA_AU, AU))  # the inactive holder is skipped


# --- cancellation -------------------------------------------------------------------------------


def test_cancellation_reaches_every_holder_but_the_sender(
    ref: Directory, admitted: EpisodeState
) -> None:
    """Cancelling the health centre's care contact reaches the ward and the municipality."""
    _, state = run(ref, admission(1), msg(2, MessageType.CARE_CONTACT_APPOINTED, HERTSO))
    decision = route(
        msg(3, MessageType.CANCELLATION, HERTSO, cancelled_message_id=mid(2)), state, ref
    )
    assert decision.targets == (to(SUNDERBY_MED, WARD), to(LULEA_HHC, HHC), to(LULEA_AU, AU))
    assert decision.new_state is not None
    assert decision.new_state.delivered[-1] == DeliveredMessage(
        mid(3),
        MessageType.CANCELLATION,
        (SUNDERBY_MED, LULEA_HHC, LULEA_AU),
        cancels=mid(2),
    )


@pytest.mark.parametrize(
    ("cancelled", "reason"),
    [
        (99, "cancelled_message_id: no such message in this episode"),
        (3, "cancelled_message_id: a message of type cancellation cannot be cancelled"),
        (4, "cancelled_message_id: a message of type episode_updated cannot be cancelled"),
        (2, "cancelled_message_id: the message is already cancelled"),
    ],
)
def test_cancellation_unroutable(ref: Directory, cancelled: int, reason: str) -> None:
    """Unknown, already cancelled, or uncancellable originals are refused."""
    _, state = run(
        ref,
        admission(1),
        msg(2, MessageType.PLANNING_DOCUMENT),
        msg(3, MessageType.CANCELLATION, cancelled_message_id=mid(2)),
        msg(4, MessageType.EPISODE_UPDATED),
    )
    inp = msg(5, MessageType.CANCELLATION, cancelled_message_id=mid(cancelled))
    assert unroutable_reason(inp, state, ref) == reason


def test_readmission_after_a_cancelled_admission(ref: Directory) -> None:
    """A second admission notice is refused unless the first was cancelled (wrong patient)."""
    _, state = run(ref, admission(1))
    assert unroutable_reason(admission(2, hc=BJORKNAS, municipality="2582"), state, ref) == (
        "admission_notice: the episode already has an admission notice; "
        "an episode update changes its recipients"
    )
    _, state = run(
        ref,
        admission(1),
        msg(2, MessageType.CANCELLATION, cancelled_message_id=mid(1)),
        admission(3, hc=BJORKNAS, municipality="2582"),
    )
    assert state.recipients == (BJORKNAS, BODEN_HHC, BODEN_AU)
    assert [d.message_id for d in state.delivered] == [mid(1), mid(2), mid(3)]
    assert unroutable_reason(admission(4), state, ref) == (
        "admission_notice: the episode already has an admission notice; "
        "an episode update changes its recipients"
    )  # the live second admission blocks a third


# --- duplicates ---------------------------------------------------------------------------------


def test_redelivered_message_is_not_routed_twice(ref: Directory) -> None:
    """Routing a message id the episode already holds yields no targets and the same state."""
    _, state = run(ref, admission(1), msg(2, MessageType.PLANNING_DOCUMENT))
    assert route(msg(2, MessageType.PLANNING_DOCUMENT), state, ref) == RoutingDecision(
        targets=(), new_state=state, history=(), duplicate=True
    )
    assert route(admission(1), state, ref).duplicate is True


# --- unroutable ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inp", "reason"),
    [
        (
            admission(hc="SE2321000230-SYNHCNOSUCH"),
            "listed_health_centre: unknown health centre",
        ),
        (admission(hc=LULEA_HHC), "listed_health_centre: unknown health centre"),
        (admission(municipality="2599"), "home_municipality: unknown municipality"),
        (
            admission(sender=SUNDERBY_IVA),
            "sender: an admission notice must come from an active hospital ward",
        ),
        (
            admission(sender=HERTSO),
            "sender: an admission notice must come from an active hospital ward",
        ),
        (
            msg(1, MessageType.ADMISSION_NOTICE, home_municipality="2580"),
            "listed_health_centre: required in an admission notice",
        ),
        (
            msg(1, MessageType.PLANNING_DOCUMENT),
            "planning_document: the episode has no admission notice "
            "(a message before the admission notice)",
        ),
        (
            msg(1, MessageType.CANCELLATION, cancelled_message_id=mid(7)),
            "cancellation: the episode has no admission notice "
            "(a message before the admission notice)",
        ),
        (
            replace(msg(1, MessageType.PLANNING_DOCUMENT), episode_id=None),
            "episode_id: required for planning_document",
        ),
    ],
)
def test_unroutable_without_state(ref: Directory, inp: RoutingInput, reason: str) -> None:
    """Bad admission notices and messages before any admission notice are unroutable."""
    assert unroutable_reason(inp, None, ref) == reason


def test_inactive_health_centre(ref: Directory) -> None:
    """An admission for a patient listed at an inactive health centre is unroutable."""
    closed = derived(ref, deactivate=(HERTSO,))
    assert unroutable_reason(admission(), None, closed) == (
        "listed_health_centre: the health centre is inactive"
    )


@pytest.mark.parametrize(
    ("inp", "reason"),
    [
        (
            msg(2, MessageType.EPISODE_UPDATED, listed_health_centre="SE2321000230-SYNHCNOSUCH"),
            "listed_health_centre: unknown health centre",
        ),
        (
            msg(2, MessageType.EPISODE_UPDATED, home_municipality="0114"),
            "home_municipality: unknown municipality",
        ),
    ],
)
def test_update_to_unknown_units(
    ref: Directory, admitted: EpisodeState, inp: RoutingInput, reason: str
) -> None:
    """An update to a health centre or municipality the directory lacks is unroutable."""
    assert unroutable_reason(inp, admitted, ref) == reason


def test_reasons_carry_no_identifiers(ref: Directory) -> None:
    """Unroutable reasons name fields and rules, not the HSA-ids or episode ids involved."""
    reason = unroutable_reason(
        admission(hc="SE2321000230-SYNHCNOSUCH", municipality="2599"), None, ref
    )
    assert "SE2321000230" not in reason
    assert EPISODE not in reason


# --- messages outside an episode ----------------------------------------------------------------


def outside(message_type: MessageType, sender: str, *recipients: str) -> RoutingInput:
    return RoutingInput(
        message_id=mid(50),
        message_type=message_type,
        episode_id=None,
        sender=sender,
        recipients=recipients,
    )


def test_message_outside_episode(ref: Directory) -> None:
    """Health centre to home health care, with no episode state involved."""
    decision = route(outside(MessageType.MESSAGE_OUTSIDE_EPISODE, HERTSO, LULEA_HHC), None, ref)
    assert decision == RoutingDecision(targets=(to(LULEA_HHC, HHC),), new_state=None)


def test_care_request(ref: Directory) -> None:
    """A care request reaches the one named home health care unit."""
    decision = route(outside(MessageType.CARE_REQUEST, SUNDERBY_MED, BODEN_HHC), None, ref)
    assert decision == RoutingDecision(targets=(to(BODEN_HHC, HHC),), new_state=None)


@pytest.mark.parametrize(
    ("inp", "reason"),
    [
        (
            outside(MessageType.MESSAGE_OUTSIDE_EPISODE, HERTSO, LULEA_AU),
            "recipients[0]: a message_outside_episode goes to a unit of kind health_centre, "
            "home_health_care",
        ),
        (
            outside(MessageType.CARE_REQUEST, SUNDERBY_MED, HERTSO),
            "recipients[0]: a care_request goes to a unit of kind home_health_care",
        ),
        (
            outside(MessageType.CARE_REQUEST, SUNDERBY_MED, LULEA_HHC, BODEN_HHC),
            "recipients: a care_request names exactly one home health care unit",
        ),
        (
            outside(MessageType.CARE_REQUEST, SUNDERBY_MED, "SE2120000000-SYN9999HSV"),
            "recipients[0]: unknown unit",
        ),
        (
            outside(MessageType.MESSAGE_OUTSIDE_EPISODE, LULEA_HHC, HERTSO, SUNDERBY_IVA),
            "recipients[1]: the unit is inactive",
        ),
        (
            outside(MessageType.MESSAGE_OUTSIDE_EPISODE, HERTSO),
            "recipients: a message_outside_episode must name at least one unit",
        ),
    ],
)
def test_outside_episode_unroutable(ref: Directory, inp: RoutingInput, reason: str) -> None:
    """Named units must exist, be active and be of the kind the message type allows."""
    assert unroutable_reason(inp, None, ref) == reason


def test_care_request_to_inactive_home_health_care(ref: Directory) -> None:
    """A care request to a home health care unit that was deactivated is unroutable."""
    replacement = Unit(
        hsa_id="SE2120000000-SYN2582HSV2",
        kind=HHC,
        name="Hemsjukvården Bodens kommun (ny)",
        municipality_code="2582",
        functional_mailbox="hemsjukvard2@boden.kommun.example",
        on_call_group=None,
        manager_email="chef2@boden.kommun.example",
    )
    changed = derived(ref, deactivate=(BODEN_HHC,), add=(replacement,))
    inp = outside(MessageType.CARE_REQUEST, SUNDERBY_MED, BODEN_HHC)
    assert unroutable_reason(inp, None, changed) == "recipients[0]: the unit is inactive"


# --- properties ---------------------------------------------------------------------------------

IN_EPISODE_TYPES = [
    MessageType.ADMISSION_NOTICE,
    MessageType.PLANNING_DOCUMENT,
    MessageType.DISCHARGE_DATE_CHANGED,
    MessageType.GENERAL_MESSAGE,
    MessageType.READY_FOR_DISCHARGE,
    MessageType.READY_FOR_DISCHARGE_RETRACTED,
    MessageType.CARE_CONTACT_APPOINTED,
    MessageType.SIP_INVITATION,
    MessageType.SIP_DECLINED,
    MessageType.DISCHARGE_NOTICE,
    MessageType.EPISODE_UPDATED,
    MessageType.CANCELLATION,
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_episodes_stay_inside_the_directory(ref: Directory, data: st.DataObject) -> None:
    """Property: any message sequence routes only to active directory units, never to the
    sender, never the same (message, unit) twice, and the state records exactly what was sent."""
    active = [u.hsa_id for u in ref.units if u.active]
    wards = [u.hsa_id for u in ref.units_of_kind(WARD) if u.active]
    centre = st.none() | st.sampled_from(
        [u.hsa_id for u in ref.units_of_kind(HC)] + ["SE2321000230-SYNHCNOSUCH"]
    )
    code = st.none() | st.sampled_from([m.code for m in ref.municipalities] + ["2599"])
    senders = [*wards[:3], HERTSO, BJORKNAS, LULEA_HHC, BODEN_AU, SUNDERBY_IVA]

    state: EpisodeState | None = None
    sent: list[tuple[UUID, str]] = []
    for n in range(1, data.draw(st.integers(1, 20), label="length") + 1):
        message_type = data.draw(st.sampled_from(IN_EPISODE_TYPES), label="type")
        if state is None and data.draw(st.booleans(), label="admit first"):
            message_type = MessageType.ADMISSION_NOTICE  # otherwise most runs never get going
        actors = list(state.actors) if state is not None else []
        inp = msg(n, message_type, data.draw(st.sampled_from(actors + senders), label="sender"))
        if message_type in {MessageType.ADMISSION_NOTICE, MessageType.EPISODE_UPDATED}:
            inp = replace(
                inp, listed_health_centre=data.draw(centre), home_municipality=data.draw(code)
            )
        elif message_type is MessageType.GENERAL_MESSAGE:
            named = data.draw(st.lists(st.sampled_from(actors + active[:5]), max_size=4))
            inp = replace(inp, recipients=tuple(named))
        elif message_type is MessageType.CANCELLATION:
            inp = replace(inp, cancelled_message_id=mid(data.draw(st.integers(1, n))))
        if n > 1 and data.draw(st.booleans(), label="redeliver"):
            inp = replace(inp, message_id=mid(data.draw(st.integers(1, n - 1))))
        try:
            decision = route(inp, state, ref)
        except Unroutable:
            continue
        pairs = [(inp.message_id, t.unit_hsa_id) for t in decision.targets]
        pairs += [(r.message_id, r.target.unit_hsa_id) for r in decision.history]
        for target in (*decision.targets, *(r.target for r in decision.history)):
            unit = ref.unit(target.unit_hsa_id)
            assert unit is not None
            assert unit.active
            assert unit.kind is target.kind
        assert inp.sender not in [t.unit_hsa_id for t in decision.targets]
        assert all(r.target.role is DeliveryRole.HISTORY for r in decision.history)
        sent += pairs
        assert len(sent) == len(set(sent))
        state = decision.new_state
        assert state is not None
        recorded = sorted((d.message_id, u) for d in state.delivered for u in d.units)
        assert recorded == sorted(sent)
        listed = ref.health_centre(state.listed_health_centre)
        municipal = ref.municipal_units(state.home_municipality)
        assert listed is not None
        assert municipal is not None
        assert state.recipients == (
            listed.hsa_id,
            municipal.home_health_care.hsa_id,
            municipal.assessment_unit.hsa_id,
        )
