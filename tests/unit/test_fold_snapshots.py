"""Fold snapshots (issue 11, flat cost): a fold started at a snapshot, carried through JSON as the
store keeps it, equals the fold from version 1 at every version, for the state and for blame; and
the linear fold (memories updated in place) equals event-by-event evolve, forgetting included."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import events as ev
from eventstore import state as state_module
from eventstore.blame import BlameFold
from eventstore.fold_snapshots import FOLD_FORMAT, FoldPoint
from eventstore.state import SessionState, evolve, fold

from .test_blame import values
from .timetravel_events import fork_of, recorded

DECIDED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
# What the command API lets into the store (jsonb refuses NUL and lone surrogates): the integration
# tests write these sessions to Postgres.
STORABLE = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
call_ids = st.sampled_from(["c1", "c2", "c3", "c4", "c5"])
approval_ids = st.sampled_from(["a1", "a2", "a3"])
model_ids = st.sampled_from(["m1", "m2", "m3", "m4"])
patch_changes = st.dictionaries(st.sampled_from(["a", "b", "c"]), values, max_size=3)

step = st.one_of(
    st.builds(lambda text: ev.MessageAdded(role="user", content=text), st.text(STORABLE, max_size=5)),
    st.builds(lambda cid: ev.ToolCallRequested(call_id=cid, tool="search", arguments={}, agent="billing"), call_ids),
    st.builds(lambda cid, n: ev.ToolCallCompleted(call_id=cid, result={"n": n}), call_ids, st.integers(0, 2)),
    st.builds(lambda cid: ev.ToolCallFailed(call_id=cid, error="boom"), call_ids),
    st.builds(
        lambda agent, section, changes: ev.StateSectionUpdated(agent=agent, section=section, changes=changes),
        st.sampled_from(["billing", "account"]),
        st.sampled_from(["s1", "s2"]),
        patch_changes,
    ),
    st.builds(lambda aid: ev.ApprovalRequested(approval_id=aid, action="refund", requested_by="billing"), approval_ids),
    st.builds(
        lambda aid, d: ev.ApprovalDecided(approval_id=aid, decision=d, reviewer="r", decided_at=DECIDED_AT),
        approval_ids,
        st.sampled_from(["approved", "rejected"]),
    ),
    st.builds(
        lambda mid, n: ev.ModelCallRecorded(
            call_id=mid, model="m", request=ev.ModelRequest(messages=[{"role": "user", "content": "x"}] * n)
        ),
        model_ids,
        st.integers(0, 2),
    ),
    st.builds(lambda name: ev.CheckpointSaved(name=name), st.sampled_from(["plan", "act"])),
    st.just(ev.ErrorRecorded(message="oops")),
)
START = ev.SessionStarted(agents=["billing", "account"], allow_shared_sections=True)
sessions = st.builds(
    lambda steps, end: [START, *steps, *end],
    st.lists(step, min_size=1, max_size=25),
    st.sampled_from([[], [ev.SessionCompleted()], [ev.SessionCancelled()]]),
)


def _through_json(point: FoldPoint) -> FoldPoint:
    """The point as a reader gets it back from fold_snapshots_v1 (jsonb as orjson)."""
    state = orjson.loads(orjson.dumps(point.state.to_snapshot()))
    blame = orjson.loads(orjson.dumps(point.blame.to_json()))
    return FoldPoint(point.version, SessionState.from_snapshot(state), BlameFold.from_json(blame))


def _assert_replay_from_snapshots_equals_replay_from_version_1(lineage, own, every: int) -> None:
    """At every version v of `own` (the session's events; `lineage` ends with them), the fold
    from the nearest snapshot at or before v equals the fold from version 1."""
    before = len(lineage) - len(own)
    snapshots: dict[int, FoldPoint] = {}
    for v in range(1, len(own) + 1):
        full_state = fold(own[:v])
        full_blame = BlameFold().apply_all(lineage[: before + v]).result().to_json()
        if v % every == 0:
            snapshots[v] = _through_json(FoldPoint(v, full_state, BlameFold().apply_all(lineage[: before + v])))
        base = max((s for s in snapshots if s <= v), default=None)
        if base is None:
            continue
        started = _through_json(snapshots[base]).after(own[base:v])
        assert started.version == v
        assert started.state == full_state
        assert started.state.to_snapshot() == full_state.to_snapshot()
        assert started.blame.result().to_json() == full_blame


@settings(max_examples=80, deadline=None)
@given(events=sessions, every=st.integers(1, 5), remembered=st.integers(1, 4))
def test_replay_from_a_snapshot_equals_replay_from_version_1_at_every_version(events, every, remembered):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "MAX_REMEMBERED", remembered)  # so forgetting happens in short sessions
        own = recorded(events)
        _assert_replay_from_snapshots_equals_replay_from_version_1(own, own, every)


@settings(max_examples=40, deadline=None)
@given(source=sessions, later=st.lists(step, max_size=10), data=st.data(), every=st.integers(1, 4))
def test_replay_of_a_fork_from_a_snapshot_equals_replay_from_version_1(source, later, data, every):
    events = recorded(source)
    at = data.draw(st.integers(1, len(events)), label="fork at")
    own, lineage = fork_of(events, at, later)
    _assert_replay_from_snapshots_equals_replay_from_version_1(lineage, own, every)


@settings(max_examples=80, deadline=None)
@given(events=sessions, remembered=st.integers(1, 4))
def test_the_linear_fold_equals_evolve_event_by_event(events, remembered):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "MAX_REMEMBERED", remembered)
        stepped = SessionState()
        for event in events:
            stepped = evolve(stepped, event)
        folded = fold(events)
    assert folded == stepped
    assert list(folded.finished_calls.items()) == list(stepped.finished_calls.items())  # order kept
    assert list(folded.model_calls.items()) == list(stepped.model_calls.items())
    assert type(folded.finished_calls) is dict  # nothing the fold changed in place escapes it


def test_a_folded_state_is_not_changed_by_folding_on_from_it():
    first = fold(
        [START, ev.ToolCallRequested(call_id="c1", tool="t", arguments={}), ev.ToolCallCompleted(call_id="c1")]
    )
    kept = dict(first.finished_calls)
    fold([ev.ToolCallRequested(call_id="c2", tool="t", arguments={}), ev.ToolCallCompleted(call_id="c2")], first)
    evolve(first, ev.ToolCallFailed(call_id="c3", error="x"))
    assert dict(first.finished_calls) == kept


def test_a_folded_section_is_not_changed_by_folding_on_from_it():
    def patch(changes: dict) -> ev.StateSectionUpdated:
        return ev.StateSectionUpdated(agent="billing", section="case", changes=changes)

    first = fold([START, patch({"a": {"x": 1}, "b": [1]}), patch({"a": {"y": 2}})])
    second = fold([patch({"a": {"x": None, "z": 3}, "b": None})], first)
    assert first.sections == {"case": {"a": {"x": 1, "y": 2}, "b": [1]}}
    assert second.sections == {"case": {"a": {"y": 2, "z": 3}}}
    assert type(second.sections["case"]) is dict


def test_the_fold_format_names_the_state_and_blame_formats():
    assert FOLD_FORMAT.startswith(f"state{state_module.SNAPSHOT_FORMAT}.blame")


@settings(max_examples=80, deadline=None)
@given(events=sessions, data=st.data(), remembered=st.integers(1, 4))
def test_a_fold_that_owns_its_initial_state_equals_the_fold_from_version_1(events, data, remembered):
    """fold(owned=True) changes the snapshot's memories and sections in place instead of copying
    them: same state, memories in the same order, forgetting included."""
    at = data.draw(st.integers(1, len(events)), label="snapshot at")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "MAX_REMEMBERED", remembered)
        whole = fold(events)
        snapshot = orjson.loads(orjson.dumps(fold(events[:at]).to_snapshot()))
        owned = fold(events[at:], SessionState.from_snapshot(snapshot, share=True), owned=True)
    assert owned == whole and owned.to_snapshot() == whole.to_snapshot()
    assert list(owned.finished_calls.items()) == list(whole.finished_calls.items())
    assert list(owned.model_calls.items()) == list(whole.model_calls.items())


def test_a_fold_changes_in_place_only_the_state_it_carries():
    """A source that evolves states of its own while the fold runs gets the copies evolve gives
    outside a fold; the initial state, owned or not, is never the carried one."""
    kept: list[SessionState] = []

    def source():
        side = fold([START])
        for event in (ev.MessageAdded(role="user", content="a"), ev.ErrorRecorded(message="x")):
            kept.append(side)
            side = evolve(side, event)
            yield event
        kept.append(side)

    initial = fold([START])
    before = initial.to_snapshot()
    folded = fold(source(), initial)
    assert initial.to_snapshot() == before and initial.version == 1
    assert [(s.version, s.counts.messages, s.counts.errors) for s in kept] == [(1, 0, 0), (2, 1, 0), (3, 1, 1)]
    assert (folded.version, folded.counts.messages, folded.counts.errors) == (3, 1, 1)
    again = fold([ev.MessageAdded(role="user", content="b")], folded)  # a fold's result is not carried on
    assert (folded.version, folded.counts.messages) == (3, 1) and (again.version, again.counts.messages) == (4, 2)
