"""Commands as a client sends them: the items of an atomic batch (`run_commands`), and the bodies
of the one-command endpoints, from one definition each.

Invariant: a command serialises to exactly the JSON the command API's models take (the field
names and `type` of the public contract); fields left unset (None) are not sent, so the server's
defaults apply. The client validates nothing itself: the command API is the one judge of a
command, and its refusal (field and reason) comes back as an InvalidRequestError, the same for a
wrong type as for a limit. The type hints serve the type checker.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

Role = Literal["user", "assistant", "system", "tool"]
Risk = Literal["low", "medium", "high", "critical"]
Decision = Literal["approved", "rejected"]
CompactionKind = Literal["summarized", "truncated"]


def _unset_left_out(obj: object) -> dict[str, Any]:
    """A dataclass's fields without the unset (None) ones, nested parts in their wire form."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}  # type: ignore[arg-type]
    return {name: _wire(value) for name, value in values.items() if value is not None}


def _wire(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _unset_left_out(value)
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Command:
    type: ClassVar[str]

    def item(self) -> dict[str, Any]:
        """This command as an item of POST /v1/sessions/{id}/commands."""
        return {"type": self.type, **self.body()}

    def body(self) -> dict[str, Any]:
        """This command as the body of its own endpoint (the URL names it, so no `type`)."""
        return _unset_left_out(self)


@dataclass(frozen=True, kw_only=True)
class StartSession(Command):
    type: ClassVar[str] = "start_session"
    workflow: str | None = None
    title: str | None = None
    agents: list[str] | None = None
    allow_shared_sections: bool | None = None
    metadata: dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    started_by: str | None = None
    budget: dict[str, Any] | None = None  # {"max_tokens": N} and/or {"max_cost_usd": X}


@dataclass(frozen=True, kw_only=True)
class AddMessage(Command):
    type: ClassVar[str] = "add_message"
    role: Role
    content: str
    agent: str | None = None


@dataclass(frozen=True, kw_only=True)
class RequestToolCall(Command):
    type: ClassVar[str] = "request_tool_call"
    tool: str
    arguments: dict[str, Any] | None = None
    call_id: str | None = None
    agent: str | None = None


@dataclass(frozen=True, kw_only=True)
class CompleteToolCall(Command):
    type: ClassVar[str] = "complete_tool_call"
    call_id: str
    result: Any = None  # JSON null is the API's default too, so leaving it out is the same
    duration_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class FailToolCall(Command):
    type: ClassVar[str] = "fail_tool_call"
    call_id: str
    error: str
    duration_ms: int | None = None
    retriable: bool | None = None


@dataclass(frozen=True, kw_only=True)
class UpdateStateSection(Command):
    """An RFC 7396 merge patch of one section by the agent that owns it."""

    type: ClassVar[str] = "update_state_section"
    agent: str
    section: str
    changes: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class SaveCheckpoint(Command):
    type: ClassVar[str] = "save_checkpoint"
    name: str
    step: int | None = None


@dataclass(frozen=True, kw_only=True)
class RequestApproval(Command):
    type: ClassVar[str] = "request_approval"
    action: str
    requested_by: str
    risk: Risk | None = None
    approval_id: str | None = None
    expires_at: datetime | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class DecideApproval(Command):
    type: ClassVar[str] = "decide_approval"
    approval_id: str
    decision: Decision
    reviewer: str
    comment: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordError(Command):
    type: ClassVar[str] = "record_error"
    message: str
    agent: str | None = None
    kind: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class RecordCompensation(Command):
    type: ClassVar[str] = "record_compensation"
    step: str
    reason: str | None = None
    agent: str | None = None


@dataclass(frozen=True, kw_only=True)
class CompleteSession(Command):
    type: ClassVar[str] = "complete_session"
    outcome: str | None = None
    summary: str | None = None


@dataclass(frozen=True, kw_only=True)
class FailSession(Command):
    type: ClassVar[str] = "fail_session"
    reason: str


@dataclass(frozen=True, kw_only=True)
class CancelSession(Command):
    type: ClassVar[str] = "cancel_session"
    reason: str | None = None
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class ModelRequest:
    """What an agent sent a model. An item of `messages` is a message object (with a `role`) or a
    reference to messages the session already holds, so the log keeps a conversation once:
    `{"ref": "message", "index": I}` (the session's I-th message), `{"ref": "call", "call_id": C,
    "start": S, "stop": E}` (messages of an earlier call's request), `{"ref": "response",
    "call_id": C}` (an earlier call's answer), `{"ref": "compaction", "compaction_id": K}`.
    `system_from` / `tools_from` name an earlier call that sent the same system prompt / tools."""

    messages: list[dict[str, Any]] | None = None
    system: Any = None
    system_from: str | None = None
    tools: list[dict[str, Any]] | None = None
    tools_from: str | None = None
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class ModelResponse:
    content: Any = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ModelUsage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None


@dataclass(frozen=True, kw_only=True)
class RecordModelCall(Command):
    """One call of an agent to a model: request, response, usage, latency."""

    type: ClassVar[str] = "record_model_call"
    model: str
    request: ModelRequest | dict[str, Any]
    response: ModelResponse | dict[str, Any] | None = None
    usage: ModelUsage | dict[str, Any] | None = None
    call_id: str | None = None
    agent: str | None = None
    provider: str | None = None
    latency_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class CompactContext(Command):
    """The agent replaced `replaced` (message items, as in ModelRequest) in its context by
    `replacement` (a summary, or nothing)."""

    type: ClassVar[str] = "compact_context"
    replaced: list[dict[str, Any]]
    replacement: list[dict[str, Any]] | None = None
    kind: CompactionKind | None = None
    reason: str | None = None
    compaction_id: str | None = None
    agent: str | None = None


# --- agent frameworks' records (agentlog.integrations) ---------------------------------------------

StoredValueKind = Literal["json", "bytes", "empty"]


@dataclass(frozen=True, kw_only=True)
class StoredValue:
    """A serialized value: `kind="json"` with `value` (kept as JSON), `kind="bytes"` with the
    serializer's `type` tag and its bytes in `base64`, or `kind="empty"`."""

    kind: StoredValueKind
    value: Any = None
    type: str | None = None
    base64: str | None = None


@dataclass(frozen=True, kw_only=True)
class GraphBlob:
    channel: str
    version: str
    value: StoredValue


@dataclass(frozen=True, kw_only=True)
class GraphWrite:
    idx: int
    channel: str
    value: StoredValue


@dataclass(frozen=True, kw_only=True)
class PutGraphCheckpoint(Command):
    """A LangGraph checkpoint of a thread (the session); the first one starts the session."""

    type: ClassVar[str] = "put_graph_checkpoint"
    thread_id: str
    checkpoint_id: str
    checkpoint: dict[str, Any]
    checkpoint_ns: str | None = None
    parent_checkpoint_id: str | None = None
    metadata: dict[str, Any] | None = None
    blobs: list[GraphBlob] | None = None
    workflow: str | None = None


@dataclass(frozen=True, kw_only=True)
class PutGraphWrites(Command):
    type: ClassVar[str] = "put_graph_writes"
    thread_id: str
    checkpoint_id: str
    task_id: str
    writes: list[GraphWrite]
    checkpoint_ns: str | None = None
    task_path: str | None = None
    workflow: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeleteGraphThread(Command):
    type: ClassVar[str] = "delete_graph_thread"
    thread_id: str


@dataclass(frozen=True, kw_only=True)
class AddConversationItems(Command):
    type: ClassVar[str] = "add_conversation_items"
    items: list[dict[str, Any]]
    agent: str | None = None
    workflow: str | None = None


@dataclass(frozen=True, kw_only=True)
class PopConversationItem(Command):
    type: ClassVar[str] = "pop_conversation_item"
    index: int


@dataclass(frozen=True, kw_only=True)
class ClearConversation(Command):
    type: ClassVar[str] = "clear_conversation"
