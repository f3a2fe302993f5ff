"""Model calls and context compactions as commands: recorded once, references checked against the
session as it stands, limits on the command, the fold's memory and the history line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from commands import models as cmd
from eventstore import events as ev
from eventstore.errors import (
    CompactionIdInUseError,
    ModelCallIdInUseError,
    SessionClosedError,
    ValidationProblemError,
)
from eventstore.history import describe
from eventstore.state import SessionState, fold

from .session_spec import given, started

USER = {"role": "user", "content": "I was charged twice"}
SYSTEM = "You are a support agent."
TOOLS = [{"name": "refund", "description": "refund a charge", "input_schema": {"type": "object"}}]


def first_call(**overrides) -> cmd.RecordModelCall:
    fields = {
        "call_id": "m1",
        "agent": "billing",
        "provider": "anthropic",
        "model": "claude-x",
        "request": {"system": SYSTEM, "messages": [{"ref": "message", "index": 0}], "tools": TOOLS},
        "response": {"content": "Let me look.", "finish_reason": "end_turn"},
        "usage": {"input_tokens": 120, "output_tokens": 8},
        "latency_ms": 640,
    }
    return cmd.RecordModelCall(**{**fields, **overrides})


def recorded(command: cmd.RecordModelCall, call_id: str | None = None) -> ev.ModelCallRecorded:
    fields = command.model_dump(exclude={"type", "call_id"})
    return ev.ModelCallRecorded(call_id=call_id or command.call_id, **fields)


MESSAGE = ev.MessageAdded(role="user", content="I was charged twice")
M1 = recorded(first_call())


def test_record_model_call_records_model_call_recorded():
    given(started(), MESSAGE).when(first_call()).then(M1)


def test_record_model_call_assigns_a_call_id_when_none_given():
    outcome = given(started(), MESSAGE).when(first_call(call_id=None))
    assert outcome.events == [recorded(first_call(), call_id="id-1")]


def test_record_model_call_yields_nothing_when_decided_again():
    given(started(), MESSAGE, M1).when(first_call()).then_nothing()


def test_record_model_call_is_refused_when_call_id_used_with_another_payload():
    given(started(), MESSAGE, M1).when(first_call(latency_ms=1)).then_raises(
        ModelCallIdInUseError, "model_call_id_in_use"
    )


def test_record_model_call_is_refused_when_session_closed():
    given(started(), MESSAGE, ev.SessionCompleted()).when(first_call()).then_raises(
        SessionClosedError, "session_closed"
    )


def test_record_model_call_is_refused_when_a_reference_does_not_resolve():
    request = {
        "messages": [
            {"ref": "message", "index": 1},
            {"ref": "call", "call_id": "m9"},
            {"ref": "call", "call_id": "m1", "start": 0, "stop": 2},
            {"ref": "compaction", "compaction_id": "k1"},
        ],
        "tools_from": "m1",
    }
    error = (
        given(started(), MESSAGE, M1)
        .when(first_call(call_id="m2", request=request))
        .then_raises(ValidationProblemError, "invalid_input")
    )
    fields = [e["field"] for e in error.extra["errors"]]
    assert fields == ["request.messages.0", "request.messages.1", "request.messages.2", "request.messages.3"]
    assert "1 messages" in error.extra["errors"][0]["reason"]
    assert "sent 1 messages" in error.extra["errors"][2]["reason"]


def test_references_that_stand_for_too_many_messages_are_refused():
    """References nest: doubling a compaction again and again would stand for 2**n messages, which
    `agentlog context` would then try to build. The resolved size is bounded on the way in."""
    wide = ev.ContextCompacted(compaction_id="k0", replaced=[], replacement=[USER] * 10_000)
    twenty = [{"ref": "compaction", "compaction_id": "k0"}] * 20  # 200,000 messages: the limit
    given(started(), wide).when(first_call(request={"messages": twenty})).then(
        recorded(first_call(request={"messages": twenty}))
    )
    error = (
        given(started(), wide)
        .when(first_call(request={"messages": [*twenty, USER]}))
        .then_raises(ValidationProblemError, "invalid_input")
    )
    assert error.extra["errors"] == [
        {
            "field": "request.messages",
            "reason": "stands for 200001 messages once its references are resolved; at most 200000",
        }
    ]
    compact = cmd.CompactContext(compaction_id="k1", replaced=[USER], replacement=[*twenty, USER])
    error = given(started(), wide).when(compact).then_raises(ValidationProblemError, "invalid_input")
    assert error.extra["errors"][0]["field"] == "replacement"


def test_record_model_call_is_refused_when_tools_from_names_no_earlier_call():
    request = {"messages": [USER], "tools_from": "m0"}
    error = given(started()).when(first_call(request=request)).then_raises(ValidationProblemError, "invalid_input")
    assert error.extra["errors"][0]["field"] == "request.tools_from"


def test_fold_remembers_each_call_with_the_messages_it_stands_for():
    m2 = recorded(
        first_call(
            call_id="m2",
            request={
                "system_from": "m1",
                "messages": [{"ref": "call", "call_id": "m1"}, {"ref": "response", "call_id": "m1"}, USER],
                "tools_from": "m1",
            },
        )
    )
    state = fold([started(), MESSAGE, M1, m2], SessionState.new("s", "t"))
    assert {k: n for k, (n, _) in state.model_calls.items()} == {"m1": 1, "m2": 3}
    assert state.counts.model_calls == 2
    assert SessionState.from_snapshot(state.to_snapshot()) == state


def test_snapshot_without_model_call_keys_reads_as_empty_memories():
    snapshot = fold([started()], SessionState.new("s", "t")).to_snapshot()
    del snapshot["model_calls"], snapshot["compactions"], snapshot["counts"]["model_calls"]
    state = SessionState.from_snapshot(snapshot)
    assert state.model_calls == {} and state.compactions == {} and state.counts.model_calls == 0


def test_compact_context_records_context_compacted_and_is_referenced_later():
    compact = cmd.CompactContext(
        compaction_id="k1",
        agent="billing",
        replaced=[{"ref": "call", "call_id": "m1"}],
        replacement=[{"role": "user", "content": "Summary: a double charge."}],
        reason="context window",
    )
    event = ev.ContextCompacted(**compact.model_dump(exclude={"type"}))
    given(started(), MESSAGE, M1).when(compact).then(event)
    given(started(), MESSAGE, M1, event).when(compact).then_nothing()
    given(started(), MESSAGE, M1, event).when(compact.model_copy(update={"reason": "other"})).then_raises(
        CompactionIdInUseError, "compaction_id_in_use"
    )
    later = first_call(call_id="m2", request={"messages": [{"ref": "compaction", "compaction_id": "k1"}, USER]})
    assert len(given(started(), MESSAGE, M1, event).when(later).events or []) == 1


@pytest.mark.parametrize(
    "request_body, where",
    [
        ({"messages": [{"content": "no role"}]}, "request.messages.0"),
        ({"messages": [{"ref": "call"}]}, "request.messages.0"),
        ({"messages": [{"ref": "call", "call_id": "bad id"}]}, "request.messages.0"),
        ({"messages": [{"ref": "call", "call_id": "m1", "start": 3, "stop": 1}]}, "request.messages.0"),
        ({"messages": [{"ref": "message", "index": 0, "role": "user"}]}, "request.messages.0"),
        ({"messages": [{"role": "user", "content": "\x00"}]}, "request.messages.0"),
        ({"messages": [USER], "tools": [{"description": "nameless"}]}, "request.tools.0"),
        ({"messages": [USER], "tools": TOOLS, "tools_from": "m1"}, "request"),
        ({"messages": [{"role": "user", "content": "x" * (65 * 1024)}]}, "request.messages.0"),
    ],
)
def test_record_model_call_is_refused_at_the_edge_when_malformed(request_body, where):
    with pytest.raises(ValidationError) as raised:
        cmd.RecordModelCall(model="m", request=request_body)
    assert ".".join(map(str, raised.value.errors()[0]["loc"])) == where


def test_model_call_commands_parse_in_a_multi_command_body():
    parsed = cmd.parse_command({"type": "record_model_call", "model": "m", "request": {"messages": [USER]}})
    assert isinstance(parsed, cmd.RecordModelCall)
    compact = {"type": "compact_context", "replaced": [{"ref": "message", "index": 0}]}
    assert isinstance(cmd.parse_command(compact), cmd.CompactContext)


def test_history_lines_of_model_calls_and_compactions():
    assert describe(M1) == (
        "model call m1: anthropic/claude-x, 1 message items (1 by reference) -> end_turn; 120+8 tokens in 640 ms"
    )
    compacted = ev.ContextCompacted(compaction_id="k1", replaced=[USER], replacement=[], kind="truncated")
    assert describe(compacted) == "context truncated (k1): 1 items replaced by 0"
