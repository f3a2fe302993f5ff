"""The diff of two versions of one session from the fold at the lower one (eventstore/
diff_forward.py, issue 11: cost in proportion to what changed): over generated sessions and
forks, at any two versions either way round, it equals the diff of the two whole views
(eventstore/diff.py) byte for byte as JSON, or declines (None) exactly where the whole
comparison raises or a model call id was recorded twice."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import events as ev
from eventstore import knowledge
from eventstore.diff import Side, diff, state_of
from eventstore.diff_forward import READS, diff_forward
from eventstore.errors import AgentlogError
from eventstore.knowledge import Knowledge

from .test_knowledge import once, rich_step, sessions
from .timetravel_events import fork_of, recorded


def _expected(session_id: str, lineage: list, before: int, a: int, b: int) -> Any:
    try:
        left, right = Side(session_id, a, lineage[: before + a]), Side(session_id, b, lineage[: before + b])
        return orjson.dumps(diff(left, right).to_json())
    except AgentlogError as exc:
        return type(exc).__name__


def _forward(session_id: str, lineage: list, before: int, a: int, b: int) -> bytes | None:
    """As eventstore/diff_store.py calls it: the fold at the lower version, the steps after the
    common ones on each side (one side has none), the events between."""
    low, high = sorted((a, b))
    cut = lineage[: before + low]
    left_tail = lineage[before + low : before + a]
    right_tail = lineage[before + low : before + b]
    common = len([e for e in cut if e.type != ev.SessionForked.TYPE])
    state, known = state_of(cut), Knowledge.of(cut)
    events = lineage[before + low : before + high]
    found = diff_forward(Side(session_id, a), Side(session_id, b), common, left_tail, right_tail, state, known, events)
    return None if found is None else orjson.dumps(found.to_json())


def _assert_same(session_id: str, lineage: list, before: int, a: int, b: int) -> None:
    expected = _expected(session_id, lineage, before, a, b)
    got = _forward(session_id, lineage, before, a, b)
    if isinstance(expected, str):  # the whole comparison raises: the forward one declines
        assert got is None, expected
    elif got is not None:
        assert got == expected, (a, b)


@settings(max_examples=150, deadline=None)
@given(events=sessions, data=st.data())
def test_the_forward_diff_equals_the_diff_of_the_whole_views(events, data):
    own = recorded(events)
    a = data.draw(st.integers(1, len(own)), label="a")
    b = data.draw(st.integers(1, len(own)), label="b")
    _assert_same("case-42", own, 0, a, b)


@settings(max_examples=60, deadline=None)
@given(source=sessions, later=st.lists(rich_step, max_size=10), data=st.data())
def test_the_forward_diff_of_two_versions_of_a_fork_equals_the_whole_diff(source, later, data):
    events = recorded(source)
    at = data.draw(st.integers(1, len(events)), label="fork at")
    seen = {e.call_id for e in source[:at] if isinstance(e, ev.ModelCallRecorded)}
    own, lineage = fork_of(events, at, once(later, seen))
    a = data.draw(st.integers(1, len(own)), label="a")
    b = data.draw(st.integers(1, len(own)), label="b")
    _assert_same("case-42-b", lineage, len(lineage) - len(own), a, b)


def test_it_follows_every_event_type_the_knowledge_folds():
    assert frozenset(knowledge._READ) == READS


def test_a_model_call_recorded_twice_is_left_to_the_whole_comparison():
    call = ev.ModelCallRecorded(call_id="m1", model="m", request=ev.ModelRequest(messages=[], tools=[{"name": "s"}]))
    again = ev.ModelCallRecorded(call_id="m1", model="m", request=ev.ModelRequest(messages=[], tools=[]))
    own = recorded([ev.SessionStarted(agents=["a"]), call, again])
    assert _forward("case-42", own, 0, 2, 3) is None
    assert _forward("case-42", own, 0, 3, 1) is None


def test_only_the_touched_entries_are_compared_in_the_order_a_whole_walk_meets_them():
    steps = [ev.SessionStarted(agents=["a"])]
    steps += [ev.ToolCallRequested(call_id=f"t{k}", tool="search", arguments={"q": k}, agent="a") for k in range(5)]
    steps += [ev.MessageAdded(role="user", content="hi")]
    steps += [ev.ToolCallCompleted(call_id=f"t{k}", result={"n": k}) for k in (3, 0, 4)]
    steps += [ev.ToolCallRequested(call_id="t9", tool="search", arguments={}, agent="a")]
    own = recorded(steps)
    for a, b in ((6, len(own)), (len(own), 6), (1, len(own)), (7, 7)):
        assert _forward("case-42", own, 0, a, b) == _expected("case-42", own, 0, a, b)
    paths = [c["path"] for c in orjson.loads(_forward("case-42", own, 0, 6, len(own)) or b"{}")["state"]["added"]]
    assert [p for p in paths if p.startswith("/tool_calls/")] == [
        "/tool_calls/t0/result",
        "/tool_calls/t0/duration_ms",
        "/tool_calls/t3/result",
        "/tool_calls/t3/duration_ms",
        "/tool_calls/t4/result",
        "/tool_calls/t4/duration_ms",
        "/tool_calls/t9",
    ]
