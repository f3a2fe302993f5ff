"""The events of an agent session: the stored format of the log.

Invariant: a class here IS the storage format. Its `TYPE` string is what the `events.type` column,
the Kafka `type` header and every consumer see, and never changes (it is not the Python name or
import path: renaming the class must not rename the event). Changing the fields means bumping
`SCHEMA_VERSION` and adding an upcaster in eventstore/upcasting.py for the old payloads.

Events record what happened and validate only shape, not client limits (those live on the
commands): a rule tightened tomorrow must not make yesterday's log unreadable. The session id,
version, timestamp of recording, tenant and actor live in the envelope (RecordedEvent), not here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["user", "assistant", "system", "tool"]
Risk = Literal["low", "medium", "high", "critical"]
Decision = Literal["approved", "rejected"]


class Event(BaseModel):
    """Base of every event: frozen, and a stored payload with an unknown field is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1


class Budget(BaseModel):
    """What a session may spend on model calls: tokens (input + output) and/or cost in USD. A call
    over it is still recorded; the session then gets one BudgetExceeded."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: float | None = Field(default=None, ge=0)


class SessionStarted(Event):
    """A session began. `agents` are the agents declared up front (others may still write).
    v1 had no `budget`."""

    TYPE: ClassVar[str] = "SessionStarted"
    SCHEMA_VERSION: ClassVar[int] = 2
    workflow: str | None = None  # e.g. "support-case"; read models filter on it
    title: str | None = None
    agents: list[str] = Field(default_factory=list)
    allow_shared_sections: bool = False  # if False, a state section belongs to its first writer
    metadata: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    started_by: str | None = None  # the agent, user or orchestrator that started it
    budget: Budget | None = None


class MessageAdded(Event):
    """A conversation turn. v1 (before agents were named) had `text` and no `agent`."""

    TYPE: ClassVar[str] = "MessageAdded"
    SCHEMA_VERSION: ClassVar[int] = 2
    role: Role
    content: str
    agent: str | None = None  # which agent spoke (assistant/tool turns); None for a user turn


class ToolCallRequested(Event):
    """An agent asked for a tool to run; the call stays open until completed or failed."""

    TYPE: ClassVar[str] = "ToolCallRequested"
    call_id: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    agent: str | None = None


class ToolCallCompleted(Event):
    TYPE: ClassVar[str] = "ToolCallCompleted"
    call_id: str
    result: Any = None  # any JSON value the tool returned
    duration_ms: int | None = Field(default=None, ge=0)


class ToolCallFailed(Event):
    TYPE: ClassVar[str] = "ToolCallFailed"
    call_id: str
    error: str
    duration_ms: int | None = Field(default=None, ge=0)
    retriable: bool = False  # the caller may request a new call (with a new call id)


class StateSectionUpdated(Event):
    """An agent changed one named section of the session state with a JSON merge patch."""

    TYPE: ClassVar[str] = "StateSectionUpdated"
    agent: str
    section: str
    changes: dict[str, Any]  # RFC 7396 merge patch; `null` members remove keys


class CheckpointSaved(Event):
    """A named point to replay or fork from (`agentlog replay --to-checkpoint NAME`)."""

    TYPE: ClassVar[str] = "CheckpointSaved"
    name: str
    step: int | None = None  # the workflow's own step number, if it has one


class ApprovalRequested(Event):
    """An agent asks a human to approve an action before it goes ahead."""

    TYPE: ClassVar[str] = "ApprovalRequested"
    approval_id: str
    action: str  # what will happen if approved, e.g. "refund 42.00 EUR"
    risk: Risk = "medium"
    requested_by: str  # the agent asking
    expires_at: datetime | None = None  # no decision is accepted at or after this instant
    details: dict[str, Any] = Field(default_factory=dict)


class ApprovalDecided(Event):
    TYPE: ClassVar[str] = "ApprovalDecided"
    approval_id: str
    decision: Decision
    reviewer: str
    comment: str | None = None
    decided_at: datetime  # the decider's clock, so replays judge expiry as it was judged then


class ErrorRecorded(Event):
    """An error an agent hit and handled or reported; it does not end the session."""

    TYPE: ClassVar[str] = "ErrorRecorded"
    message: str
    agent: str | None = None
    kind: str | None = None  # a machine-readable class, e.g. "rate_limited"
    details: dict[str, Any] = Field(default_factory=dict)


class CompensationRecorded(Event):
    """A saga step was undone (e.g. a refund request cancelled after a rejection)."""

    TYPE: ClassVar[str] = "CompensationRecorded"
    step: str  # the step undone: a tool call id, checkpoint name or workflow step
    reason: str | None = None
    agent: str | None = None


class SessionCompleted(Event):
    TYPE: ClassVar[str] = "SessionCompleted"
    outcome: str | None = None  # short machine-readable result, e.g. "resolved"
    summary: str | None = None


class SessionFailed(Event):
    TYPE: ClassVar[str] = "SessionFailed"
    reason: str


class SessionCancelled(Event):
    TYPE: ClassVar[str] = "SessionCancelled"
    reason: str | None = None
    by: str | None = None


class SessionForked(Event):
    """First event of a fork: this session starts from another session's state at a version.

    `state` is the source's `SessionState.to_snapshot()` at `source_version`, copied so the fork
    does not depend on the source stream staying readable.
    """

    TYPE: ClassVar[str] = "SessionForked"
    source_session_id: str
    source_version: int = Field(ge=0)
    state: dict[str, Any]


class _Part(BaseModel):
    """A nested part of an event: frozen and closed like the event itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRequest(_Part):
    """What a model was sent. `messages` holds message objects exactly as the agent sent them and
    references to messages the session already holds (eventstore/message_refs.py); `system_from`
    and `tools_from` name an earlier call whose system prompt or tools were sent again."""

    system: Any = None  # the system prompt: text, or content blocks
    system_from: str | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list)  # tool definitions with their schemas
    tools_from: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)  # temperature, max_tokens, ...


