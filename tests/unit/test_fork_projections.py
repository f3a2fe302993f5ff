"""A fork's first event gives its read models what the fold gives the fork: the source's counts and
last checkpoint, its open tool calls and its pending approvals (regressions found by the pipeline
property test: a fork's summary started from zero, and a call or approval it inherited open was
missing from tool_calls_v1 / approvals_v1, though the fork accepts a result or decision for it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import to_stored
from eventstore.state import fold
from projections.read_models import approvals, summaries, tool_calls

EXPIRES = datetime(2999, 1, 1, 12, tzinfo=UTC)
SOURCE = [
    ev.SessionStarted(workflow="w", agents=["billing"]),
    ev.MessageAdded(role="user", content="charged twice"),
    ev.ToolCallRequested(call_id="c1", tool="refund", arguments={"amount": 42}),
    ev.ToolCallRequested(call_id="c2", tool="search"),
    ev.ToolCallCompleted(call_id="c2", result={}),
    ev.ErrorRecorded(message="timeout"),
    ev.ApprovalRequested(approval_id="a1", action="refund", requested_by="policy", expires_at=EXPIRES),
    ev.CheckpointSaved(name="asked", step=7),
]
FORK = ev.SessionForked(source_session_id="src", source_version=len(SOURCE), state=fold(SOURCE).to_snapshot())


def _recorded(event: ev.Event) -> RecordedEvent:
    type_, schema_version, data = to_stored(event)
    return RecordedEvent(
        position=99,
        session_id="fork",
        version=1,
        event_id=uuid.uuid4(),
        type=type_,
        schema_version=schema_version,
        data=data,
        tenant="t1",
        recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_fork_summary_starts_with_the_source_counts_and_last_checkpoint() -> None:
    change = summaries.change_for(FORK)
    assert (change.messages, change.tool_calls, change.errors) == (1, 2, 1)
    assert (change.checkpoint, change.step) == ("asked", 7)
    assert (change.forked_from, change.forked_from_version, change.is_start) == ("src", len(SOURCE), True)


def test_fork_tool_calls_hold_the_calls_the_source_had_open() -> None:
    (write,) = tool_calls.CALLS_PROJECTION.writes_for(_recorded(FORK), FORK)
    tenant, session, call_id, tool, agent, arguments, status, requested_version, *_ = write.args
    assert (tenant, session, call_id, tool, status, requested_version) == ("t1", "fork", "c1", "refund", "requested", 1)
    assert (agent, arguments) == (None, None)  # the snapshot does not keep them
    assert tool_calls.STATS_PROJECTION.writes_for(_recorded(FORK), FORK) == []  # counted where requested


def test_fork_approvals_hold_the_approvals_the_source_had_pending() -> None:
    (write,) = approvals.PROJECTION.writes_for(_recorded(FORK), FORK)
    assert write.args[:3] == ("t1", "fork", "a1")
    assert (write.args[7], write.args[8]) == (EXPIRES, "pending")
