"""The shapes an OpenAI Agents SDK agent's calls are recorded in (openai_agents_replay.py records
and replays them): a model call's request and response as agentlog's ModelRequest / ModelResponse,
a tool call's id, arguments and result; and back, a recorded answer as the SDK's ModelResponse.

Invariants: a request is a pure function of what the SDK gave the model, so a re-run that gives the
same produces the same request; a response keeps the model's output items as they were set
(`exclude_unset`), so the objects rebuilt from it are the model's, and the SDK's next request
(which includes them) is the recorded one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agents import FunctionTool, ModelResponse, ModelSettings, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseOutputItem
from agents.models.interface import Model, ModelTracing
from agents.tool import Tool, ToolOutputFileContent, ToolOutputImage, ToolOutputText
from openai.types.responses import ResponseFunctionToolCall
from pydantic import BaseModel, TypeAdapter

from agentlog.client import ModelUsage
from agentlog.integrations.ids import session_id_for
from agentlog.integrations.replayer import RecordedModelResponse

_OUTPUT_ITEM: TypeAdapter[Any] = TypeAdapter(TResponseOutputItem)
MAX_SCHEMA_CHARS = 8 * 1024


@dataclass(frozen=True)
class ModelCall:
    """What the SDK gave a Model's get_response: to record as a request, or to pass on."""

    system_instructions: str | None
    input: str | list[TResponseInputItem]
    model_settings: ModelSettings
    tools: list[Tool]
    output_schema: AgentOutputSchemaBase | None
    handoffs: list[Handoff]
    tracing: ModelTracing
    previous_response_id: str | None = None
    conversation_id: str | None = None
    prompt: Any = None

    def request(self) -> dict[str, Any]:
        return model_request(
            self.system_instructions,
            self.input,
            self.model_settings,
            self.tools,
            self.output_schema,
            self.handoffs,
            previous_response_id=self.previous_response_id,
            conversation_id=self.conversation_id,
            prompt=self.prompt,
        )

    async def ask(self, model: Model) -> ModelResponse:
        return await model.get_response(
            self.system_instructions,
            self.input,
            self.model_settings,
            self.tools,
            self.output_schema,
            self.handoffs,
            self.tracing,
            previous_response_id=self.previous_response_id,
            conversation_id=self.conversation_id,
            prompt=self.prompt,
        )


class RecordedModelError(Exception):
    """The model call failed in the record: raised where the agent called the model."""


def tool_call_id(sdk_call_id: str) -> str:
    """The agentlog call id of the SDK's tool call id: itself when it is a valid agentlog id (OpenAI's
    `call_...` are), else mapped as ids.py maps session ids."""
    return session_id_for(sdk_call_id, "oa.t")


def model_request(
    system_instructions: str | None,
    input: str | list[TResponseInputItem],
    model_settings: ModelSettings,
    tools: list[Tool],
    output_schema: AgentOutputSchemaBase | None,
    handoffs: list[Handoff],
    *,
    previous_response_id: str | None = None,
    conversation_id: str | None = None,
    prompt: Any = None,
) -> dict[str, Any]:
    """A model call's request as recorded (agentlog's ModelRequest: system, messages, tools, parameters)."""
    items = [{"role": "user", "content": input}] if isinstance(input, str) else [_json(item) for item in input]
    parameters = {k: v for k, v in model_settings.to_json_dict().items() if v is not None}
    if output_schema is not None and not output_schema.is_plain_text():
        parameters["output_schema"] = _output_schema(output_schema)
    extra = {"previous_response_id": previous_response_id, "conversation_id": conversation_id, "prompt": prompt}
    parameters.update({k: _json(v) for k, v in extra.items() if v is not None})
    return {
        "system": system_instructions,
        "messages": [_message(item) for item in items],
        "tools": [_tool_definition(tool) for tool in tools] + [_handoff_definition(h) for h in handoffs],
        "parameters": parameters,
    }


def _output_schema(output_schema: AgentOutputSchemaBase) -> dict[str, Any]:
    """The output type's name and JSON schema; a schema too large for the request's parameters
    (16 KiB in all) by its SHA-256, which still tells a changed schema."""
    schema = output_schema.json_schema()
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    if len(text) <= MAX_SCHEMA_CHARS:
        return {"name": output_schema.name(), "schema": schema}
    return {"name": output_schema.name(), "schema_sha256": hashlib.sha256(text.encode()).hexdigest()}