class ModelResponse(_Part):
    """What the model answered: content and requested tool calls, why it stopped, or an error."""

    content: Any = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    finish_reason: str | None = None
    error: str | None = None


class ModelUsage(_Part):
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    cached_tokens: int | None = Field(default=None, ge=0)  # of the input, served from a cache


class ModelCost(_Part):
    """What a call cost, priced when it was decided with the price table version then in effect
    (eventstore/pricing.py): a later price change never rewrites it, and a rebuild reads it back."""

    usd: float = Field(ge=0)
    price_version: str


class ModelCallRecorded(Event):
    """One call of an agent to a model: the request (by reference where it repeats the session),
    the response, token usage and latency. `agentlog context` rebuilds the exact request.
    `cost` is None when the model had no price at the time. v1 had no `cost`."""

    TYPE: ClassVar[str] = "ModelCallRecorded"
    SCHEMA_VERSION: ClassVar[int] = 2
    call_id: str
    agent: str | None = None
    provider: str | None = None  # e.g. "openai", "anthropic"
    model: str
    request: ModelRequest
    response: ModelResponse = Field(default_factory=ModelResponse)
    usage: ModelUsage = Field(default_factory=ModelUsage)
    latency_ms: int | None = Field(default=None, ge=0)
    cost: ModelCost | None = None

    # derived by the decider, not sent by the agent: a retry after a price change is the same call
    DERIVED: ClassVar[frozenset[str]] = frozenset({"cost"})


class BudgetExceeded(Event):
    """The session's model calls went over its budget with call `call_id` (which is recorded too).
    Appended once per session, in the same append as that call."""

    TYPE: ClassVar[str] = "BudgetExceeded"
    call_id: str
    exceeded: Literal["tokens", "cost"]  # the first limit crossed (tokens if both at once)
    tokens: int = Field(ge=0)  # spent so far, this call included
    cost_usd: float = Field(ge=0)
    max_tokens: int | None = None
    max_cost_usd: float | None = None


