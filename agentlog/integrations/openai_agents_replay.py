"""Record an OpenAI Agents SDK agent's model and tool calls in an agentlog session, and re-run the
agent from that record (replayer.py does the matching): the SDK's own Runner runs the agent, but
its model is a `Model` that answers with the recorded responses and its function tools answer
with the recorded results.

    recorder = AgentRecorder(client, "case-9")                   # client: an AsyncAgentlogClient
    await Runner.run(recorder.agent(agent), "I was charged twice")
    replayer = await AgentReplayer.aload(client, "case-9")       # or a fork of it
    again = await Runner.run(replayer.agent(agent), "I was charged twice")

Invariants:
- What is recorded is what the SDK exchanged: a model call's request is the system instructions,
  the input items (each a message: items without a `role` get one, "assistant" or "tool" for
  outputs), the tools and handoffs offered and the settings; its response keeps the model's output
  items as they were set (`content.output`), so a replayed answer is the same objects, and the next
  request of the re-run is the recorded one. A tool call is the model's call id (mapped to a valid
  agentlog id when it is not one), the parsed arguments and the tool's output (JSON as given; other
  objects as their JSON dump or `str`).
- Fail closed: the n-th model call of the re-run is served by the n-th recorded one only when its
  request (and the model's name, when one was configured) is the same (ReplayDivergedError names
  what differs); past the record it is
  CallNotRecordedError unless `live_model=True`. A tool call is served by the recorded call with
  its call id and arguments; one the record lacks is CallNotRecordedError unless its tool is in
  `live_tools`. Local tools that cannot be served (computer, shell, MCP servers) are refused when
  the agent is wrapped, never run live silently. What ran live is in `live`, and
  `live_commands()` records it.
- Streaming (`Runner.run_streamed`) is neither recorded nor replayed: both models refuse it.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from agents import Agent, FunctionTool, ModelResponse, ModelSettings, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseOutputItem
from agents.models.interface import Model
from agents.models.multi_provider import MultiProvider
from agents.tool import Tool
from agents.tool_context import ToolContext
from openai.types.responses import ResponseFunctionToolCall
from pydantic import BaseModel, TypeAdapter

from agentlog.client import AsyncAgentlogClient
from agentlog.client.commands import Command
from agentlog.integrations.ids import session_id_for
from agentlog.integrations.replayer import (
    CallNotRecordedError,
    LiveCall,
    Record,
    RecordedModelResponse,
    Replayer,
)

# Tools the model's provider runs: their calls and results are output items of the model's answer
HOSTED_TOOLS = {
    "FileSearchTool",
    "WebSearchTool",
    "CodeInterpreterTool",
    "ImageGenerationTool",
    "HostedMCPTool",
    "ToolSearchTool",
}
_OUTPUT_ITEM: TypeAdapter[Any] = TypeAdapter(TResponseOutputItem)


class RecordedModelError(Exception):
    """The model call failed in the record: raised where the agent called the model."""


# --- the shapes recorded --------------------------------------------------------------------------


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
        parameters["output_schema"] = {"name": output_schema.name(), "schema": output_schema.json_schema()}
    extra = {"previous_response_id": previous_response_id, "conversation_id": conversation_id, "prompt": prompt}
    parameters.update({k: _json(v) for k, v in extra.items() if v is not None})
    return {
        "system": system_instructions,
        "messages": [_message(item) for item in items],
        "tools": [_tool_definition(tool) for tool in tools] + [_handoff_definition(h) for h in handoffs],
        "parameters": parameters,
    }


def _message(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as a message of the record: it keeps every field; one without a `role` gets one."""
    if "role" in item:
        return item
    kind = str(item.get("type", ""))
    if kind == "function_call":
        call = {"id": item.get("call_id"), "name": item.get("name"), "arguments": _arguments(item.get("arguments"))}
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
        {"id": item.call_id, "name": item.name, "arguments": _arguments(item.arguments)}
        for item in response.output
        if isinstance(item, ResponseFunctionToolCall)
    ]
    return {
        "content": {"output": output, "response_id": response.response_id},
        "tool_calls": calls,
        "finish_reason": "tool_calls" if calls else "stop",
    }


def sdk_response(answer: RecordedModelResponse, usage: Any = None) -> ModelResponse:
    """The SDK's ModelResponse of a recorded answer (the same output objects the model gave)."""
    if answer.error is not None:
        raise RecordedModelError(f"model call {answer.call_id} failed in the record: {answer.error}")
    content = answer.content if isinstance(answer.content, dict) else {}
    output = [_OUTPUT_ITEM.validate_python(item) for item in content.get("output") or []]
    tokens_in, tokens_out = (usage.input_tokens or 0, usage.output_tokens or 0) if usage else (0, 0)
    counted = Usage(requests=1, input_tokens=tokens_in, output_tokens=tokens_out, total_tokens=tokens_in + tokens_out)
    return ModelResponse(output=output, usage=counted, response_id=content.get("response_id"))


def _usage(response: ModelResponse) -> dict[str, Any]:
    usage = response.usage
    details = getattr(usage, "input_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or None
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens, "cached_tokens": cached}


