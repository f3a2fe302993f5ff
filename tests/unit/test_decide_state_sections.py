"""A state section has one owning agent (its first writer) unless the session allows sharing."""

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
