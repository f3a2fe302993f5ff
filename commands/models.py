"""Commands: what a client asks a session to do, validated at the edge before anything is decided.

Invariant: a command that parses is within every size and shape limit, so a decider only judges
it against the session's state. The limits live here, not on the events: events keep whatever
was accepted when they were written. Commands are imperative and separate from events even where
the fields match, so either can change without the other.

`type` tells commands apart in the atomic multi-command body (POST /v1/sessions/{id}/commands);
`parse_command` reads one such item.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.config import JsonDict

from commands.json_values import MAX_DEPTH, check_instant, check_json
from eventstore.events import Decision, Risk, Role
from eventstore.ids import ID_JSON_SCHEMA, Identifier, is_valid_id
from eventstore.message_refs import CallRef, CompactionRef, ResponseRef, is_reference, parse_ref

KIB = 1024
MAX_NAME_CHARS = 200
MAX_AGENTS = 64
MAX_LABELS = 32
MAX_DURATION_MS = 7 * 24 * 3600 * 1000
# session_summaries_v1.last_step is an integer column (int32). A step is a counter of an agent's
# loop, so 2**31 - 1 is far beyond any real run; the limit matches the column instead of widening
# it (a migration would force a rebuild of the read model for values no client needs).
MAX_STEP = 2**31 - 1


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # C0 controls but tab, LF, CR
# The same rule as a JSON Schema pattern, so the OpenAPI documents state it (ECMA-262 syntax).
NO_CONTROL_CHARS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"


def _no_control_chars(value: str) -> str:
    if _CONTROL_CHARS.search(value) is not None:
        raise ValueError("must not contain control characters")
    return value


def _text_check(max_bytes: int) -> Callable[[str], str]:
    """A str of at most `max_bytes` UTF-8 bytes (bytes, not characters: that is what is stored)."""

    def check(value: str) -> str:
        if len(value.encode()) > max_bytes:
            raise ValueError(f"must be at most {max_bytes} bytes of UTF-8")
        return _no_control_chars(value)

    return check


def _text_doc(max_bytes: int) -> JsonDict:
    # JSON Schema counts characters, not bytes: maxLength is the loose bound, the description the rule.
    return {
        "maxLength": max_bytes,
        "pattern": NO_CONTROL_CHARS,
        "description": f"at most {max_bytes} bytes of UTF-8, no control characters but tab, LF and CR",
    }


def _json_check(max_bytes: int) -> Callable[[Any], Any]:
    """A JSON value every store keeps unchanged, at most `max_bytes` serialised (json_values.py)."""

    def check(value: Any) -> Any:
        return check_json(value, max_bytes)

    return check


def _json_doc(max_bytes: int) -> JsonDict:
    return {
        "description": f"free-form JSON of at most {max_bytes} bytes, nested at most {MAX_DEPTH} deep; no NUL "
        "(U+0000) or lone surrogate in a string or key, no NaN or Infinity, integers within 64 bits"
    }


_NO_CONTROL: JsonDict = {"pattern": NO_CONTROL_CHARS}
Name = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME_CHARS, json_schema_extra=_NO_CONTROL),
    AfterValidator(_no_control_chars),
]
Content: TypeAlias = Annotated[
    str, Field(min_length=1, json_schema_extra=_text_doc(64 * KIB)), AfterValidator(_text_check(64 * KIB))
]
Text: TypeAlias = Annotated[
    str, Field(min_length=1, json_schema_extra=_text_doc(16 * KIB)), AfterValidator(_text_check(16 * KIB))
]
ShortText: TypeAlias = Annotated[
    str, Field(min_length=1, json_schema_extra=_text_doc(4 * KIB)), AfterValidator(_text_check(4 * KIB))
]
Arguments: TypeAlias = Annotated[
    dict[str, Any], AfterValidator(_json_check(64 * KIB)), Field(json_schema_extra=_json_doc(64 * KIB))
]
Details: TypeAlias = Annotated[
    dict[str, Any], AfterValidator(_json_check(16 * KIB)), Field(json_schema_extra=_json_doc(16 * KIB))
]
Patch: TypeAlias = Annotated[
    dict[str, Any], AfterValidator(_json_check(64 * KIB)), Field(json_schema_extra=_json_doc(64 * KIB))
]
Result: TypeAlias = Annotated[
    Any, AfterValidator(_json_check(256 * KIB)), Field(json_schema_extra=_json_doc(256 * KIB))
]
Label = Annotated[str, Field(max_length=256, json_schema_extra=_NO_CONTROL), AfterValidator(_no_control_chars)]
DurationMs = Annotated[int, Field(ge=0, le=MAX_DURATION_MS)]
Step = Annotated[int, Field(ge=0, le=MAX_STEP)]
Instant = Annotated[
    AwareDatetime,
    AfterValidator(check_instant),
    Field(json_schema_extra={"description": "with a time-zone offset; within years 1..9999 once in UTC"}),
]


def _keys_are_ids(schema: dict[str, Any]) -> None:
    """JSON Schema of a dict keyed by ids: pydantic states the key pattern as patternProperties,
    which lets other keys through; propertyNames refuses them, as the model does."""
    patterns = schema.pop("patternProperties", {})
    schema["propertyNames"] = ID_JSON_SCHEMA
    if patterns:
        schema["additionalProperties"] = next(iter(patterns.values()))


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


MAX_BUDGET_USD = 1e9


class BudgetIn(BaseModel):
    """A budget for the session's model calls: input + output tokens and/or cost in USD (priced by
    the server's price table). A call over it is still recorded; the session gets BudgetExceeded."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_tokens: Annotated[int, Field(ge=1, le=2**62)] | None = None
    max_cost_usd: Annotated[float, Field(gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetIn:
        if self.max_tokens is None and self.max_cost_usd is None:
            raise ValueError("give max_tokens, max_cost_usd or both")
        return self


class StartSession(Command):
    """Start the session whose id the API chose (given by the client or generated)."""

    type: Literal["start_session"] = "start_session"
    workflow: Identifier | None = None
    title: Name | None = None
    agents: list[Identifier] = Field(default_factory=list, max_length=MAX_AGENTS)
    allow_shared_sections: bool = False
    metadata: Details = Field(default_factory=dict)
    labels: dict[Identifier, Label] = Field(
        default_factory=dict, max_length=MAX_LABELS, json_schema_extra=_keys_are_ids
    )
    started_by: Name | None = None
    budget: BudgetIn | None = None


class AddMessage(Command):
    type: Literal["add_message"] = "add_message"
    role: Role
    content: Content
    agent: Identifier | None = None


class RequestToolCall(Command):
    type: Literal["request_tool_call"] = "request_tool_call"
    call_id: Identifier | None = None  # None: the decider assigns one (new_id)
    tool: Identifier
    arguments: Arguments = Field(default_factory=dict)
    agent: Identifier | None = None


class CompleteToolCall(Command):
    type: Literal["complete_tool_call"] = "complete_tool_call"
    call_id: Identifier
    result: Result = None
    duration_ms: DurationMs | None = None


class FailToolCall(Command):
    type: Literal["fail_tool_call"] = "fail_tool_call"
    call_id: Identifier
    error: Text
    duration_ms: DurationMs | None = None
    retriable: bool = False


class UpdateStateSection(Command):
    """PATCH a section with an RFC 7396 merge patch; a section's value is always a JSON object."""

    type: Literal["update_state_section"] = "update_state_section"
    agent: Identifier
    section: Identifier
    changes: Patch


class SaveCheckpoint(Command):
    type: Literal["save_checkpoint"] = "save_checkpoint"
    name: Name
    step: Step | None = None


class RequestApproval(Command):
    type: Literal["request_approval"] = "request_approval"
    approval_id: Identifier | None = None  # None: the decider assigns one (new_id)
    action: ShortText
    risk: Risk = "medium"
    requested_by: Identifier
    expires_at: Instant | None = None
    details: Details = Field(default_factory=dict)


class DecideApproval(Command):
    type: Literal["decide_approval"] = "decide_approval"
    approval_id: Identifier
    decision: Decision
    reviewer: Name
    comment: ShortText | None = None


class RecordError(Command):
    type: Literal["record_error"] = "record_error"
    message: Text
    agent: Identifier | None = None
    kind: Identifier | None = None
    details: Details = Field(default_factory=dict)


class RecordCompensation(Command):
    type: Literal["record_compensation"] = "record_compensation"
    step: Name
    reason: ShortText | None = None
    agent: Identifier | None = None


class CompleteSession(Command):
    type: Literal["complete_session"] = "complete_session"
    outcome: Identifier | None = None
    summary: Text | None = None


class FailSession(Command):
    type: Literal["fail_session"] = "fail_session"
    reason: ShortText


class CancelSession(Command):
    type: Literal["cancel_session"] = "cancel_session"
    reason: ShortText | None = None
    by: Name | None = None


class ForkSession(Command):
    """Start this (new) session from another session's state at a version (`agentlog fork`).

    Built by the fork handler after it folded the source, never parsed from a client body.
    """

    type: Literal["fork_session"] = "fork_session"
    source_session_id: Identifier
    source_version: Annotated[int, Field(ge=0)]
    state: dict[str, Any]  # the source's SessionState.to_snapshot() at source_version


# --- Model calls and context compaction (time travel: `agentlog context` rebuilds the request) ---

MAX_MESSAGE_ITEMS = 10_000
# Messages a request (or a compaction's replacement) may stand for once its references are resolved.
# References nest (a call's messages may reference earlier calls and compactions), so a few small
# requests could otherwise stand for billions of messages that `agentlog context` would try to build.
MAX_RESOLVED_MESSAGES = 200_000
MAX_TOOLS = 256
MAX_TOOL_CALLS = 256
MAX_ROLE_CHARS = 64
MAX_TOKENS = 2**62


def _reference_problem(item: dict[str, Any]) -> str | None:
    try:
        ref = parse_ref(item)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'ref'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        return f"not a valid reference ({reasons})"
    ids = [ref.call_id] if isinstance(ref, CallRef | ResponseRef) else []
    ids += [ref.compaction_id] if isinstance(ref, CompactionRef) else []
    if not all(is_valid_id(i) for i in ids):
        return "not a valid reference (the id must be 1-128 characters of letters, digits and ._:@-)"
    if isinstance(ref, CallRef) and ref.stop is not None and ref.stop < ref.start:
        return "not a valid reference (stop must not be below start)"
    return None


def _check_message_item(item: dict[str, Any]) -> dict[str, Any]:
    """A message object (with a `role`) kept as sent, or a reference (eventstore/message_refs.py)."""
    if is_reference(item):
        if "role" in item:
            raise ValueError("an item is a message (with `role`) or a reference (with `ref`), not both")
        problem = _reference_problem(item)
        if problem is not None:
            raise ValueError(problem)
        return item
    role = item.get("role")
    if not isinstance(role, str) or not role or len(role) > MAX_ROLE_CHARS:
        raise ValueError(f"a message needs a `role` of 1-{MAX_ROLE_CHARS} characters (or use a `ref`)")
    check_json(item, 64 * KIB)
    return item


def _check_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool definition names its tool: `name` (Anthropic, plain) or `function.name` (OpenAI)."""
    function = tool.get("function")
    name = tool.get("name", function.get("name") if isinstance(function, dict) else None)
    if not isinstance(name, str) or not name:
        raise ValueError("a tool definition needs a `name` (or `function.name`)")
    return tool


MessageItem = Annotated[dict[str, Any], AfterValidator(_check_message_item)]
MessageItems: TypeAlias = Annotated[
    list[MessageItem], Field(max_length=MAX_MESSAGE_ITEMS), AfterValidator(_json_check(512 * KIB))
]
ToolDefinitions: TypeAlias = Annotated[
    list[Annotated[dict[str, Any], AfterValidator(_check_tool)]],
    Field(max_length=MAX_TOOLS),
    AfterValidator(_json_check(256 * KIB)),
]
SystemPrompt: TypeAlias = Annotated[Any, AfterValidator(_json_check(64 * KIB))]
ModelContent: TypeAlias = Annotated[Any, AfterValidator(_json_check(256 * KIB))]
ToolCalls: TypeAlias = Annotated[
    list[dict[str, Any]], Field(max_length=MAX_TOOL_CALLS), AfterValidator(_json_check(64 * KIB))
]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class CommandPart(BaseModel):
    """A nested part of a command's body: frozen and closed like the command."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRequestIn(CommandPart):
    """The request as the agent sent it; repeated parts may be references (see ModelRequest)."""

    system: SystemPrompt = None
    system_from: Identifier | None = None  # an earlier call of this session sent the same system prompt
    messages: MessageItems = Field(default_factory=list)
    tools: ToolDefinitions = Field(default_factory=list)
    tools_from: Identifier | None = None  # an earlier call of this session offered the same tools
    parameters: Details = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source_each(self) -> ModelRequestIn:
        if self.system is not None and self.system_from is not None:
            raise ValueError("give `system` or `system_from`, not both")
        if self.tools and self.tools_from is not None:
            raise ValueError("give `tools` or `tools_from`, not both")
        return self


class ModelResponseIn(CommandPart):
    content: ModelContent = None
    tool_calls: ToolCalls = Field(default_factory=list)
    finish_reason: Name | None = None
    error: Text | None = None


class ModelUsageIn(CommandPart):
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cached_tokens: Tokens | None = None


class RecordModelCall(Command):
    """POST /v1/sessions/{id}/model-calls: one call of an agent to a model."""

    type: Literal["record_model_call"] = "record_model_call"
    call_id: Identifier | None = None  # None: the decider assigns one (new_id)
    agent: Identifier | None = None
    provider: Identifier | None = None
    model: Name
    request: ModelRequestIn
    response: ModelResponseIn = Field(default_factory=ModelResponseIn)
    usage: ModelUsageIn = Field(default_factory=ModelUsageIn)
    latency_ms: DurationMs | None = None


class CompactContext(Command):
    """POST /v1/sessions/{id}/compactions: the agent replaced part of its context."""

    type: Literal["compact_context"] = "compact_context"
    compaction_id: Identifier | None = None  # None: the decider assigns one (new_id)
    agent: Identifier | None = None
    kind: Literal["summarized", "truncated"] = "summarized"
    replaced: Annotated[MessageItems, Field(min_length=1)]
    replacement: MessageItems = Field(default_factory=list)
    reason: ShortText | None = None


# --- agent frameworks' records (agentlog.integrations): LangGraph threads, SDK conversation memory ---

MAX_FRAMEWORK_KEY_CHARS = 1024
MAX_BLOBS = 1024
MAX_WRITES = 1024
MAX_CONVERSATION_ITEMS = 1000
MAX_VALUE_BYTES = 1024 * KIB  # the body limit (AGENTLOG_COMMANDS_MAX_BODY_BYTES) bounds a whole request
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

# A framework's own keys (thread, namespace, channel, task ids): any text but control characters.
FrameworkKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_FRAMEWORK_KEY_CHARS, json_schema_extra=_NO_CONTROL),
    AfterValidator(_no_control_chars),
]
Namespace = Annotated[
    str, Field(max_length=MAX_FRAMEWORK_KEY_CHARS, json_schema_extra=_NO_CONTROL), AfterValidator(_no_control_chars)
]
FrameworkJson: TypeAlias = Annotated[
    Any, AfterValidator(_json_check(MAX_VALUE_BYTES)), Field(json_schema_extra=_json_doc(MAX_VALUE_BYTES))
]
FrameworkObject: TypeAlias = Annotated[
    dict[str, Any], AfterValidator(_json_check(MAX_VALUE_BYTES)), Field(json_schema_extra=_json_doc(MAX_VALUE_BYTES))
]