def _arguments(raw: Any) -> dict[str, Any]:
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


def tool_result(output: Any) -> Any:
    """A tool's output as recorded: JSON as given; a pydantic model as its dump; anything else `str`."""
    if isinstance(output, BaseModel):
        return output.model_dump(mode="json")
    try:
        return json.loads(json.dumps(output))
    except (TypeError, ValueError):
        return str(output)


def model_name(model: Any) -> str:
    """The name a model call is recorded under: the agent's model name, or its Model's (its
    `model` attribute, as OpenAI's models have; else its class name)."""
    return configured_model(model) or (type(model).__name__ if model is not None else "default")


def configured_model(model: Any) -> str | None:
    """The model's name when one was configured (not a class name): a re-run with another is divergent."""
    named = model if isinstance(model, str) else getattr(model, "model", None)
    return named if isinstance(named, str) and named else None


def _live_model(agent: Agent[Any]) -> Model:
    if isinstance(agent.model, Model):
        return agent.model
    return MultiProvider().get_model(agent.model)


def _wrap_agents(agent: Agent[Any], wrap: Any, made: dict[int, Agent[Any]]) -> Agent[Any]:
    """A clone of `agent` (and of the agents it hands off to) made by `wrap(agent) -> (model, tools)`."""
    if id(agent) in made:
        return made[id(agent)]
    if agent.mcp_servers:
        raise ValueError(f"agent {agent.name}: tools of MCP servers are not recorded; give them as function tools")
    model, tools = wrap(agent)
    clone = agent.clone(model=model, tools=tools)
    made[id(agent)] = clone
    clone.handoffs = [_wrap_agents(h, wrap, made) if isinstance(h, Agent) else h for h in agent.handoffs]
    return clone


def _function_tools(agent: Agent[Any]) -> list[Tool]:
    for tool in agent.tools:
        if not isinstance(tool, FunctionTool) and type(tool).__name__ not in HOSTED_TOOLS:
            raise ValueError(f"agent {agent.name}: tool {getattr(tool, 'name', tool)!r} runs locally and is not a "
                             "function tool: it cannot be recorded or served from the record")  # fmt: skip
    return list(agent.tools)


def _with_invoker(tool: Tool, invoke: Any) -> Tool:
    if not isinstance(tool, FunctionTool):
        return tool
    wrapped = copy.copy(tool)
    wrapped.on_invoke_tool = invoke(tool)
    return wrapped


class _StreamRefused:
    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("streamed runs (Runner.run_streamed) are not recorded or replayed: use Runner.run")


# --- recording --------------------------------------------------------------------------------------


class AgentRecorder:
    """Records an agent's model calls and function-tool calls in agentlog session `session_id`
    (which must exist: start_session, or an AgentlogSession's first items). Model call ids are
    `<prefix>m<n>` (prefix: random unless given), tool call ids the model's."""

    def __init__(self, client: AsyncAgentlogClient, session_id: str, *, prefix: str | None = None) -> None:
        self.client = client
        self.session_id = session_id
        self.prefix = prefix if prefix is not None else f"{uuid.uuid4().hex[:8]}-"
        self.model_calls = 0

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        """A clone of `agent` whose model and function tools record each call (its handoffs' too)."""

        def wrap(one: Agent[Any]) -> tuple[Model, list[Tool]]:
            model = RecordingModel(self, _live_model(one), model_name(one.model))
            return model, [_with_invoker(t, self._tool_invoker) for t in _function_tools(one)]

        return _wrap_agents(agent, wrap, {})

    def _tool_invoker(self, tool: FunctionTool) -> Any:
        original = tool.on_invoke_tool

        async def invoke(ctx: ToolContext[Any], input: str) -> Any:
            call_id = tool_call_id(ctx.tool_call_id)
            await self.client.request_tool_call(self.session_id, tool.name, _arguments(input), call_id=call_id)
            started = time.monotonic()
            try:
                output = await original(ctx, input)
            except Exception as exc:
                took = int((time.monotonic() - started) * 1000)
                await self.client.fail_tool_call(
                    self.session_id, call_id, str(exc) or type(exc).__name__, duration_ms=took
                )
                raise
            took = int((time.monotonic() - started) * 1000)
            await self.client.complete_tool_call(self.session_id, call_id, tool_result(output), duration_ms=took)
            return output

        return invoke


