"""A state section has one owning agent (its first writer) unless the session allows sharing."""

import pytest

from commands import models as cmd
from eventstore import events as ev
from eventstore.errors import SectionOwnedByOtherAgentError

from .session_spec import given, started

BILLING_WROTE = ev.StateSectionUpdated(agent="billing", section="billing", changes={"charges": 2, "refund": None})


def test_update_state_section_records_the_merge_patch():
    given(started()).when(cmd.UpdateStateSection(agent="billing", section="billing", changes={"charges": 2})).then(
        ev.StateSectionUpdated(agent="billing", section="billing", changes={"charges": 2})
    )


def test_update_state_section_accepts_the_owner_again():
    given(started(), BILLING_WROTE).when(
        cmd.UpdateStateSection(agent="billing", section="billing", changes={"refund": "r-7"})
    ).then(ev.StateSectionUpdated(agent="billing", section="billing", changes={"refund": "r-7"}))


def test_update_state_section_is_refused_when_section_owned_by_other_agent():
    error = (
        given(started(), BILLING_WROTE)
        .when(cmd.UpdateStateSection(agent="account", section="billing", changes={"charges": 1}))
        .then_raises(SectionOwnedByOtherAgentError, "section_owned_by_other_agent")
    )
    assert error.extra == {"section": "billing", "owner": "billing"}


def test_update_state_section_accepts_other_agent_when_sections_shared():
    given(started(allow_shared_sections=True), BILLING_WROTE).when(
        cmd.UpdateStateSection(agent="account", section="billing", changes={"checked": True})
    ).then(ev.StateSectionUpdated(agent="account", section="billing", changes={"checked": True}))


def test_update_state_section_lets_agents_own_their_own_sections_in_parallel():
    given(started(), BILLING_WROTE).when(
        cmd.UpdateStateSection(agent="account", section="account", changes={"locked": True})
    ).then(ev.StateSectionUpdated(agent="account", section="account", changes={"locked": True}))


def test_update_state_section_yields_nothing_when_decided_again():
    given(started(), BILLING_WROTE).when(
        cmd.UpdateStateSection(agent="billing", section="billing", changes={"charges": 2, "refund": None})
    ).then_nothing()


def test_update_state_section_records_an_empty_first_write_to_claim_the_section():
    given(started()).when(cmd.UpdateStateSection(agent="billing", section="billing", changes={})).then(
        ev.StateSectionUpdated(agent="billing", section="billing", changes={})
    )


@pytest.mark.parametrize(
    "before, after",
    [(1, True), (True, 1), (1.0, True), (0, False), (False, 0), ([1], [True]), ({"x": 0}, {"x": False})],
)
def test_update_state_section_true_over_1_is_a_change_not_a_repeat(before, after):
    """Regression (pipeline property test): Python's == holds True == 1, so a PATCH turning 1 into
    true was answered 200 with no event and the section kept 1."""
    wrote = ev.StateSectionUpdated(agent="billing", section="billing", changes={"a": before})
    given(started(), wrote).when(cmd.UpdateStateSection(agent="billing", section="billing", changes={"a": after})).then(
        ev.StateSectionUpdated(agent="billing", section="billing", changes={"a": after})
    )


def test_update_state_section_1_0_over_1_is_the_same_number_so_a_repeat():
    wrote = ev.StateSectionUpdated(agent="billing", section="billing", changes={"a": 1})
    given(started(), wrote).when(
        cmd.UpdateStateSection(agent="billing", section="billing", changes={"a": 1.0})
    ).then_nothing()
