"""The one fold: what each event does to a session's state, and that the state survives a
snapshot round trip through JSON unchanged."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import orjson
import pytest

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.errors import SnapshotIncompatibleError, UnknownEventTypeError
from eventstore.registry import to_stored
from eventstore.state import (
    MAX_REMEMBERED,
    SNAPSHOT_FORMAT,
    VIEW_FORMAT,
    Counts,
    SessionState,
    evolve,
    fold,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
START = ev.SessionStarted(workflow="support-case", agents=["billing", "account"], allow_shared_sections=True)
SUPPORT_CASE = [
    START,
    ev.MessageAdded(role="user", content="I was charged twice, and I can't log in"),
    ev.StateSectionUpdated(agent="billing", section="billing", changes={"dup": "ch_2"}),
    ev.StateSectionUpdated(agent="account", section="account", changes={"locked": True}),
    ev.ToolCallRequested(call_id="c1", tool="payments.refund", agent="billing"),
    ev.ToolCallCompleted(call_id="c1", result={"refund_id": "re_7"}),
    ev.ApprovalRequested(approval_id="a1", action="refund", requested_by="policy", expires_at=T0 + timedelta(hours=1)),
    ev.ApprovalDecided(approval_id="a1", decision="approved", reviewer="ann", decided_at=T0),
    ev.ApprovalRequested(approval_id="a2", action="unlock", requested_by="policy"),
    ev.ErrorRecorded(message="CRM rate limited", agent="account"),
    ev.CheckpointSaved(name="refunded", step=3),
    ev.MessageAdded(role="assistant", content="Done", agent="response"),
    ev.SessionCompleted(outcome="resolved"),
]


def state_after(*events: ev.Event) -> SessionState:
    return fold(events, SessionState.new("case-42", "acme"))


def test_fold_of_no_events_is_a_session_that_does_not_exist():
    state = fold([])
    assert (state.status, state.version, state.exists) == ("none", 0, False)


def test_session_started_opens_the_session():
    state = state_after(START)
    assert (state.status, state.version, state.workflow) == ("open", 1, "support-case")
    assert state.agents == ("billing", "account") and state.allow_shared_sections


def test_message_added_counts_messages():
    assert state_after(START, *SUPPORT_CASE[1:2] * 3).counts == Counts(messages=3)


def test_tool_call_requested_opens_the_call_and_counts_it():
    state = state_after(START, ev.ToolCallRequested(call_id="c1", tool="search"))
    assert state.open_calls == {"c1": "search"} and state.counts.tool_calls == 1


@pytest.mark.parametrize(
    "finish",
    [ev.ToolCallCompleted(call_id="c1", result=1), ev.ToolCallFailed(call_id="c1", error="x")],
)
def test_tool_call_completed_or_failed_closes_the_call(finish):
    state = state_after(START, ev.ToolCallRequested(call_id="c1", tool="search"), finish)
    assert state.open_calls == {} and "c1" in state.finished_calls


def test_state_section_updated_merges_the_patch_and_records_the_first_writer():
    state = state_after(
        START,
        ev.StateSectionUpdated(agent="billing", section="s", changes={"a": 1, "b": {"c": 2}}),
        ev.StateSectionUpdated(agent="account", section="s", changes={"a": None, "b": {"d": 3}}),
    )
    assert state.sections == {"s": {"b": {"c": 2, "d": 3}}}
    assert state.section_owners == {"s": "billing"}


def test_checkpoint_saved_remembers_name_step_and_its_version():
    state = state_after(START, ev.CheckpointSaved(name="triaged", step=1))
    assert state.last_checkpoint == {"name": "triaged", "step": 1, "version": 2}


def test_approval_requested_then_decided_moves_it_from_pending_to_decided():
    requested = state_after(START, SUPPORT_CASE[6])
    assert requested.pending_approvals == {"a1": "2025-03-01T13:00:00+00:00"}
    decided = evolve(requested, SUPPORT_CASE[7])
    assert decided.pending_approvals == {} and decided.decided_approvals == {"a1": "approved"}


def test_error_recorded_counts_errors():
    assert state_after(START, ev.ErrorRecorded(message="x")).counts.errors == 1


def test_compensation_recorded_only_advances_the_version():
    before = state_after(START)
    after = evolve(before, ev.CompensationRecorded(step="c1"))
    assert after == replace(before, version=2)


@pytest.mark.parametrize(
    "closing, status",
    [
        (ev.SessionCompleted(), "completed"),
        (ev.SessionFailed(reason="x"), "failed"),
        (ev.SessionCancelled(), "cancelled"),
    ],
)
def test_closing_events_close_the_session(closing, status):
    state = state_after(START, closing)
    assert state.status == status and state.is_closed


def test_session_forked_starts_open_from_the_source_state():
    source = fold(SUPPORT_CASE, SessionState.new("case-41", "acme"))
    fork = state_after(ev.SessionForked(source_session_id="case-41", source_version=13, state=source.to_snapshot()))
    assert (fork.session_id, fork.tenant, fork.version) == ("case-42", "acme", 1)
    assert fork.status == "open"  # the source had completed; the fork goes on from its state
    assert fork.forked_from == {"session_id": "case-41", "version": 13}
    assert fork.sections == source.sections and fork.counts == source.counts


def test_evolve_leaves_the_previous_state_untouched():
    before = state_after(START, SUPPORT_CASE[2])
    snapshot = before.to_snapshot()
    evolve(before, ev.StateSectionUpdated(agent="billing", section="billing", changes={"x": 1}))
    assert before.to_snapshot() == snapshot


def test_evolve_is_refused_when_event_class_is_not_folded():
    class Unregistered(ev.Event):
        TYPE = "Unregistered"

    with pytest.raises(UnknownEventTypeError):
        evolve(SessionState(), Unregistered())


def test_fold_of_recorded_events_takes_stream_and_version_from_the_records():
    records = []
    for version, event in enumerate(SUPPORT_CASE, start=1):
        event_type, schema_version, data = to_stored(event)
        records.append(
            RecordedEvent(
                position=100 + version,
                session_id="case-42",
                version=version,
                event_id=uuid4(),
                type=event_type,
                schema_version=schema_version,
                data=data,
                tenant="acme",
                recorded_at=T0,
            )
        )
    assert fold(records) == state_after(*SUPPORT_CASE)


def test_snapshot_round_trips_through_json_unchanged():
    state = state_after(*SUPPORT_CASE)
    snapshot = orjson.loads(orjson.dumps(state.to_snapshot()))
    assert SessionState.from_snapshot(snapshot) == state


def test_snapshot_keeps_the_oldest_first_order_of_remembered_outcomes():
    # jsonb reorders object keys; the order decides what is forgotten first, so it is a list.
    requested = [ev.ToolCallRequested(call_id=f"c{i}", tool="t") for i in range(3)]
    failed = [ev.ToolCallFailed(call_id=f"c{i}", error="x") for i in (2, 0, 1)]
    state = state_after(START, *requested, *failed)
    assert [pair[0] for pair in state.to_snapshot()["finished_calls"]] == ["c2", "c0", "c1"]


def test_from_snapshot_is_refused_when_format_differs():
    with pytest.raises(SnapshotIncompatibleError):
        SessionState.from_snapshot({"format": 0})
    with pytest.raises(SnapshotIncompatibleError):
        SessionState.from_snapshot({"format": SNAPSHOT_FORMAT + 1})


def _with_memories(state: SessionState) -> SessionState:
    # every ordered memory filled, out of key order: the order is what is forgotten first
    return replace(
        state,
        finished_calls={"c2": "f2", "c0": "f0", "c1": "f1"},
        decided_approvals={"a9": "approved", "a1": "rejected"},
        model_calls={"m3": (4, "fp3"), "m1": (2, "fp1")},
        compactions={"k2": (7, "fpk")},
    )


@pytest.mark.parametrize("compact", [False, True], ids=["view", "stored"])
def test_both_snapshot_shapes_round_trip_through_json_with_their_order(compact):
    state = _with_memories(state_after(*SUPPORT_CASE))
    snapshot = orjson.loads(orjson.dumps(state.to_snapshot(compact=compact)))
    assert snapshot["format"] == (SNAPSHOT_FORMAT if compact else VIEW_FORMAT)
    back = SessionState.from_snapshot(snapshot)
    assert back == state
    assert list(back.finished_calls) == ["c2", "c0", "c1"] and list(back.model_calls) == ["m3", "m1"]


def test_the_stored_shape_keeps_memories_as_columns_and_reads_older_rows_of_the_view_shape():
    state = _with_memories(state_after(*SUPPORT_CASE))
    stored = state.to_snapshot(compact=True)
    assert stored["finished_calls"] == {"ids": ["c2", "c0", "c1"], "values": ["f2", "f0", "f1"]}
    assert stored["model_calls"] == {"ids": ["m3", "m1"], "counts": [4, 2], "fingerprints": ["fp3", "fp1"]}
    # rows written before format 2 (streams, fold snapshots) and SessionForked events hold the view
    assert SessionState.from_snapshot(state.to_snapshot()) == SessionState.from_snapshot(stored) == state
    without_memories = {k: v for k, v in state.to_snapshot().items() if k not in ("model_calls", "compactions")}
    assert SessionState.from_snapshot(without_memories).model_calls == {}


def test_finished_calls_are_bounded_so_the_state_stays_small():
    calls = [ev.ToolCallRequested(call_id=f"c{i}", tool="t") for i in range(MAX_REMEMBERED + 5)]
    done = [ev.ToolCallCompleted(call_id=f"c{i}") for i in range(MAX_REMEMBERED + 5)]
    state = state_after(START, *calls, *done)
    assert len(state.finished_calls) == MAX_REMEMBERED
    assert "c0" not in state.finished_calls and f"c{MAX_REMEMBERED + 4}" in state.finished_calls


def test_every_registered_event_type_has_a_fold():
    from eventstore.registry import EVENT_TYPES
    from eventstore.state import _HANDLERS

    assert set(_HANDLERS) == set(EVENT_TYPES.values())