class RecordingModel(_StreamRefused, Model):
    """A Model that calls `inner` and records the call (request, response, usage, latency)."""

    def __init__(self, recorder: AgentRecorder, inner: Model, name: str) -> None:
        self.recorder, self.inner, self.name = recorder, inner, name

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                           *, previous_response_id, conversation_id, prompt) -> ModelResponse:  # fmt: skip
        recorder = self.recorder
        recorder.model_calls += 1
        call_id = f"{recorder.prefix}m{recorder.model_calls}"
        request = model_request(
            system_instructions, input, model_settings, tools, output_schema, handoffs,
            previous_response_id=previous_response_id, conversation_id=conversation_id, prompt=prompt,
        )  # fmt: skip
        started = time.monotonic()
        try:
            response = await self.inner.get_response(
                system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                previous_response_id=previous_response_id, conversation_id=conversation_id, prompt=prompt,
            )  # fmt: skip
        except Exception as exc:
            await recorder.client.record_model_call(
                recorder.session_id, self.name, request, response={"error": str(exc) or type(exc).__name__},
                call_id=call_id, latency_ms=int((time.monotonic() - started) * 1000),
            )  # fmt: skip
            raise
        await recorder.client.record_model_call(
            recorder.session_id, self.name, request, response=recorded_response(response), usage=_usage(response),
            call_id=call_id, latency_ms=int((time.monotonic() - started) * 1000),
        )  # fmt: skip
        return response


# --- replaying ---------------------------------------------------------------------------------------


class AgentReplayer:
    """Serves an agent's model and function-tool calls from `record`. `live_model=True` lets the
    agent's own model answer the calls past the record; `live_tools` names the tools that may run
    live for calls the record lacks. `replayer` (replayer.Replayer) tells what was served and what
    ran live."""

    def __init__(self, record: Record, *, live_model: bool = False, live_tools: Iterable[str] = ()) -> None:
        self.replayer = Replayer(record)
        self.live_model = live_model
        self.live_tools = set(live_tools)
        self.model_calls = 0

    @classmethod
    async def aload(
        cls, client: AsyncAgentlogClient, session_id: str, *, live_model: bool = False, live_tools: Iterable[str] = ()
    ) -> AgentReplayer:
        return cls(await Record.aload(client, session_id), live_model=live_model, live_tools=live_tools)

    @property
    def live(self) -> list[LiveCall]:
        return self.replayer.live

    @property
    def served(self) -> list[tuple[str, str]]:
        return list(self.replayer.served)

    def live_commands(self) -> list[Command]:
        """The commands that record what ran live (for `run_commands` on the replayed session)."""
        return self.replayer.live_commands()

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        """A clone of `agent` served from the record (its handoffs' agents too)."""

        def wrap(one: Agent[Any]) -> tuple[Model, list[Tool]]:
            live = _live_model(one) if self.live_model else None
            model = ReplayModel(self, one.model, live)
            return model, [_with_invoker(t, self._tool_invoker) for t in _function_tools(one)]

        return _wrap_agents(agent, wrap, {})

    def _tool_invoker(self, tool: FunctionTool) -> Any:
        original = tool.on_invoke_tool

        async def invoke(ctx: ToolContext[Any], input: str) -> Any:
            call_id, arguments = tool_call_id(ctx.tool_call_id), _arguments(input)
            recorded = self.replayer.find_tool(tool.name, arguments, call_id=call_id)
            answered = recorded is not None and recorded.status in ("completed", "failed")
            if answered or tool.name not in self.live_tools:
                return self.replayer.tool(tool.name, arguments, call_id=call_id)  # or fails closed
            try:
                output = await original(ctx, input)
            except Exception as exc:
                self.live.append(LiveCall("tool", call_id, tool.name, arguments, error=str(exc),
                                          requested_in_record=recorded is not None))  # fmt: skip
                raise
            self.live.append(LiveCall("tool", call_id, tool.name, arguments, tool_result(output),
                                      requested_in_record=recorded is not None))  # fmt: skip
            return output

        return invoke


class ReplayModel(_StreamRefused, Model):
    """A Model whose n-th call is answered by the record's n-th model call, when the request is the
    recorded one; past the record, by `live` (the agent's own model) if given."""

    def __init__(self, owner: AgentReplayer, model: Any, live: Model | None) -> None:
        self.owner, self.live = owner, live
        self.name, self.compared = model_name(model), configured_model(model)

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                           *, previous_response_id, conversation_id, prompt) -> ModelResponse:  # fmt: skip
        owner, replayer = self.owner, self.owner.replayer
        request = model_request(
            system_instructions, input, model_settings, tools, output_schema, handoffs,
            previous_response_id=previous_response_id, conversation_id=conversation_id, prompt=prompt,
        )  # fmt: skip
        recorded_calls = replayer.record.model_calls
        position, owner.model_calls = owner.model_calls, owner.model_calls + 1
        if position < len(recorded_calls):
            recorded = recorded_calls[position]
            answer = replayer.model(request, model=self.compared, call_id=recorded.call_id)
            return sdk_response(answer, recorded.usage)
        call_id = f"replay-{uuid.uuid4().hex[:8]}-m{position + 1}"
        if self.live is None:
            label = f"model call {position + 1} of the re-run ({self.name}, {len(request['messages'])} messages)"
            raise CallNotRecordedError(
                label,
                f"{label} is not in the record of session {replayer.record.session_id} (it has {position}), "
                "and no live model was given",
            )
        response = await self.live.get_response(
            system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
            previous_response_id=previous_response_id, conversation_id=conversation_id, prompt=prompt,
        )  # fmt: skip
        answer = RecordedModelResponse(call_id, self.name, **recorded_response(response))
        replayer.live.append(LiveCall("model", call_id, self.name, request, answer))
        return response
