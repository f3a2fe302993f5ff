"""The exact request rebuilt from references: a conversation recorded the way an agent would
(each call referencing the previous call, its answer, the session's messages, and a compaction),
rebuilt call by call and compared, as JSON, with the full requests the agent had in hand."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from commands import models as cmd
from commands.decide import decide_many
from eventstore.context import ContextIndex, context_at
from eventstore.envelope import RecordedEvent
from eventstore.errors import ContextReferenceError, ModelCallNotFoundError
from eventstore.provider_formats import to_anthropic, to_openai
from eventstore.registry import to_stored
from eventstore.state import SessionState, evolve

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SYSTEM = "You are the billing agent of ACME."
TOOLS = [
    {
        "type": "function",
        "function": {"name": "refund", "description": "refund a charge", "parameters": {"type": "object"}},
    }
]


class Recorder:
    """Decides commands like the command API and keeps the stored events."""

    def __init__(self) -> None:
        self.state = SessionState.new("case-42", "acme")
        self.recorded: list[RecordedEvent] = []
        self._ids = itertools.count(1)

    def send(self, *commands: cmd.Command) -> None:
        decision = decide_many(commands, self.state, now=T0, new_id=lambda: f"id-{next(self._ids)}")
        for event in decision.events:
            self.state = evolve(self.state, event)
            kind, schema, data = to_stored(event)
            version = self.state.version
            self.recorded.append(
                RecordedEvent(
                    position=version,
                    session_id="case-42",
                    version=version,
                    event_id=uuid.uuid4(),
                    type=kind,
                    schema_version=schema,
                    data=data,
                    tenant="acme",
                    recorded_at=T0 + timedelta(seconds=version),
                    metadata={"actor": "key_billing"},
                )
            )


def call(call_id: str, messages: list, *, response: dict, **request) -> cmd.RecordModelCall:
    return cmd.RecordModelCall(
        call_id=call_id,
        agent="billing",
        provider="openai",
        model="gpt-4o",
        request={"messages": messages, **request},
        response=response,
        usage={"input_tokens": 100, "output_tokens": 10},
    )


@pytest.fixture
def session() -> tuple[Recorder, dict[str, dict]]:
    """Three calls and a compaction; returns the recorder and the full request of each call."""
    r = Recorder()
    user = {"role": "user", "content": "I was charged twice, and I can't log in"}
    r.send(cmd.StartSession(agents=["billing"]), cmd.AddMessage(role="user", content=user["content"]))
    tool_call = {"id": "t1", "type": "function", "function": {"name": "refund", "arguments": '{"charge": "ch_2"}'}}
    answer1 = {"content": None, "tool_calls": [tool_call], "finish_reason": "tool_calls"}
    full: dict[str, dict] = {}
    full["m1"] = {"system": SYSTEM, "messages": [user], "tools": TOOLS, "parameters": {"temperature": 0}}
    r.send(call("m1", [{"ref": "message", "index": 0}], response=answer1, system=SYSTEM, tools=TOOLS,
                parameters={"temperature": 0}))  # fmt: skip

    tool_result = {"role": "tool", "tool_call_id": "t1", "content": '{"refund_id": "re_7"}'}
    assistant1 = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
    full["m2"] = {**full["m1"], "messages": [user, assistant1, tool_result]}
    items = [{"ref": "call", "call_id": "m1"}, {"ref": "response", "call_id": "m1"}, tool_result]
    answer2 = {"content": "Refunded. Now your login.", "finish_reason": "stop"}
    r.send(call("m2", items, response=answer2, system_from="m1", tools_from="m1", parameters={"temperature": 0}))

    # The agent compacts: the first two messages become one summary.
    summary = {"role": "user", "content": "Summary: double charge ch_2, refund requested as t1."}
    r.send(
        cmd.CompactContext(
            compaction_id="k1",
            agent="billing",
            replaced=[{"ref": "call", "call_id": "m2", "start": 0, "stop": 2}],
            replacement=[summary],
        )
    )
    r.send(cmd.AddMessage(role="user", content="And the login?"))
    assistant2 = {"role": "assistant", "content": "Refunded. Now your login."}
    followup = {"role": "user", "content": "And the login?"}
    full["m3"] = {**full["m1"], "messages": [summary, tool_result, assistant2, followup]}
    items = [
        {"ref": "compaction", "compaction_id": "k1"},
        {"ref": "call", "call_id": "m2", "start": 2},
        {"ref": "response", "call_id": "m2"},
        {"ref": "message", "index": 1},
    ]
    r.send(call("m3", items, response={"content": "Unlocked.", "finish_reason": "stop"}, system_from="m2",
                tools_from="m2", parameters={"temperature": 0}))  # fmt: skip
    return r, full


def test_context_rebuilds_every_request_exactly_through_references_and_compaction(session):
    recorder, full = session
    index = ContextIndex(recorder.recorded)
    for call_id, expected in full.items():
        assert index.context(call_id).request == expected, call_id


def test_context_at_a_version_is_the_last_call_at_or_before_it(session):
    recorder, full = session
    m2_version = next(e.version for e in recorder.recorded if e.data.get("call_id") == "m2")
    upto = [e for e in recorder.recorded if e.version <= m2_version + 2]
    context = context_at(upto)
    assert context.call.call_id == "m2" and context.request == full["m2"]


def test_context_is_refused_when_call_unknown_or_none_recorded(session):
    recorder, _ = session
    with pytest.raises(ModelCallNotFoundError) as raised:
        context_at(recorder.recorded, call_id="m9")
    assert raised.value.status == 404 and raised.value.extra == {"call_id": "m9"}
    with pytest.raises(ModelCallNotFoundError):
        context_at(recorder.recorded[:2])


def test_summaries_count_resolved_messages_and_inherited_tools(session):
    recorder, _ = session
    summaries = ContextIndex(recorder.recorded).summaries()
    assert [(s["call_id"], s["messages"], s["tools"]) for s in summaries] == [("m1", 1, 1), ("m2", 3, 1), ("m3", 4, 1)]


def test_a_long_chain_of_calls_resolves_without_recursion_and_in_order():
    r = Recorder()
    r.send(cmd.StartSession())
    messages: list[dict] = []
    previous = None
    for i in range(1200):  # deeper than Python's recursion limit
        new = {"role": "user", "content": f"turn {i}"}
        items = ([{"ref": "call", "call_id": previous}] if previous else []) + [new]
        messages.append(new)
        r.send(call(f"c{i}", items, response={"content": "ok"}))
        previous = f"c{i}"
    assert ContextIndex(r.recorded).context("c1199").request["messages"] == messages


def test_openai_format_keeps_openai_shaped_messages_as_sent(session):
    recorder, full = session
    body = to_openai("gpt-4o", ContextIndex(recorder.recorded).context("m2").request)
    assert body == {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": SYSTEM}, *full["m2"]["messages"]],
        "tools": TOOLS,
        "temperature": 0,
    }


def test_anthropic_format_turns_tool_calls_into_blocks(session):
    recorder, _ = session
    body = to_anthropic("claude-x", ContextIndex(recorder.recorded).context("m2").request)
    assert body["system"] == SYSTEM
    assert body["tools"] == [{"name": "refund", "description": "refund a charge", "input_schema": {"type": "object"}}]
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "refund", "input": {"charge": "ch_2"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": '{"refund_id": "re_7"}'}]},
    ]
    # and back: Anthropic-shaped messages become OpenAI's tool calls and tool messages
    back = to_openai("m", {"system": None, "messages": body["messages"], "tools": body["tools"], "parameters": {}})
    assert back["messages"][1]["tool_calls"][0]["function"] == {"name": "refund", "arguments": '{"charge": "ch_2"}'}
    assert back["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": '{"refund_id": "re_7"}'}


def test_a_request_that_references_itself_is_an_error_not_an_endless_expansion() -> None:
    """The decider refuses it, but the fold never refuses what is in the log (an imported file): a
    request holding a reference to its own call expanded forever (seen as a hung hypothesis run)."""
    r = Recorder()
    r.send(cmd.StartSession(agents=["billing"]))
    looping = call("m1", [{"ref": "message", "index": 0}], response={"content": "ok"})
    r.send(cmd.AddMessage(role="user", content="hi"), looping)
    itself = [{"ref": "call", "call_id": "m1", "start": 0, "stop": 1}, {"role": "user", "content": "x"}]
    last = r.recorded[-1]
    r.recorded[-1] = dataclasses.replace(
        last, data={**last.data, "request": {**last.data["request"], "messages": itself}}
    )
    with pytest.raises(ContextReferenceError, match="model call 'm1' references itself"):
        ContextIndex(r.recorded).context("m1")