class ContextCompacted(Event):
    """An agent compacted or truncated its context: `replaced` (items, usually references) were
    replaced by `replacement` (e.g. a summary; empty for a plain truncation). A later request
    references the result as {"ref": "compaction", "compaction_id": ...}."""

    TYPE: ClassVar[str] = "ContextCompacted"
    compaction_id: str
    agent: str | None = None
    kind: str = "summarized"  # or "truncated"
    replaced: list[dict[str, Any]] = Field(default_factory=list)
    replacement: list[dict[str, Any]] = Field(default_factory=list)
    reason: str | None = None


# --- agent frameworks' own records (agentlog.integrations): LangGraph threads, SDK conversations ---


class StoredValue(_Part):
    """A value an agent framework's serializer handed over, kept losslessly: `json` keeps a value
    that is JSON as JSON (so replay and the query API show it); `bytes` keeps the serializer's
    type tag and its bytes in base64 (msgpack, pickle, encrypted...); `empty` marks a channel
    that has a version but no value."""

    kind: Literal["json", "bytes", "empty"]
    value: Any = None  # kind json
    type: str | None = None  # kind bytes: the serializer's type tag, given back to it to load
    base64: str | None = None  # kind bytes


class GraphBlob(_Part):
    """A LangGraph channel's value at one of its versions (stored once, however many checkpoints
    refer to that version)."""

    channel: str
    version: str
    value: StoredValue


class GraphWrite(_Part):
    """One pending write of a task: its index (LangGraph's, negative for the special channels
    such as errors and interrupts), channel and value."""

    idx: int
    channel: str
    value: StoredValue


class GraphCheckpointPut(Event):
    """LangGraph saved a checkpoint of a thread (the thread is this session). `checkpoint` is
    LangGraph's checkpoint with only the JSON scalars left in `channel_values`; the other channel
    values are in `blobs`, for the channels whose version this checkpoint introduced."""

    TYPE: ClassVar[str] = "GraphCheckpointPut"
    thread_id: str
    checkpoint_ns: str = ""
    checkpoint_id: str
    parent_checkpoint_id: str | None = None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any] = Field(default_factory=dict)
    blobs: list[GraphBlob] = Field(default_factory=list)


class GraphWritesPut(Event):
    """A task of a LangGraph step wrote to channels, linked to the checkpoint it ran after."""

    TYPE: ClassVar[str] = "GraphWritesPut"
    thread_id: str
    checkpoint_ns: str = ""
    checkpoint_id: str
    task_id: str
    task_path: str = ""
    writes: list[GraphWrite]


class GraphThreadDeleted(Event):
    """LangGraph deleted the thread: its checkpoints and writes until now are hidden from reads
    (nothing leaves the log); the thread may be used again."""

    TYPE: ClassVar[str] = "GraphThreadDeleted"
    thread_id: str


class ConversationItemsAdded(Event):
    """Items added to an agent SDK's conversation memory (OpenAI Agents SDK `Session`), exactly as
    the SDK gave them. `first_index` numbers them within the session, counting every item ever
    added (popped and cleared ones too), so an index names one item for good."""

    TYPE: ClassVar[str] = "ConversationItemsAdded"
    first_index: int = Field(ge=0)
    items: list[dict[str, Any]]
    agent: str | None = None


class ConversationItemPopped(Event):
    """The most recent item of the conversation memory was removed (it stays in the log)."""

    TYPE: ClassVar[str] = "ConversationItemPopped"
    index: int = Field(ge=0)


class ConversationCleared(Event):
    """Every item of the conversation memory was removed (they stay in the log)."""

    TYPE: ClassVar[str] = "ConversationCleared"


ALL_EVENT_CLASSES: tuple[type[Event], ...] = (
    SessionStarted,
    MessageAdded,
    ToolCallRequested,
    ToolCallCompleted,
    ToolCallFailed,
    StateSectionUpdated,
    CheckpointSaved,
    ApprovalRequested,
    ApprovalDecided,
    ErrorRecorded,
    CompensationRecorded,
    SessionCompleted,
    SessionFailed,
    SessionCancelled,
    SessionForked,
    ModelCallRecorded,
    ContextCompacted,
    BudgetExceeded,
    GraphCheckpointPut,
    GraphWritesPut,
    GraphThreadDeleted,
    ConversationItemsAdded,
    ConversationItemPopped,
    ConversationCleared,
)
