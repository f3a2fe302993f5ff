"""Blame: each leaf of the state names the event that last set it; overlapping patches by two
agents, removals, type changes, forks; and a property against the fold itself."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import events as ev
from eventstore.blame import blame
from eventstore.errors import ReplayTargetError
from eventstore.state import fold

from .timetravel_events import fork_of, recorded

START = ev.SessionStarted(agents=["billing", "account"], allow_shared_sections=True)


def patch(agent: str, changes: dict, section: str = "case") -> ev.StateSectionUpdated:
    return ev.StateSectionUpdated(agent=agent, section=section, changes=changes)


def table(events, **kwargs) -> dict[str, tuple]:
    return {e.path: (e.value, e.origin.version, e.origin.agent) for e in blame(events, **kwargs).entries}


def test_overlapping_patches_by_two_agents_blame_the_agent_that_set_each_leaf():
    events = recorded(
        [
            START,
            patch("billing", {"charge": "ch_2", "amount": 42, "customer": {"id": "c1", "tier": "gold"}}),
            patch("account", {"amount": 40, "customer": {"tier": "silver", "locked": True}}),
        ],
        actors=["key_o", "key_b", "key_a"],
    )
    assert table(events) == {
        "/status": ("open", 1, None),
        "/sections/case/charge": ("ch_2", 2, "billing"),
        "/sections/case/amount": (40, 3, "account"),
        "/sections/case/customer/id": ("c1", 2, "billing"),
        "/sections/case/customer/tier": ("silver", 3, "account"),
        "/sections/case/customer/locked": (True, 3, "account"),
    }
    assert blame(events).entries[2].origin.actor == "key_a"


def test_a_value_removed_later_is_not_blamed_on_the_patch_that_added_it():
    events = recorded(
        [
            START,
            patch("billing", {"dup": "ch_2", "refund": None}),
            patch("account", {"dup": None, "note": "ok"}),
            patch("billing", {"dup": "ch_3"}),
        ]
    )
    assert table(events, section="case") == {
        "/sections/case/note": ("ok", 3, "account"),
        "/sections/case/dup": ("ch_3", 4, "billing"),
    }
    removed = recorded([START, patch("billing", {"dup": "ch_2"}), patch("account", {"dup": None})])
    assert table(removed, section="case") == {"/sections/case": ({}, 3, "account")}


def test_a_value_replaced_by_another_kind_is_blamed_on_the_replacing_patch():
    events = recorded(
        [
            START,
            patch("billing", {"a": {"x": 1, "y": 2}, "b": 5, "c": [1, 2]}),
            patch("account", {"a": 7, "b": {"z": 1}, "c": [3]}),
            patch("billing", {"a": {}}),
        ]
    )
    assert table(events, section="case") == {
        "/sections/case/a": ({}, 4, "billing"),
        "/sections/case/b/z": (1, 3, "account"),
        "/sections/case/c": ([3], 3, "account"),
    }


def test_a_fork_blames_inherited_values_on_the_source_and_its_own_on_itself():
    source = recorded([START, patch("billing", {"dup": "ch_2"}), ev.SessionCompleted()])
    _own, lineage = fork_of(source, 3, [patch("account", {"locked": False})])
    result = table(lineage)
    assert result["/status"] == ("open", 1, None)  # the fork is open: set by its SessionForked
    assert blame(lineage).entries[0].origin.session_id == "case-42-b"
    assert result["/sections/case/dup"] == ("ch_2", 2, "billing")
    assert blame(lineage).entries[1].origin.session_id == "case-42"
    assert result["/sections/case/locked"] == (False, 2, "account")


def test_a_fork_without_its_source_blames_its_snapshot_on_the_fork():
    source = recorded([START, patch("billing", {"dup": "ch_2"})])
    own, _ = fork_of(source, 2, [])
    assert table(own) == {"/status": ("open", 1, None), "/sections/case/dup": ("ch_2", 1, None)}


def test_blame_of_an_unknown_section_names_the_known_ones():
    with pytest.raises(ReplayTargetError) as raised:
        blame(recorded([START, patch("billing", {"x": 1})]), section="nope")
    assert str(raised.value) == "no section 'nope' in this state (sections: case)"
    assert raised.value.extra["field"] == "section"


keys = st.sampled_from(["a", "b", "c"])
values = st.recursive(
    st.none() | st.integers(0, 3) | st.lists(st.integers(0, 2), max_size=2),
    lambda inner: st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
patches = st.lists(
    st.tuples(
        st.sampled_from(["billing", "account"]),
        st.sampled_from(["s1", "s2"]),
        st.dictionaries(keys, values, max_size=3),
    ),
    min_size=1,
    max_size=8,
)


def _leaves(value, path):
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, f"{path}/{key}")
    else:
        yield path, value


def _sets(changes, parts) -> bool:
    """Whether a merge patch writes a non-null value at exactly `parts`."""
    for part in parts:
        if not isinstance(changes, dict) or part not in changes:
            return False
        changes = changes[part]
    return changes is not None


@settings(max_examples=150, deadline=None)
@given(steps=patches)
def test_blame_has_one_entry_per_leaf_of_the_fold_naming_the_last_patch_that_set_it(steps):
    decided = [patch(agent, changes, section) for agent, section, changes in steps]
    events = recorded([START, *decided])
    state = fold(events)
    expected = dict(kv for name, value in state.sections.items() for kv in _leaves(value, f"/sections/{name}"))
    entries = [e for e in blame(events).entries if e.path != "/status"]
    assert {e.path: e.value for e in entries} == expected
    for entry in entries:
        _, _, section, *parts = entry.path.split("/")
        setters = [i + 2 for i, e in enumerate(decided) if e.section == section and _sets(e.changes, parts)]
        if entry.value != {}:  # an empty object is set by whichever patch created or emptied it
            assert setters and entry.origin.version == setters[-1], entry