class StoredValueIn(CommandPart):
    """A serialized value: JSON as JSON (`kind` json, `value`), or the serializer's type tag and
    bytes in base64 (`kind` bytes, `type`, `base64`); `kind` empty has neither."""

    kind: Literal["json", "bytes", "empty"]
    value: FrameworkJson = None
    type: Name | None = None
    base64: (
        Annotated[str, Field(max_length=2 * MAX_VALUE_BYTES, json_schema_extra={"pattern": "^[A-Za-z0-9+/]*={0,2}$"})]
        | None
    ) = None

    @model_validator(mode="after")
    def _one_form(self) -> StoredValueIn:
        if self.kind == "bytes":
            if self.type is None or self.base64 is None:
                raise ValueError("a `bytes` value needs `type` and `base64`")
            if len(self.base64) % 4 or _BASE64.fullmatch(self.base64) is None:
                raise ValueError("`base64` must be standard base64 with padding")
        elif self.type is not None or self.base64 is not None:
            raise ValueError(f"a `{self.kind}` value has no `type` or `base64`")
        if self.kind == "empty" and self.value is not None:
            raise ValueError("an `empty` value has no `value`")
        return self


class GraphBlobIn(CommandPart):
    channel: FrameworkKey
    version: FrameworkKey
    value: StoredValueIn


