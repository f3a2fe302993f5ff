"""Session lifecycle rules: start once, exist before anything else, nothing after closing."""

import pytest

from commands import models as cmd
from eventstore import events as ev
from eventstore.errors import (
    SessionAlreadyStartedError,
    SessionClosedError,
    SessionNotFoundError,
    SnapshotIncompatibleError,
)
from eventstore.state import SessionState

from .session_spec import given, started

CLOSERS = [
    (ev.SessionCompleted(outcome="resolved"), cmd.CompleteSession(outcome="resolved")),
    (ev.SessionFailed(reason="boom"), cmd.FailSession(reason="boom")),
    (ev.SessionCancelled(reason="dup", by="ops"), cmd.CancelSession(reason="dup", by="ops")),
]


def test_start_session_records_session_started():
    given().when(
        cmd.StartSession(
            workflow="support-case",
            title="Charged twice",
            agents=["billing"],
            labels={"channel": "email"},
            started_by="orchestrator",
        )
    ).then(
        ev.SessionStarted(
            workflow="support-case",
            title="Charged twice",
            agents=["billing"],
            labels={"channel": "email"},
            started_by="orchestrator",
        )
    )


def test_start_session_is_refused_when_already_started():
    given(started()).when(cmd.StartSession()).then_raises(SessionAlreadyStartedError, "session_already_started")


@pytest.mark.parametrize(
    "command",
    [
        cmd.AddMessage(role="user", content="hi"),
        cmd.RequestToolCall(call_id="c1", tool="refund"),
        cmd.CompleteToolCall(call_id="c1"),
        cmd.FailToolCall(call_id="c1", error="x"),
        cmd.UpdateStateSection(agent="billing", section="billing", changes={"a": 1}),
        cmd.SaveCheckpoint(name="triaged"),
        cmd.RequestApproval(action="refund", requested_by="policy"),
        cmd.DecideApproval(approval_id="a1", decision="approved", reviewer="ann"),
        cmd.RecordError(message="x"),
        cmd.RecordCompensation(step="refund"),
        cmd.CompleteSession(),
        cmd.FailSession(reason="x"),
        cmd.CancelSession(),
    ],
    ids=lambda c: c.type,
)
def test_command_is_refused_when_session_does_not_exist(command):
    error = given().when(command).then_raises(SessionNotFoundError, "session_not_found")
    assert error.status == 404


@pytest.mark.parametrize("closed, _", CLOSERS, ids=lambda x: getattr(x, "TYPE", ""))
@pytest.mark.parametrize(
    "command",
    [
        cmd.AddMessage(role="user", content="still there?"),
        cmd.RequestToolCall(call_id="c9", tool="refund"),
        cmd.UpdateStateSection(agent="billing", section="billing", changes={"a": 1}),
        cmd.SaveCheckpoint(name="late"),
        cmd.RequestApproval(action="refund", requested_by="policy"),
        cmd.RecordError(message="late"),
        cmd.RecordCompensation(step="refund"),
    ],
    ids=lambda c: c.type,
)
def test_command_is_refused_when_session_closed(closed, _, command):
    error = given(started(), closed).when(command).then_raises(SessionClosedError, "session_closed")
    assert error.status == 409
    assert error.extra["session_status"] in {"completed", "failed", "cancelled"}


@pytest.mark.parametrize("closed, command", CLOSERS, ids=lambda x: getattr(x, "TYPE", ""))
def test_closing_command_records_its_event(closed, command):
    given(started()).when(command).then(closed)


@pytest.mark.parametrize("closed, command", CLOSERS, ids=lambda x: getattr(x, "TYPE", ""))
def test_closing_command_yields_nothing_when_decided_again(closed, command):
    given(started(), closed).when(command).then_nothing()


def test_complete_session_is_refused_when_session_failed():
    given(started(), ev.SessionFailed(reason="boom")).when(cmd.CompleteSession()).then_raises(
        SessionClosedError, "session_closed"
    )


def test_cancel_session_is_refused_when_session_completed():
    given(started(), ev.SessionCompleted()).when(cmd.CancelSession()).then_raises(SessionClosedError, "session_closed")


def test_add_message_records_message_added():
    given(started()).when(cmd.AddMessage(role="assistant", content="Refund is on its way", agent="response")).then(
        ev.MessageAdded(role="assistant", content="Refund is on its way", agent="response")
    )


def test_record_error_and_compensation_record_their_events():
    given(started()).when(
        cmd.RecordError(message="rate limited", agent="billing", kind="rate_limited"),
        cmd.RecordCompensation(step="refund-1", reason="rejected", agent="billing"),
    ).then(
        ev.ErrorRecorded(message="rate limited", agent="billing", kind="rate_limited"),
        ev.CompensationRecorded(step="refund-1", reason="rejected", agent="billing"),
    )


def test_fork_session_records_session_forked_with_the_source_state():
    source = given(started(), ev.MessageAdded(role="user", content="hi")).state
    snapshot = source.to_snapshot()
    given().when(cmd.ForkSession(source_session_id="case-41", source_version=2, state=snapshot)).then(
        ev.SessionForked(source_session_id="case-41", source_version=2, state=snapshot)
    )


def test_fork_session_is_refused_when_target_exists():
    snapshot = SessionState().to_snapshot()
    given(started()).when(cmd.ForkSession(source_session_id="case-41", source_version=0, state=snapshot)).then_raises(
        SessionAlreadyStartedError, "session_already_started"
    )


def test_fork_session_is_refused_when_snapshot_format_unknown():
    given().when(cmd.ForkSession(source_session_id="case-41", source_version=1, state={})).then_raises(
        SnapshotIncompatibleError, "snapshot_incompatible"
    )
