"""The replayer's matching, on a record built in memory: served by call id or by order and
arguments, each recorded call once; a recorded failure raised as it failed; inputs that differ from
the record are a divergence naming what differs; a call the record lacks is an error naming it,
and runs live only where a live implementation was given, listed with the commands that record it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentlog.client import KnownToolCall, ModelContext
from agentlog.client.commands import CompleteToolCall, RecordModelCall, RequestToolCall
from agentlog.integrations.replayer import (
    CallNotRecordedError,
    Record,
    RecordedToolFailure,
    ReplayDivergedError,
    Replayer,
)

AT = datetime(2026, 12, 2, tzinfo=UTC)
ASK = {"system": "be brief", "messages": [{"role": "user", "content": "hi"}]}


def tool(call_id: str, name: str, arguments: dict[str, Any], **outcome: Any) -> KnownToolCall:
    return KnownToolCall(call_id=call_id, tool=name, arguments=arguments, **({"status": "completed"} | outcome))


def model(call_id: str, request: dict[str, Any], content: str) -> ModelContext:
    return ModelContext.model_validate(
        {
            "session_id": "s",
            "version": 1,
            "recorded_at": AT,
            "call_id": call_id,
            "model": "m",
            "request": request,
            "response": {"content": content},
        }
    )


RECORD = Record(
    "s",
    9,
    (
        tool("t1", "lookup", {"id": 1}, result="one"),
        tool("t2", "lookup", {"id": 2}, result="two"),
        tool("t3", "lookup", {"id": 1}, result="one again"),
        tool("t4", "refund", {"id": 1}, status="failed", error="card expired"),
        tool("t5", "notify", {}, status="requested"),
    ),
    (model("m1", ASK, "hello"), model("m2", ASK, "hello again")),
)

pytestmark = pytest.mark.unit


def test_replayer_serves_by_call_id_and_by_order_and_arguments() -> None:
    replayer = Replayer(RECORD)
    assert replayer.tool("lookup", {"id": 2}, call_id="t2") == "two"
    assert replayer.tool("lookup", {"id": 1}) == "one"
    assert replayer.tool("lookup", {"id": 1}) == "one again"  # the next recorded one: each is served once
    assert replayer.model(ASK, model="m").content == "hello"
    assert replayer.model(dict(ASK, tools=[], parameters={})).content == "hello again"  # empty parts match absent ones
    assert replayer.served == [("tool", "t2"), ("tool", "t1"), ("tool", "t3"), ("model", "m1"), ("model", "m2")]
    assert replayer.unused() == [("tool", "t4"), ("tool", "t5")]


def test_replayer_raises_a_recorded_failure_as_it_failed() -> None:
    with pytest.raises(RecordedToolFailure) as failed:
        Replayer(RECORD).tool("refund", {"id": 1}, call_id="t4")
    assert (failed.value.call_id, failed.value.error) == ("t4", "card expired")


@pytest.mark.parametrize(
    ("name", "arguments", "call_id", "difference"),
    [("lookup", {"id": 3}, "t1", "arguments"), ("refund", {"id": 1}, "t1", "tool")],
)
def test_replayer_refuses_a_recorded_call_with_other_inputs(name, arguments, call_id, difference) -> None:
    with pytest.raises(ReplayDivergedError) as diverged:
        Replayer(RECORD, live_tools={name: lambda **_: "live"}).tool(name, arguments, call_id=call_id)
    assert diverged.value.difference == difference and diverged.value.call.startswith(f"tool call {call_id} ({name}")


def test_replayer_refuses_a_model_request_that_differs_from_the_record() -> None:
    replayer = Replayer(RECORD, live_model=lambda request, name: {"content": "live"})
    with pytest.raises(ReplayDivergedError) as diverged:
        replayer.model({**ASK, "system": "be long"}, call_id="m1")
    assert diverged.value.difference == "request.system"
    with pytest.raises(ReplayDivergedError):
        replayer.model(ASK, model="other", call_id="m1")
    assert replayer.live == []


def test_replayer_fails_closed_naming_the_call_the_record_lacks() -> None:
    replayer = Replayer(RECORD)
    with pytest.raises(CallNotRecordedError) as missing:
        replayer.tool("lookup", {"id": 9})
    assert missing.value.call == 'tool call #1 (lookup {"id":9})'
    with pytest.raises(CallNotRecordedError, match=r"tool call t5 \(notify \{\}\) has no result in the record"):
        replayer.tool("notify", call_id="t5")
    with pytest.raises(CallNotRecordedError, match="model call m3"):
        replayer.model({"messages": [{"role": "user", "content": "bye"}]}, model="m", call_id="m3")
    assert replayer.live == [] and replayer.served == []


def test_replayer_runs_live_only_what_it_was_given_and_lists_the_commands_to_record_it() -> None:
    replayer = Replayer(
        RECORD,
        live_tools={"lookup": lambda id: f"live {id}", "notify": lambda: "sent"},
        live_model=lambda request, name: {"content": "live answer"},
    )
    assert replayer.tool("lookup", {"id": 9}, call_id="t9") == "live 9"
    assert replayer.tool("notify", call_id="t5") == "sent"  # requested in the record, its result live
    answer = replayer.model({"messages": [{"role": "user", "content": "bye"}]}, model="m", call_id="m3")
    assert answer.content == "live answer"
    assert [(call.kind, call.call_id) for call in replayer.live] == [("tool", "t9"), ("tool", "t5"), ("model", "m3")]
    commands = replayer.live_commands()
    assert [type(c) for c in commands] == [RequestToolCall, CompleteToolCall, CompleteToolCall, RecordModelCall]
    assert commands[0].item() == {
        "type": "request_tool_call",
        "tool": "lookup",
        "arguments": {"id": 9},
        "call_id": "t9",
    }
    assert commands[3].item()["response"] == {"content": "live answer"}


def test_replayer_wants_the_model_named_before_a_model_call_runs_live() -> None:
    replayer = Replayer(RECORD, live_model=lambda request, name: {"content": "live"})
    with pytest.raises(ValueError, match="name its model"):
        replayer.model({"messages": []}, call_id="m9")
    assert replayer.live == []