class GraphWriteIn(CommandPart):
    idx: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
    channel: FrameworkKey
    value: StoredValueIn


class PutGraphCheckpoint(Command):
    """POST /v1/sessions/{id}/graph/checkpoints: LangGraph saved a checkpoint of this thread. The
    first one starts the session (with `workflow`, default "langgraph")."""

    type: Literal["put_graph_checkpoint"] = "put_graph_checkpoint"
    thread_id: FrameworkKey
    checkpoint_ns: Namespace = ""
    checkpoint_id: FrameworkKey
    parent_checkpoint_id: FrameworkKey | None = None
    checkpoint: FrameworkObject
    metadata: FrameworkObject = Field(default_factory=dict)
    blobs: list[GraphBlobIn] = Field(default_factory=list, max_length=MAX_BLOBS)
    workflow: Identifier | None = None  # the session's, when this command starts it


class PutGraphWrites(Command):
    """POST /v1/sessions/{id}/graph/writes: a task's writes, linked to the checkpoint it ran after.
    LangGraph may send them before that checkpoint's put has landed, so they may start the
    session too."""

    type: Literal["put_graph_writes"] = "put_graph_writes"
    thread_id: FrameworkKey
    checkpoint_ns: Namespace = ""
    checkpoint_id: FrameworkKey
    task_id: FrameworkKey
    task_path: Namespace = ""
    writes: Annotated[list[GraphWriteIn], Field(min_length=1, max_length=MAX_WRITES)]
    workflow: Identifier | None = None  # the session's, when this command starts it


