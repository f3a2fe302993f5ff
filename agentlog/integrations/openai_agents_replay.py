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
  agentlog id when it is not one), the parsed arguments and the tool's output (a string, or structured
  output as JSON, or else the `str` the SDK gives the model: records.tool_result).
- Fail closed: the n-th model call of the re-run is served by the n-th recorded one only when its
  request (and the model's name, when one was configured) is the same (ReplayDivergedError names
  what differs); past the record it is CallNotRecordedError unless `live_model=True`. A tool call
  is served by the recorded call with its call id and arguments; one the record lacks (or whose
  result it lacks) is CallNotRecordedError unless its tool is in `live_tools`; the tool's errors
  are the SDK's own exceptions too (ToolCall...Error), so the Runner raises them unwrapped. Local tools that cannot be served (computer, shell, MCP servers) are refused when
  the agent is wrapped, never run live silently. What ran live is in `live`, and
  `live_commands()` records it.
- Streaming (`Runner.run_streamed`) is neither recorded nor replayed: both models refuse it.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from agents import Agent, AgentsException, FunctionTool, ModelResponse
from agents.models.interface import Model, ModelProvider
from agents.models.multi_provider import MultiProvider
from agents.tool import Tool
from agents.tool_context import ToolContext

from agentlog.client import AsyncAgentlogClient
from agentlog.client.commands import Command
from agentlog.integrations.openai_agents_records import (
    ModelCall,
    RecordedModelError,
    arguments,
    configured_model,
    model_name,
    recorded_response,
    sdk_response,
    tool_call_id,
    tool_result,
    usage_of,
)
from agentlog.integrations.replayer import (
    CallNotRecordedError,
    LiveCall,
    Record,
    RecordedModelResponse,
    ReplayDivergedError,
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


# The Runner wraps a tool's exception in UserError unless it is one of the SDK's own: these reach
# the caller of Runner.run as they are, like the model's (which the Runner does not wrap).
class ToolCallNotRecordedError(CallNotRecordedError, AgentsException):
    """A tool call the record lacks (or whose result it lacks), with no live tool allowed."""


class ToolCallDivergedError(ReplayDivergedError, AgentsException):
    """A recorded tool call made with other inputs (tool, arguments) than the record's."""


__all__ = [
    "AgentRecorder",
    "AgentReplayer",
    "RecordedModelError",
    "RecordingModel",
    "ReplayModel",
    "ToolCallDivergedError",
    "ToolCallNotRecordedError",
    "tool_call_id",
]


def _live_model(agent: Agent[Any], provider: ModelProvider | None) -> Model:
    """The agent's own model: its Model, or its model name looked up as the Runner would (give the
    RunConfig's `model_provider` when it is not the default)."""
    if isinstance(agent.model, Model):
        return agent.model
    return (provider or MultiProvider()).get_model(agent.model)


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


def _servable_tools(agent: Agent[Any]) -> list[Tool]:
    """The agent's tools, when each is a function tool (recorded) or one its model's provider runs."""
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
    `<prefix>m<n>` (prefix: random unless given), tool call ids the model's. An agent whose model
    is a name is given the Model `model_provider` (default: the SDK's) has for it, as the Runner's
    RunConfig would."""

    def __init__(
        self,
        client: AsyncAgentlogClient,
        session_id: str,
        *,
        prefix: str | None = None,
        model_provider: ModelProvider | None = None,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.prefix = prefix if prefix is not None else f"{uuid.uuid4().hex[:8]}-"
        self.model_provider = model_provider
        self.model_calls = 0

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        """A clone of `agent` whose model and function tools record each call (its handoffs' too)."""

        def wrap(one: Agent[Any]) -> tuple[Model, list[Tool]]:
            model = RecordingModel(self, _live_model(one, self.model_provider), model_name(one.model))
            return model, [_with_invoker(t, self._tool_invoker) for t in _servable_tools(one)]

        return _wrap_agents(agent, wrap, {})

    async def record_model_call(
        self, model: str, request: dict[str, Any], response: dict[str, Any], usage: Any, call_id: str, started: float
    ) -> None:
        took = int((time.monotonic() - started) * 1000)
        await self.client.record_model_call(
            self.session_id, model, request, response=response, usage=usage, call_id=call_id, latency_ms=took
        )

    def _tool_invoker(self, tool: FunctionTool) -> Any:
        original = tool.on_invoke_tool

        async def invoke(ctx: ToolContext[Any], input: str) -> Any:
            call_id = tool_call_id(ctx.tool_call_id)
            await self.client.request_tool_call(self.session_id, tool.name, arguments(input), call_id=call_id)
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
            await self.client.complete_tool_call(self.session_id, call_id, tool_result(output, tool), duration_ms=took)
            return output

        return invoke


class RecordingModel(_StreamRefused, Model):
    """A Model that calls `inner` and records the call (request, response, usage, latency)."""

    def __init__(self, recorder: AgentRecorder, inner: Model, name: str) -> None:
        self.recorder, self.inner, self.name = recorder, inner, name

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                           *, previous_response_id, conversation_id, prompt) -> ModelResponse:  # fmt: skip
        call = ModelCall(system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                         previous_response_id, conversation_id, prompt)  # fmt: skip
        recorder = self.recorder
        recorder.model_calls += 1
        call_id = f"{recorder.prefix}m{recorder.model_calls}"
        request = call.request()
        started = time.monotonic()
        try:
            response = await call.ask(self.inner)
        except Exception as exc:
            failed = {"error": str(exc) or type(exc).__name__}
            await recorder.record_model_call(self.name, request, failed, None, call_id, started)
            raise
        await recorder.record_model_call(
            self.name, request, recorded_response(response), usage_of(response), call_id, started
        )
        return response


# --- replaying ---------------------------------------------------------------------------------------


class AgentReplayer:
    """Serves an agent's model and function-tool calls from `record`. `live_model=True` lets the
    agent's own model answer the calls past the record; `live_tools` names the tools that may run
    live for calls the record lacks (`model_provider` as for AgentRecorder). `replayer`
    (replayer.Replayer) tells what was served and what ran live."""

    def __init__(
        self,
        record: Record,
        *,
        live_model: bool = False,
        live_tools: Iterable[str] = (),
        model_provider: ModelProvider | None = None,
    ) -> None:
        self.replayer = Replayer(record)
        self.live_model = live_model
        self.live_tools = set(live_tools)
        self.model_provider = model_provider
        self.model_calls = 0

    @classmethod
    async def aload(cls, client: AsyncAgentlogClient, session_id: str, **options: Any) -> AgentReplayer:
        """The replayer of session `session_id` (a fork's inherited calls included); `options` as for the class."""
        return cls(await Record.aload(client, session_id), **options)

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
            live = _live_model(one, self.model_provider) if self.live_model else None
            model = ReplayModel(self, one.model, live)
            return model, [_with_invoker(t, self._tool_invoker) for t in _servable_tools(one)]

        return _wrap_agents(agent, wrap, {})

    def _tool_invoker(self, tool: FunctionTool) -> Any:
        original = tool.on_invoke_tool

        async def invoke(ctx: ToolContext[Any], input: str) -> Any:
            call_id, given = tool_call_id(ctx.tool_call_id), arguments(input)
            try:
                recorded = self.replayer.find_tool(tool.name, given, call_id=call_id)
                answered = recorded is not None and recorded.status in ("completed", "failed")
                if answered or tool.name not in self.live_tools:
                    return self.replayer.tool(tool.name, given, call_id=call_id)  # or fails closed
            except ReplayDivergedError as diverged:
                raise ToolCallDivergedError(diverged.call, diverged.difference, str(diverged)) from None
            except CallNotRecordedError as missing:
                raise ToolCallNotRecordedError(missing.call, str(missing)) from None
            try:
                output = await original(ctx, input)
            except Exception as exc:
                ran = LiveCall(
                    "tool", call_id, tool.name, given, error=str(exc), requested_in_record=recorded is not None
                )
                self.live.append(ran)
                raise
            ran = LiveCall(
                "tool", call_id, tool.name, given, tool_result(output, tool), requested_in_record=recorded is not None
            )
            self.live.append(ran)
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
        call = ModelCall(system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                         previous_response_id, conversation_id, prompt)  # fmt: skip
        owner, replayer = self.owner, self.owner.replayer
        request = call.request()
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
        response = await call.ask(self.live)
        answer = RecordedModelResponse(call_id, self.name, **recorded_response(response))
        replayer.live.append(LiveCall("model", call_id, self.name, request, answer))
        return response
