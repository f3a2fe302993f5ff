"""Given/when/then specs of the pure parts of the projections: what an event changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from eventstore import events as ev
from eventstore import history
from eventstore.envelope import RecordedEvent
from eventstore.registry import to_stored
from projections.read_models import summaries, timeline, tool_calls
from projections.read_models.catalog import PROJECTIONS
from projections.read_models.projection import decode_or_error


def _recorded(event: ev.Event, version: int = 1) -> RecordedEvent:
    type_, schema_version, data = to_stored(event)
    return RecordedEvent(
        position=10 + version,
        session_id="s1",
        version=version,
        event_id=uuid.uuid4(),
        type=type_,
        schema_version=schema_version,
        data=data,
        tenant="t1",
        recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def _fold(changes: list[summaries.SummaryChange]) -> dict:
    total = {"messages": 0, "tool_calls": 0, "tool_failures": 0, "errors": 0, "status": None}
    for change in changes:
        for field in ("messages", "tool_calls", "tool_failures", "errors"):
            total[field] += getattr(change, field)
        total["status"] = change.status or total["status"]
    return total


def test_summary_change_counts_messages_calls_failures_and_closes() -> None:
    given = [
        ev.SessionStarted(workflow="w"),
        ev.MessageAdded(role="user", content="hi"),
        ev.ToolCallRequested(call_id="c", tool="t"),
        ev.ToolCallFailed(call_id="c", error="x"),
        ev.ErrorRecorded(message="oops"),
        ev.SessionFailed(reason="gave up"),
    ]
    then = _fold([summaries.change_for(e) for e in given])
    assert then == {"messages": 1, "tool_calls": 1, "tool_failures": 1, "errors": 1, "status": "failed"}


def test_summary_change_of_a_start_sets_status_only_as_a_start() -> None:
    change = summaries.change_for(ev.SessionStarted(workflow="support", agents=["a", "b"]))
    assert (change.status, change.is_start, change.agents) == ("open", True, ("a", "b"))


def test_summary_change_of_a_fork_names_its_source() -> None:
    fork = ev.SessionForked(source_session_id="src", source_version=4, state={"workflow": "w", "agents": ["a"]})
    change = summaries.change_for(fork)
    assert (change.forked_from, change.forked_from_version, change.workflow) == ("src", 4, "w")


def test_summary_change_remembers_the_agent_that_spoke() -> None:
    assert summaries.change_for(ev.MessageAdded(role="assistant", content="x", agent="billing")).agents == ("billing",)
    assert summaries.change_for(ev.MessageAdded(role="user", content="x")).agents == ()


def test_timeline_summary_is_one_clipped_line() -> None:
    # The line of `agentlog history` (eventstore/history.py), one text per event type.
    assert timeline.summary_of(ev.ToolCallCompleted(call_id="c1", duration_ms=5)) == "call c1 completed in 5 ms"
    # History cuts free text itself; a list of agents is not cut there, so the column's clip shows.
    crowded = ev.SessionStarted(workflow="w", agents=[f"agent-{i}" for i in range(100)])
    when = timeline.on_event(_recorded(crowded), crowded)
    assert len(when[0].args[5]) == timeline.SUMMARY_LIMIT


def test_timeline_summary_is_the_history_line() -> None:
    event = ev.MessageAdded(role="user", content="I was charged twice")
    assert timeline.summary_of(event) == history.summary(_recorded(event)) == "user: I was charged twice"


def test_tool_call_writes_never_regress_status_on_a_late_request() -> None:
    writes = tool_calls.on_requested(
        _recorded(ev.ToolCallRequested(call_id="c", tool="t"), 2), ev.ToolCallRequested(call_id="c", tool="t")
    )
    # What the write does to a finished call is tested on the real table:
    # tests/integration/test_projection_apply.py::test_late_tool_call_request_keeps_the_finished_status
    assert writes[0].args[6] == "requested"


def test_every_event_type_has_a_timeline_and_summary_handler() -> None:
    by_name = {p.name: p for p in PROJECTIONS}
    for cls in ev.ALL_EVENT_CLASSES:
        assert by_name["session_timeline"].handles(cls.TYPE) and by_name["session_summaries"].handles(cls.TYPE)


def test_projection_ignores_event_types_it_does_not_handle() -> None:
    recorded = _recorded(ev.MessageAdded(role="user", content="x"))
    stats = {p.name: p for p in PROJECTIONS}["tool_stats"]
    assert stats.writes_for(recorded, decode_or_error(recorded)) == []


def test_undecodable_event_fails_only_in_projections_that_handle_it() -> None:
    bad = RecordedEvent(
        position=1,
        session_id="s1",
        version=1,
        event_id=uuid.uuid4(),
        type="MessageAdded",
        schema_version=2,
        data={"role": 5},
        tenant="t1",
        recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    decoded = decode_or_error(bad)
    assert isinstance(decoded, Exception)
    stats = {p.name: p for p in PROJECTIONS}["tool_stats"]
    assert stats.writes_for(bad, decoded) == []