class DeleteGraphThread(Command):
    """POST /v1/sessions/{id}/graph/delete: hide the thread's checkpoints and writes (an event:
    nothing leaves the log)."""

    type: Literal["delete_graph_thread"] = "delete_graph_thread"
    thread_id: FrameworkKey


ConversationItem = Annotated[
    dict[str, Any], AfterValidator(_json_check(256 * KIB)), Field(json_schema_extra=_json_doc(256 * KIB))
]


class AddConversationItems(Command):
    """POST /v1/sessions/{id}/conversation/items: items of an agent SDK's conversation memory, as
    the SDK gave them. The first add starts the session (with `workflow`, default "openai-agents")."""

    type: Literal["add_conversation_items"] = "add_conversation_items"
    items: Annotated[list[ConversationItem], Field(min_length=1, max_length=MAX_CONVERSATION_ITEMS)]
    agent: Identifier | None = None
    workflow: Identifier | None = None  # the session's, when this command starts it


class PopConversationItem(Command):
    """POST /v1/sessions/{id}/conversation/pop: remove the most recent item, which the caller read
    as `index` (send If-Match with the version that read answered, so nothing came in between)."""

    type: Literal["pop_conversation_item"] = "pop_conversation_item"
    index: Annotated[int, Field(ge=0, le=2**62)]


class ClearConversation(Command):
    """POST /v1/sessions/{id}/conversation/clear: remove every item (an event: the log keeps them)."""

    type: Literal["clear_conversation"] = "clear_conversation"


AnyCommand = Annotated[
    StartSession
    | AddMessage
    | RequestToolCall
    | CompleteToolCall
    | FailToolCall
    | UpdateStateSection
    | SaveCheckpoint
    | RequestApproval
    | DecideApproval
    | RecordError
    | RecordCompensation
    | CompleteSession
    | FailSession
    | CancelSession
    | RecordModelCall
    | CompactContext
    | PutGraphCheckpoint
    | PutGraphWrites
    | DeleteGraphThread
    | AddConversationItems
    | PopConversationItem
    | ClearConversation,
    Field(discriminator="type"),
]
"""A command a client may send in a multi-command body (ForkSession is not one)."""

_ANY_COMMAND: TypeAdapter[Any] = TypeAdapter(AnyCommand)


def parse_command(data: Any) -> Command:
    """One item of a multi-command body; raises pydantic.ValidationError (-> 422) if invalid."""
    command: Command = _ANY_COMMAND.validate_python(data)
    return command
