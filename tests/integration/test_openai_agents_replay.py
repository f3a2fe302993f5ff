"""An OpenAI Agents SDK agent re-run from the record, under the SDK's own Runner, on the real stack:
a live run (a scripted Model, deterministic and offline; function tools) recorded through the
command API; the same agent re-run with its model and tools served from the record (the same
output, the same items, nothing live, nothing left over); a divergent agent (other instructions,
other input) stopped with ReplayDivergedError naming what differs; and a fork where the refund was
declined, re-run with only the model call after the override live, or stopped where the record
ends when nothing may run live; a tool call asked but never answered, run live only when allowed;
and a handoff to an agent with a structured output type, replayed across both agents."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, ModelResponse, RunConfig, Runner, Usage, function_tool
from agents.models.interface import Model
from agents.testing import assistant_message, function_call
from pydantic import BaseModel

from agentlog.client import AsyncAgentlogClient
from agentlog.integrations.openai_agents_replay import (
    AgentRecorder,
    AgentReplayer,
    ToolCallNotRecordedError,
    tool_call_id,
)
from agentlog.integrations.replayer import CallNotRecordedError, Record, ReplayDivergedError

NO_TRACING = RunConfig(tracing_disabled=True)
INSTRUCTIONS = "You are the billing agent."


class ScriptedModel(Model):
    """The 'model': its answer is a function of the tool outputs it was given (no network)."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                           *, previous_response_id, conversation_id, prompt) -> ModelResponse:  # fmt: skip
        self.calls += 1
        items = [] if isinstance(input, str) else json.loads(json.dumps(input))
        outputs = [item["output"] for item in items if item.get("type") == "function_call_output"]
        if not outputs:
            answer = function_call("lookup_charge", {"charge": "ch_2"}, call_id="call_lookup_1")
        elif len(outputs) == 1:
            answer = function_call("refund", {"charge": "ch_2"}, call_id="call_refund_1")
        elif "re_7" in outputs[-1]:
            answer = assistant_message("Refunded (re_7).", item_id="msg-1")
        else:
            answer = assistant_message(f"The refund failed ({outputs[-1]}); a person will call you.", item_id="msg-2")
        return ModelResponse(output=[answer], usage=Usage(input_tokens=10, output_tokens=5), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


class Unreachable(Model):
    """A model that must not be called: the re-run's answers come from the record."""

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        raise AssertionError("the model ran live")

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


RAN: list[str] = []


@function_tool
def lookup_charge(charge: str) -> str:
    """Look a card charge up."""
    RAN.append("lookup_charge")
    return f"{charge}: 42.00 EUR, a duplicate of ch_1"


@function_tool
def refund(charge: str) -> dict[str, str]:
    """Refund a card charge."""
    RAN.append("refund")
    return {"refund_id": "re_7", "charge": charge}  # a dict: the model sees its str, keys in this order


def support_agent(model: Model, instructions: str = INSTRUCTIONS) -> Agent[Any]:
    return Agent(name="support", instructions=instructions, model=model, tools=[lookup_charge, refund])


async def record_run(client: AsyncAgentlogClient) -> tuple[str, Any]:
    """A live run of the agent, recorded: (its session, the run's result)."""
    session = f"oa-case-{uuid.uuid4().hex[:10]}"
    await client.start_session(workflow="support-case", session_id=session)
    recorder = AgentRecorder(client, session, prefix="run1-")
    result = await Runner.run(
        recorder.agent(support_agent(ScriptedModel())), "I was charged twice", run_config=NO_TRACING
    )
    return session, result


async def test_an_sdk_agent_reruns_from_the_record_with_the_same_output(client: AsyncAgentlogClient) -> None:
    session, live = await record_run(client)
    assert live.final_output == "Refunded (re_7)."

    record = await Record.aload(client, session)
    assert [c.call_id for c in record.model_calls] == ["run1-m1", "run1-m2", "run1-m3"]
    assert [(c.tool, c.arguments, c.status) for c in record.tool_calls] == [
        ("lookup_charge", {"charge": "ch_2"}, "completed"),
        ("refund", {"charge": "ch_2"}, "completed"),
    ]
    assert record.tool_calls[0].call_id == tool_call_id("call_lookup_1") == "call_lookup_1"  # the model's id
    assert record.tool_calls[1].result == "{'refund_id': 're_7', 'charge': 'ch_2'}"  # as the model saw it
    assert record.model_calls[0].request.system == INSTRUCTIONS
    assert [t["name"] for t in record.model_calls[0].request.tools] == ["lookup_charge", "refund"]
    assert list(record.model_calls[1].response.tool_calls) == [
        {"id": "call_refund_1", "name": "refund", "arguments": {"charge": "ch_2"}}
    ]

    RAN.clear()
    replayer = AgentReplayer(record)
    again = await Runner.run(replayer.agent(support_agent(Unreachable())), "I was charged twice", run_config=NO_TRACING)
    assert again.final_output == live.final_output
    assert again.to_input_list() == live.to_input_list()  # every item, call ids and outputs included
    assert RAN == [] and replayer.live == [] and replayer.replayer.unused() == []
    assert [kind for kind, _ in replayer.served] == ["model", "tool", "model", "tool", "model"]
    assert again.context_wrapper.usage.output_tokens == live.context_wrapper.usage.output_tokens == 15


@pytest.mark.parametrize(
    ("instructions", "question", "difference"),
    [
        ("You are the refunds agent.", "I was charged twice", "request.system"),
        (INSTRUCTIONS, "I was charged three times", "request.messages"),
    ],
)
async def test_a_divergent_sdk_agent_fails_closed_naming_the_difference(
    client: AsyncAgentlogClient, instructions: str, question: str, difference: str
) -> None:
    session, _ = await record_run(client)
    RAN.clear()
    replayer = await AgentReplayer.aload(client, session, live_model=True, live_tools=["lookup_charge", "refund"])
    with pytest.raises(ReplayDivergedError) as diverged:
        await Runner.run(replayer.agent(support_agent(ScriptedModel(), instructions)), question, run_config=NO_TRACING)
    assert diverged.value.difference == difference
    assert diverged.value.call.startswith("model call run1-m1")  # the first call, named
    assert RAN == [] and replayer.live == []  # a divergent recorded call never runs live


async def test_a_fork_with_a_declined_refund_reruns_with_only_the_next_model_call_live(
    client: AsyncAgentlogClient,
) -> None:
    session, _ = await record_run(client)
    refund_call = (await Record.aload(client, session)).tool_calls[1]
    assert refund_call.requested is not None
    fork = f"{session}-declined"
    await client.fork_session(session, at_version=refund_call.requested.version, new_session_id=fork)
    await client.complete_tool_call(fork, refund_call.call_id, "declined: card expired")

    # nothing may run live: the re-run stops where the fork's record ends, naming the call
    closed = await AgentReplayer.aload(client, fork)
    with pytest.raises(CallNotRecordedError) as missing:
        await Runner.run(closed.agent(support_agent(Unreachable())), "I was charged twice", run_config=NO_TRACING)
    assert missing.value.call.startswith("model call 3 of the re-run")
    assert fork in str(missing.value)

    # the model may run live past the record; the tools never run
    RAN.clear()
    model = ScriptedModel()
    replayer = await AgentReplayer.aload(client, fork, live_model=True)
    rerun = await Runner.run(replayer.agent(support_agent(model)), "I was charged twice", run_config=NO_TRACING)
    assert rerun.final_output == "The refund failed (declined: card expired); a person will call you."
    assert RAN == [] and model.calls == 1
    assert [(call.kind, call.name) for call in replayer.live] == [("model", "ScriptedModel")]
    await client.run_commands(fork, replayer.live_commands())

    # the fork now holds the re-run: replayed again, it runs nothing live
    complete = await AgentReplayer.aload(client, fork)
    again = await Runner.run(complete.agent(support_agent(Unreachable())), "I was charged twice", run_config=NO_TRACING)
    assert again.final_output == rerun.final_output and complete.live == []


async def test_a_tool_call_the_record_asked_but_never_answered_runs_live_only_when_allowed(
    client: AsyncAgentlogClient,
) -> None:
    session, live = await record_run(client)
    refund_call = (await Record.aload(client, session)).tool_calls[1]
    assert refund_call.requested is not None
    fork = f"{session}-unanswered"  # the run stopped after asking for the refund
    await client.fork_session(session, at_version=refund_call.requested.version, new_session_id=fork)

    RAN.clear()
    closed = await AgentReplayer.aload(client, fork, live_model=True)
    with pytest.raises(ToolCallNotRecordedError) as missing:  # as it is: the Runner does not wrap it
        await Runner.run(closed.agent(support_agent(ScriptedModel())), "I was charged twice", run_config=NO_TRACING)
    assert missing.value.call.startswith("tool call call_refund_1 (refund")
    assert "has no result in the record" in str(missing.value) and RAN == []

    replayer = await AgentReplayer.aload(client, fork, live_model=True, live_tools=["refund"])
    rerun = await Runner.run(
        replayer.agent(support_agent(ScriptedModel())), "I was charged twice", run_config=NO_TRACING
    )
    assert rerun.final_output == live.final_output and RAN == ["refund"]
    assert [call.kind for call in replayer.live] == ["tool", "model"]
    assert replayer.live[0].call_id == "call_refund_1" and replayer.live[0].requested_in_record
    await client.run_commands(fork, replayer.live_commands())  # the result, then the model's answer
    after = await Record.aload(client, fork)
    assert [(c.call_id, c.status) for c in after.tool_calls][-1] == ("call_refund_1", "completed")
    assert len(after.model_calls) == 3


class Refund(BaseModel):
    charge: str
    refund_id: str


class HandoffModel(Model):
    """Triage hands off to billing; billing refunds and answers with a structured Refund."""

    async def get_response(self, system_instructions, input, *args: Any, **kwargs: Any) -> ModelResponse:
        items = json.loads(json.dumps(input))
        if system_instructions == "Triage.":
            answer = function_call("transfer_to_billing", {}, call_id="call_handoff_1")
        elif not any(item.get("call_id") == "call_refund_9" for item in items if "output" in item):
            answer = function_call("refund", {"charge": "ch_9"}, call_id="call_refund_9")
        else:
            answer = assistant_message('{"charge":"ch_9","refund_id":"re_9"}', item_id="msg-9")
        return ModelResponse(output=[answer], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


def triage(model: Model) -> Agent[Any]:
    billing = Agent(name="billing", instructions="Billing.", model=model, tools=[refund], output_type=Refund)
    return Agent(name="triage", instructions="Triage.", model=model, handoffs=[billing])


async def test_an_sdk_agent_with_a_handoff_and_structured_output_reruns_from_the_record(
    client: AsyncAgentlogClient,
) -> None:
    session = f"oa-handoff-{uuid.uuid4().hex[:10]}"
    await client.start_session(workflow="support-case", session_id=session)
    recorder = AgentRecorder(client, session)
    live = await Runner.run(recorder.agent(triage(HandoffModel())), "Refund ch_9", run_config=NO_TRACING)
    assert live.final_output == Refund(charge="ch_9", refund_id="re_9")
    assert live.last_agent.name == "billing"

    record = await Record.aload(client, session)
    assert [c.request.system for c in record.model_calls] == ["Triage.", "Billing.", "Billing."]
    assert record.model_calls[0].request.tools[0]["handoff_to"] == "billing"
    assert record.model_calls[1].request.parameters["output_schema"]["name"] == "Refund"

    RAN.clear()
    replayer = AgentReplayer(record)
    again = await Runner.run(replayer.agent(triage(Unreachable())), "Refund ch_9", run_config=NO_TRACING)
    assert again.final_output == live.final_output and again.last_agent.name == "billing"
    assert again.to_input_list() == live.to_input_list()
    assert RAN == [] and replayer.live == [] and replayer.replayer.unused() == []
