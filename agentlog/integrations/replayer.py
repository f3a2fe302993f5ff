"""Re-run an agent from the record: its tool and model calls are served from a recorded session
(a fork's inherited calls included), so a fork can be re-run with only the steps it changed, or
the ones after them, live.

    record = Record.load(client, "case-42-what-if")         # or: await Record.aload(async_client, ...)
    replayer = Replayer(record, live_model=call_model)      # the model may run where the record ends
    result = replayer.tool("payments.refund", {"charge": "ch_2"}, call_id="refund-1")
    answer = replayer.model({"system": ..., "messages": [...]}, model="gpt-4o", call_id="m3")
    client.run_commands("case-42-what-if", replayer.live_commands())   # what ran live, recorded

Invariants:
- Fail closed: a call the record lacks raises CallNotRecordedError naming it, unless a live
  implementation was given for it (`live_tools`, `live_model`); a recorded call whose inputs differ
  from the record (tool name or arguments; the model's request) raises ReplayDivergedError naming
  the first difference, never runs live. Nothing runs live silently: `replayer.live` lists what did.
- Matching: by call id when the caller gives one, otherwise the first recorded call not yet served
  (in record order) with the same tool and arguments, or the same model request. A recorded call
  is served once.
- A recorded tool failure is raised as RecordedToolFailure (the agent sees the failure it saw then).
- After loading, serving does no I/O: the record is read once (model-calls, the state at the last
  version with its tool calls and results, and each model call's rebuilt request and response).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agentlog.client import AgentlogClient, AsyncAgentlogClient, KnownToolCall, ModelContext, queries
from agentlog.client.commands import (
    Command,
    CompleteToolCall,
    FailToolCall,
    ModelResponse,
    RecordModelCall,
    RequestToolCall,
)
from agentlog.integrations.steps import Steps, arun, run

Kind = Literal["tool", "model"]
REQUEST_PARTS = ("system", "messages", "tools", "parameters")


class ReplayError(Exception):
    """Base of the replayer's errors; `call` names the call (kind, call id or position, name)."""

    def __init__(self, call: str, message: str) -> None:
        super().__init__(message)
        self.call = call


class CallNotRecordedError(ReplayError):
    """The agent made a call the record lacks (or whose result it lacks), and no live
    implementation was given for it."""


class ReplayDivergedError(ReplayError):
    """The agent made a recorded call with other inputs than the record's: `difference` names the
    first one (e.g. "arguments", "request.messages")."""

    def __init__(self, call: str, difference: str, message: str) -> None:
        super().__init__(call, message)
        self.difference = difference


class RecordedToolFailure(Exception):
    """The tool failed in the record: raised where the agent called it, as it failed then."""

    def __init__(self, call_id: str, tool: str | None, error: str) -> None:
        super().__init__(f"tool call {call_id} ({tool}) failed in the record: {error}")
        self.call_id, self.tool, self.error = call_id, tool, error


@dataclass(frozen=True)
class RecordedModelResponse:
    """A model call's recorded answer."""

    call_id: str
    model: str
    content: Any = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Record:
    """A session's tool and model calls, in record order, as read from the log."""

    session_id: str
    version: int
    tool_calls: tuple[KnownToolCall, ...]
    model_calls: tuple[ModelContext, ...]

    @classmethod
    def load(cls, client: AgentlogClient, session_id: str) -> Record:
        record: Record = run(client, _load(session_id))
        return record

    @classmethod
    async def aload(cls, client: AsyncAgentlogClient, session_id: str) -> Record:
        record: Record = await arun(client, _load(session_id))
        return record


def _load(session_id: str) -> Steps[Record]:
    summaries, cursor = [], None
    while True:
        page = yield queries.model_calls(session_id, cursor=cursor)
        summaries.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    state = yield queries.state_at(session_id, page.last_version)
    contexts = []
    for summary in summaries:  # a fork's inherited calls are served by the fork's lineage too
        contexts.append((yield queries.context(session_id, summary.call_id)))
    return Record(session_id, state.version, tuple(state.tool_calls), tuple(contexts))


