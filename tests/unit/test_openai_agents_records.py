"""The shapes an Agents SDK agent's calls are recorded in: input items become messages that keep
every field (items without a role get one); a model's answer rebuilt from its record is the same
objects (fields as they were set, so the SDK's next request is the same); tool outputs as the
model sees them (a string, structured JSON, or the `str` of anything else);
an output schema too large for the request's parameters recorded by its hash."""

from __future__ import annotations

import json
from typing import Any

from agents import AgentOutputSchema, ModelResponse, ModelSettings, ToolOutputText, Usage, function_tool
from agents.testing import assistant_message, function_call
from pydantic import BaseModel, create_model

from agentlog.client import ModelUsage
from agentlog.integrations.openai_agents_records import (
    model_request,
    recorded_response,
    sdk_response,
    tool_call_id,
    tool_result,
)
from agentlog.integrations.replayer import RecordedModelResponse


@function_tool
def refund(charge: str) -> str:
    """Refund a card charge."""
    return "re_7"


class Found(BaseModel):
    charge: str


@function_tool(output_type=Found)
def typed_tool(charge: str) -> Found:
    """Find a charge."""
    return Found(charge=charge)


def test_input_items_are_messages_that_keep_every_field() -> None:
    items: list[Any] = [
        {"role": "user", "content": "I was charged twice"},
        {"type": "function_call", "call_id": "call_1", "name": "refund", "arguments": '{"charge":"ch_2"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "re_7"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]
    request = model_request("Be brief.", items, ModelSettings(temperature=0.0), [refund], None, [])
    assert request["system"] == "Be brief."
    assert request["messages"][0] == items[0]
    assert request["messages"][1] == {
        "role": "assistant",
        **items[1],
        "tool_calls": [{"id": "call_1", "name": "refund", "arguments": {"charge": "ch_2"}}],
    }
    assert request["messages"][2] == {"role": "tool", **items[2], "tool_call_id": "call_1"}
    assert request["messages"][3] == {"role": "assistant", **items[3]}
    assert request["tools"][0]["name"] == "refund" and request["tools"][0]["parameters"]["required"] == ["charge"]
    assert request["parameters"] == {"temperature": 0.0}
    assert model_request(None, "hello", ModelSettings(), [], None, [])["messages"] == [
        {"role": "user", "content": "hello"}
    ]


def test_a_recorded_answer_rebuilds_the_same_output_items() -> None:
    output = [
        assistant_message("Checking.", item_id="msg-1"),
        function_call("refund", {"charge": "ch_2"}, call_id="c1"),
    ]
    answer = ModelResponse(output=output, usage=Usage(input_tokens=3, output_tokens=2), response_id="resp-1")
    stored = json.loads(json.dumps(recorded_response(answer)))  # as the log gives it back
    assert stored["tool_calls"] == [{"id": "c1", "name": "refund", "arguments": {"charge": "ch_2"}}]
    assert stored["finish_reason"] == "tool_calls"
    rebuilt = sdk_response(RecordedModelResponse("m1", "gpt", **stored), ModelUsage(input_tokens=3, output_tokens=2))
    assert rebuilt.output == output and rebuilt.response_id == "resp-1"
    assert rebuilt.to_input_items() == answer.to_input_items()  # what the SDK sends next
    assert (rebuilt.usage.input_tokens, rebuilt.usage.output_tokens) == (3, 2)


def test_tool_outputs_are_recorded_as_the_model_sees_them_and_call_ids_kept_when_valid() -> None:
    assert tool_result("re_7") == "re_7"
    assert tool_result({"b": 1, "a": [1, 2]}) == "{'b': 1, 'a': [1, 2]}"  # what the model sees, key order kept
    assert tool_result(Found(charge="ch_2")) == "charge='ch_2'"
    assert tool_result(42) == "42"
    assert tool_result(ToolOutputText(text="re_7")) == {"type": "text", "text": "re_7"}
    assert tool_result([{"type": "text", "text": "a"}]) == [{"type": "text", "text": "a"}]
    assert tool_result(Found(charge="ch_2"), typed_tool) == {"charge": "ch_2"}  # a tool with an output type
    assert tool_call_id("call_Ab12") == "call_Ab12"
    assert tool_call_id("call id/1").startswith("oa.t.x.")


def test_an_output_schema_too_large_for_the_parameters_is_recorded_by_its_hash() -> None:
    small = AgentOutputSchema(create_model("Small", charge=(str, ...)))
    large = AgentOutputSchema(create_model("Large", **{f"field_{i:03}": (str, ...) for i in range(400)}))
    recorded_small = model_request(None, "hi", ModelSettings(), [], small, [])["parameters"]["output_schema"]
    recorded_large = model_request(None, "hi", ModelSettings(), [], large, [])["parameters"]["output_schema"]
    assert recorded_small["name"] == "Small" and "schema" in recorded_small
    assert recorded_large["name"] == "Large" and len(recorded_large["schema_sha256"]) == 64
