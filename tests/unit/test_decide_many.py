"""Several commands decided atomically in order, each on the state the previous ones made."""

import re
from datetime import datetime

import pytest

from commands import models as cmd
from commands.decide import _DECIDERS, decide
from eventstore import events as ev
from eventstore.errors import SessionClosedError, ToolCallNotOpenError
from eventstore.state import SessionState

from .session_spec import given, started


def test_decide_many_decides_each_command_on_the_state_of_the_previous_ones():
    given().when(
        cmd.StartSession(agents=["billing"]),
        cmd.RequestToolCall(tool="payments.refund", agent="billing"),
        cmd.CompleteToolCall(call_id="id-1", result="r-7"),
        cmd.CompleteSession(outcome="resolved"),
    ).then(
        ev.SessionStarted(agents=["billing"]),
        ev.ToolCallRequested(call_id="id-1", tool="payments.refund", agent="billing"),
        ev.ToolCallCompleted(call_id="id-1", result="r-7"),
        ev.SessionCompleted(outcome="resolved"),
    )


def test_decide_many_refuses_all_when_one_command_is_refused():
    given(started()).when(
        cmd.AddMessage(role="user", content="hi"),
        cmd.CompleteToolCall(call_id="nope"),
    ).then_raises(ToolCallNotOpenError, "tool_call_not_open")


def test_decide_many_refuses_a_command_after_one_that_closes_the_session():
    given(started()).when(cmd.CompleteSession(), cmd.AddMessage(role="user", content="hi")).then_raises(
        SessionClosedError, "session_closed"
    )


def test_decide_many_yields_nothing_for_a_repeat_inside_the_batch():
    given(started()).when(cmd.SaveCheckpoint(name="triaged", step=1), cmd.SaveCheckpoint(name="triaged", step=1)).then(
        ev.CheckpointSaved(name="triaged", step=1)
    )


def test_save_checkpoint_records_it_again_when_events_happened_since():
    given(started(), ev.CheckpointSaved(name="loop", step=1), ev.MessageAdded(role="user", content="again")).when(
        cmd.SaveCheckpoint(name="loop", step=1)
    ).then(ev.CheckpointSaved(name="loop", step=1))


def test_decide_is_refused_when_now_is_naive():
    with pytest.raises(ValueError):
        decide(cmd.StartSession(), SessionState(), now=datetime(2025, 1, 1), new_id=str)


def test_decide_has_a_decider_named_after_every_command():
    command_types = [
        value
        for value in vars(cmd).values()
        if isinstance(value, type) and issubclass(value, cmd.Command) and value is not cmd.Command
    ]
    assert len(command_types) == 23
    for command_type in command_types:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", command_type.__name__).lower()
        assert _DECIDERS[command_type].__name__ == f"decide_{snake}"
