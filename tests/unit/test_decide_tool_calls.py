"""A tool result needs an open call; a call id is used once; repeats yield no events."""

from commands import models as cmd
from eventstore import events as ev
from eventstore.errors import SessionClosedError, ToolCallIdInUseError, ToolCallNotOpenError

from .session_spec import given, started

REQUESTED = ev.ToolCallRequested(call_id="c1", tool="payments.refund", arguments={"amount": 42}, agent="billing")


def test_request_tool_call_records_tool_call_requested():
    given(started()).when(
        cmd.RequestToolCall(call_id="c1", tool="payments.refund", arguments={"amount": 42}, agent="billing")
    ).then(REQUESTED)


def test_request_tool_call_assigns_a_call_id_when_none_given():
    given(started()).when(cmd.RequestToolCall(tool="search")).then(ev.ToolCallRequested(call_id="id-1", tool="search"))


def test_request_tool_call_yields_nothing_when_decided_again():
    given(started(), REQUESTED).when(cmd.RequestToolCall(call_id="c1", tool="payments.refund")).then_nothing()


def test_request_tool_call_is_refused_when_call_id_open_for_another_tool():
    given(started(), REQUESTED).when(cmd.RequestToolCall(call_id="c1", tool="search")).then_raises(
        ToolCallIdInUseError, "tool_call_id_in_use"
    )


def test_request_tool_call_is_refused_when_call_id_already_finished():
    finished = ev.ToolCallCompleted(call_id="c1", result="ok")
    given(started(), REQUESTED, finished).when(cmd.RequestToolCall(call_id="c1", tool="payments.refund")).then_raises(
        ToolCallIdInUseError, "tool_call_id_in_use"
    )


def test_complete_tool_call_records_tool_call_completed():
    given(started(), REQUESTED).when(
        cmd.CompleteToolCall(call_id="c1", result={"refund_id": "r-7"}, duration_ms=120)
    ).then(ev.ToolCallCompleted(call_id="c1", result={"refund_id": "r-7"}, duration_ms=120))


def test_complete_tool_call_is_refused_when_call_never_requested():
    error = (
        given(started())
        .when(cmd.CompleteToolCall(call_id="nope"))
        .then_raises(ToolCallNotOpenError, "tool_call_not_open")
    )
    assert error.extra == {"call_id": "nope"}


def test_complete_tool_call_yields_nothing_when_decided_again_with_same_result():
    done = ev.ToolCallCompleted(call_id="c1", result={"b": 2, "a": [1]}, duration_ms=120)
    # Key order and duration do not matter: the same result is the same outcome.
    given(started(), REQUESTED, done).when(
        cmd.CompleteToolCall(call_id="c1", result={"a": [1], "b": 2}, duration_ms=135)
    ).then_nothing()


def test_complete_tool_call_is_refused_when_already_completed_with_another_result():
    done = ev.ToolCallCompleted(call_id="c1", result="first")
    given(started(), REQUESTED, done).when(cmd.CompleteToolCall(call_id="c1", result="second")).then_raises(
        ToolCallNotOpenError, "tool_call_not_open"
    )


def test_complete_tool_call_is_refused_when_call_failed():
    failed = ev.ToolCallFailed(call_id="c1", error="timeout")
    given(started(), REQUESTED, failed).when(cmd.CompleteToolCall(call_id="c1", result="late")).then_raises(
        ToolCallNotOpenError, "tool_call_not_open"
    )


def test_fail_tool_call_records_tool_call_failed():
    given(started(), REQUESTED).when(
        cmd.FailToolCall(call_id="c1", error="gateway timeout", duration_ms=30000, retriable=True)
    ).then(ev.ToolCallFailed(call_id="c1", error="gateway timeout", duration_ms=30000, retriable=True))


def test_fail_tool_call_yields_nothing_when_decided_again_with_same_error():
    failed = ev.ToolCallFailed(call_id="c1", error="timeout")
    given(started(), REQUESTED, failed).when(cmd.FailToolCall(call_id="c1", error="timeout")).then_nothing()


def test_complete_tool_call_is_refused_when_session_closed_with_the_call_open():
    given(started(), REQUESTED, ev.SessionCancelled()).when(
        cmd.CompleteToolCall(call_id="c1", result="late")
    ).then_raises(SessionClosedError, "session_closed")


def test_complete_tool_call_yields_nothing_when_repeated_after_session_closed():
    done = ev.ToolCallCompleted(call_id="c1", result="ok")
    given(started(), REQUESTED, done, ev.SessionCompleted()).when(
        cmd.CompleteToolCall(call_id="c1", result="ok")
    ).then_nothing()