def _message(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as a message of the record: it keeps every field; one without a `role` gets one."""
    if "role" in item:
        return item
    kind = str(item.get("type", ""))
    if kind == "function_call":
        call = {"id": item.get("call_id"), "name": item.get("name"), "arguments": arguments(item.get("arguments"))}
        return {"role": "assistant", **item, "tool_calls": [call]}
    if kind.endswith("_output"):
        return {"role": "tool", **item, "tool_call_id": item.get("call_id")}
    return {"role": "assistant", **item}


def _tool_definition(tool: Tool) -> dict[str, Any]:
    if isinstance(tool, FunctionTool):
        return {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.params_json_schema,
            "strict": tool.strict_json_schema,
        }
    return {"name": str(getattr(tool, "name", type(tool).__name__)), "type": type(tool).__name__}


def _handoff_definition(handoff: Handoff) -> dict[str, Any]:
    return {
        "name": handoff.tool_name,
        "description": handoff.tool_description,
        "parameters": handoff.input_json_schema,
        "handoff_to": handoff.agent_name,
    }


def recorded_response(response: ModelResponse) -> dict[str, Any]:
    """A model's answer as recorded: its output items as they were set, and a summary of its calls."""
    output = [item.model_dump(mode="json", exclude_unset=True) for item in response.output]
    calls = [
        {"id": item.call_id, "name": item.name, "arguments": arguments(item.arguments)}
        for item in response.output
        if isinstance(item, ResponseFunctionToolCall)
    ]
    return {
        "content": {"output": output, "response_id": response.response_id},
        "tool_calls": calls,
        "finish_reason": "tool_calls" if calls else "stop",
    }


def sdk_response(answer: RecordedModelResponse, usage: ModelUsage | None = None) -> ModelResponse:
    """The SDK's ModelResponse of a recorded answer (the same output objects the model gave)."""
    if answer.error is not None:
        raise RecordedModelError(f"model call {answer.call_id} failed in the record: {answer.error}")
    content = answer.content if isinstance(answer.content, dict) else {}
    output = [_OUTPUT_ITEM.validate_python(item) for item in content.get("output") or []]
    tokens_in, tokens_out = (usage.input_tokens or 0, usage.output_tokens or 0) if usage else (0, 0)
    counted = Usage(requests=1, input_tokens=tokens_in, output_tokens=tokens_out, total_tokens=tokens_in + tokens_out)
    return ModelResponse(output=output, usage=counted, response_id=content.get("response_id"))


def usage_of(response: ModelResponse) -> dict[str, Any]:
    usage = response.usage
    details = getattr(usage, "input_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or None
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens, "cached_tokens": cached}


def arguments(raw: Any) -> dict[str, Any]:
    """A tool call's arguments (a JSON string from the model) as an object."""
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"input": raw}
    return parsed if isinstance(parsed, dict) else {"input": parsed}


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_dump))


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    return str(value)


def tool_result(output: Any, tool: FunctionTool | None = None) -> Any:
    """A tool's output as recorded, so that served back it gives the model the same: a string as it
    is; a structured output (ToolOutputText..., or dicts with their `type`) or the output of a tool
    with an output type, as JSON; anything else as the `str` the SDK gives the model (a dict served
    back from the log would have jsonb's key order, and so another `str`)."""
    if isinstance(output, str):
        return output
    typed = tool is not None and (tool.output_json_schema is not None or tool._output_type_adapter is not None)
    if typed or _structured(output):
        return json.loads(json.dumps(output, default=_full_dump))
    return str(output)


def _structured(output: Any) -> bool:
    """Whether the SDK sends `output` to the model as structured content rather than its `str`."""
    if isinstance(output, list | tuple):
        return bool(output) and all(_structured(part) for part in output)
    return isinstance(output, ToolOutputText | ToolOutputImage | ToolOutputFileContent) or (
        isinstance(output, dict) and "type" in output
    )


def _full_dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def model_name(model: Any) -> str:
    """The name a model call is recorded under: the agent's model name, or its Model's (its
    `model` attribute, as OpenAI's models have; else its class name)."""
    return configured_model(model) or (type(model).__name__ if model is not None else "default")


def configured_model(model: Any) -> str | None:
    """The model's name when one was configured (not a class name): a re-run with another is divergent."""
    named = model if isinstance(model, str) else getattr(model, "model", None)
    return named if isinstance(named, str) and named else None