@dataclass(frozen=True)
class LiveCall:
    """A call that ran live: what to record so the session holds the re-run."""

    kind: Kind
    call_id: str
    name: str  # the tool, or the model
    inputs: Any  # the tool's arguments, or the model request
    result: Any = None  # the tool's result, or a RecordedModelResponse
    error: str | None = None  # the tool's failure
    requested_in_record: bool = False  # the record has the request, not its result

    def commands(self) -> list[Command]:
        if self.kind == "model":
            answer: RecordedModelResponse = self.result
            response = ModelResponse(
                content=answer.content,
                tool_calls=list(answer.tool_calls) or None,
                finish_reason=answer.finish_reason,
                error=answer.error,
            )
            return [RecordModelCall(model=self.name, request=self.inputs, response=response, call_id=self.call_id)]
        found: list[Command] = []
        if not self.requested_in_record:
            found.append(RequestToolCall(tool=self.name, arguments=self.inputs, call_id=self.call_id))
        if self.error is not None:
            found.append(FailToolCall(call_id=self.call_id, error=self.error))
        else:
            found.append(CompleteToolCall(call_id=self.call_id, result=self.result))
        return found


@dataclass
class Replayer:
    """Serves an agent's calls from `record`. `live_tools` maps a tool name to the function that
    runs it live where the record ends; `live_model(request, model)` answers a model call the
    record lacks (a RecordedModelResponse, or a dict of its fields)."""

    record: Record
    live_tools: dict[str, Callable[..., Any]] = field(default_factory=dict)
    live_model: Callable[[dict[str, Any], str | None], Any] | None = None
    served: list[tuple[Kind, str]] = field(default_factory=list)  # (kind, call id) served from the record
    live: list[LiveCall] = field(default_factory=list)
    _used: set[tuple[Kind, str]] = field(default_factory=set)
    _made: int = 0  # calls made, to name those without a call id

    def tool(self, name: str, arguments: dict[str, Any] | None = None, *, call_id: str | None = None) -> Any:
        """The recorded result of tool `name` with `arguments` (its failure as RecordedToolFailure)."""
        arguments = arguments or {}
        self._made += 1
        label = f"tool call {call_id or f'#{self._made}'} ({name} {_text(arguments)})"
        recorded = self._find_tool(name, arguments, call_id, label)
        if recorded is not None and recorded.status in ("completed", "failed"):
            self._used.add(("tool", recorded.call_id))
            self.served.append(("tool", recorded.call_id))
            if recorded.status == "failed":
                raise RecordedToolFailure(recorded.call_id, recorded.tool, recorded.error or "")
            return recorded.result
        live = self.live_tools.get(name)
        if live is None:
            why = "has no result in the record" if recorded is not None else "is not in the record"
            raise CallNotRecordedError(
                label, f"{label} {why} of session {self.record.session_id}, and no live tool was given"
            )
        return self._run_tool(live, name, arguments, recorded.call_id if recorded else call_id, recorded is not None)

    def model(
        self, request: dict[str, Any], *, model: str | None = None, call_id: str | None = None
    ) -> RecordedModelResponse:
        """The recorded answer to `request` ({system, messages, tools, parameters}) of `model`."""
        self._made += 1
        label = f"model call {call_id or f'#{self._made}'} ({model or 'any model'}, {len(request.get('messages') or [])} messages)"
        recorded = self._find_model(request, model, call_id, label)
        if recorded is not None:
            self._used.add(("model", recorded.call_id))
            self.served.append(("model", recorded.call_id))
            answer = recorded.response
            return RecordedModelResponse(
                recorded.call_id, recorded.model, answer.content, answer.tool_calls, answer.finish_reason, answer.error
            )
        if self.live_model is None:
            raise CallNotRecordedError(
                label, f"{label} is not in the record of session {self.record.session_id}, and no live model was given"
            )
        if model is None:
            raise ValueError(f"{label} runs live: name its model (model=...) so the call can be recorded")
        found = self.live_model(request, model)
        if isinstance(found, dict):
            found = RecordedModelResponse(call_id=call_id or f"live-{self._made}", model=model, **found)
        self.live.append(LiveCall("model", found.call_id, found.model, _plain(request), found))
        return found

    def live_commands(self) -> list[Command]:
        """The commands that record what ran live, in order (for `run_commands` on the session)."""
        return [command for call in self.live for command in call.commands()]

    def find_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *, call_id: str | None = None
    ) -> KnownToolCall | None:
        """The recorded call `tool` would serve for these inputs, without serving it (None: the
        record lacks it); raises ReplayDivergedError where `tool` would. For adapters that run a
        tool live themselves (async tools) when the record lacks its result."""
        label = f"tool call {call_id or f'#{self._made + 1}'} ({name} {_text(arguments or {})})"
        return self._find_tool(name, arguments or {}, call_id, label)

    def unused(self) -> list[tuple[Kind, str]]:
        """Recorded calls the re-run did not make (in record order)."""
        tools = [("tool", c.call_id) for c in self.record.tool_calls if ("tool", c.call_id) not in self._used]
        models = [("model", c.call_id) for c in self.record.model_calls if ("model", c.call_id) not in self._used]
        return tools + models  # type: ignore[return-value]

    # --- matching ---------------------------------------------------------------------------------

    def _find_tool(self, name: str, arguments: dict[str, Any], call_id: str | None, label: str) -> KnownToolCall | None:
        if call_id is not None:
            recorded = next((c for c in self.record.tool_calls if c.call_id == call_id), None)
            if recorded is None:
                return None
            if ("tool", call_id) in self._used:
                raise ReplayDivergedError(label, "call_id", f"{label}: the record's call {call_id} was served already")
            if recorded.tool != name:
                raise ReplayDivergedError(label, "tool", f"{label}: the record called {recorded.tool}")
            if _plain(recorded.arguments or {}) != _plain(arguments):
                raise ReplayDivergedError(
                    label, "arguments", f"{label}: the record has arguments {_text(recorded.arguments)}"
                )
            return recorded
        plain = _plain(arguments)
        for recorded in self.record.tool_calls:
            fresh = ("tool", recorded.call_id) not in self._used
            if fresh and recorded.tool == name and _plain(recorded.arguments or {}) == plain:
                return recorded
        return None

    def _find_model(
        self, request: dict[str, Any], model: str | None, call_id: str | None, label: str
    ) -> ModelContext | None:
        if call_id is not None:
            recorded = next((c for c in self.record.model_calls if c.call_id == call_id), None)
            if recorded is None:
                return None
            if ("model", call_id) in self._used:
                raise ReplayDivergedError(label, "call_id", f"{label}: the record's call {call_id} was served already")
            if model is not None and recorded.model != model:
                raise ReplayDivergedError(label, "model", f"{label}: the record called model {recorded.model}")
            if (difference := _request_difference(recorded, request)) is not None:
                raise ReplayDivergedError(
                    label, f"request.{difference}", f"{label}: its {difference} differ from the record's"
                )
            return recorded
        for recorded in self.record.model_calls:
            if ("model", recorded.call_id) in self._used or (model is not None and recorded.model != model):
                continue
            if _request_difference(recorded, request) is None:
                return recorded
        return None

    def _run_tool(
        self, live: Callable[..., Any], name: str, arguments: dict[str, Any], call_id: str | None, requested: bool
    ) -> Any:
        made = call_id or f"live-{self._made}"
        try:
            result = live(**arguments)
        except Exception as exc:
            self.live.append(
                LiveCall("tool", made, name, _plain(arguments), error=str(exc), requested_in_record=requested)
            )
            raise
        self.live.append(LiveCall("tool", made, name, _plain(arguments), _plain(result), requested_in_record=requested))
        return result


def _request_difference(recorded: ModelContext, request: dict[str, Any]) -> str | None:
    """The first part of `request` that differs from the recorded request (None: the same)."""
    stored = recorded.request
    kept = {
        "system": stored.system,
        "messages": list(stored.messages),
        "tools": list(stored.tools),
        "parameters": stored.parameters,
    }
    empty: dict[str, Any] = {"system": None, "messages": [], "tools": [], "parameters": {}}
    for part in REQUEST_PARTS:
        given = request.get(part)
        if _plain(empty[part] if given is None else given) != _plain(kept[part]):
            return part
    return None


def _plain(value: Any) -> Any:
    """`value` as JSON sees it (tuples as lists), to compare with what the log gives back."""
    return json.loads(json.dumps(value, default=str))


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
