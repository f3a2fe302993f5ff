"""The answers of the agentlog APIs as typed, immutable objects.

Invariant: each model mirrors one answer shape of the public contract (docs/architecture.md, the
query API's read models) and nothing of the server's code; unknown fields a newer server adds are
kept (`extra="allow"`, readable in `model_extra`), never refused, so an older client keeps working.
Statuses are plain strings for the same reason: a new status must not break parsing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class WriteResult(Answer):
    """Every successful command: the session's version after it, the global position of its last
    event, the ids of the events it appended (none for a repeat), and whether the answer is the
    stored first answer of an earlier request with the same Idempotency-Key."""

    session_id: str
    version: int
    position: int
    event_ids: tuple[str, ...] = ()
    replayed: bool = False


class SessionCounts(Answer):
    messages: int = 0
    tool_calls: int = 0
    tool_failures: int = 0
    errors: int = 0


class Usage(Answer):
    """Sums over model calls: tokens, cost in USD (each call as priced when it was recorded),
    calls without a price, errors and latency."""

    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    errors: int = 0
    total_latency_ms: int = 0
    avg_latency_ms: float | None = None
    max_latency_ms: int | None = None


class SessionBudget(Answer):
    """A session's budget; `exceeded` is the flag to poll (or wait for with min_version)."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    exceeded: bool = False
    exceeded_by: str | None = None
    exceeded_kind: str | None = None
    exceeded_version: int | None = None
    exceeded_at: datetime | None = None


class UsageGroup(Usage):
    key: str | None = None


class UsageReport(Answer):
    """GET /v1/stats/usage: totals and, with group_by, one entry per agent, model, day or session."""

    group_by: str | None = None
    totals: Usage = Usage()
    groups: tuple[UsageGroup, ...] = ()
    truncated: bool = False


class Session(Answer):
    """A session summary; `version` is the last version the read models processed."""

    session_id: str
    status: str
    version: int
    workflow: str | None = None
    title: str | None = None
    agents: tuple[str, ...] = ()
    forked_from: str | None = None
    forked_from_version: int | None = None
    last_checkpoint: str | None = None
    last_step: int | None = None
    outcome: str | None = None
    counts: SessionCounts = SessionCounts()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_position: int | None = None
    has_parked_events: bool = False
    usage: Usage | None = None  # its own model calls (a fork's exclude its source's)
    budget: SessionBudget | None = None


class StateSection(Answer):
    value: dict[str, Any]
    owner: str | None = None
    last_agent: str | None = None
    version: int
    updated_at: datetime | None = None


class SessionState(Answer):
    """The current state sections of a session (GET /v1/sessions/{id}/state)."""

    session_id: str
    status: str
    version: int
    has_parked_events: bool = False
    sections: dict[str, StateSection] = {}


class TimelineEntry(Answer):
    version: int
    position: int
    type: str
    summary: str
    agent: str | None = None
    recorded_at: datetime


class ToolCall(Answer):
    call_id: str
    tool: str | None = None
    agent: str | None = None
    arguments: dict[str, Any] | None = None
    status: str
    requested_version: int | None = None
    requested_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    error: str | None = None


class AuditEntry(Answer):
    """One change of a state section: who, the merge patch, the value before and after."""

    version: int
    section: str
    agent: str | None = None
    patch: dict[str, Any]
    old_value: dict[str, Any] | None = None
    new_value: dict[str, Any]
    recorded_at: datetime


class Approval(Answer):
    session_id: str
    approval_id: str
    action: str | None = None
    risk: str | None = None
    requested_by: str | None = None
    details: dict[str, Any] | None = None
    expires_at: datetime | None = None
    status: str
    reviewer: str | None = None
    comment: str | None = None
    decided_at: datetime | None = None
    requested_at: datetime | None = None
    requested_position: int


class ToolStats(Answer):
    tool: str
    calls: int
    completed: int
    failures: int
    total_duration_ms: int
    avg_duration_ms: float | None = None
    failure_rate: float | None = None


class Page(Answer, Generic[T]):
    """One page of a list; `next_cursor` asks for the next one (None: this was the last)."""

    items: tuple[T, ...]
    next_cursor: str | None = None


class SessionPage(Page[T], Generic[T]):
    """A page of one session's rows, with the session's head (id, status, projected version)."""

    session_id: str
    status: str
    version: int
    has_parked_events: bool = False


# --- time travel (folds of the event store: current as soon as a write answered) ------------------


class Where(Answer):
    """Where something was recorded: a session (a fork's source, for inherited entries) and version."""

    session_id: str
    version: int


class ModelUsage(Answer):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None


class ModelCallSummary(Answer):
    """One recorded model call, in short: who called which model, how many messages and tools it
    was given, how it finished, its usage and latency."""

    call_id: str
    session_id: str
    version: int
    recorded_at: datetime
    agent: str | None = None
    provider: str | None = None
    model: str
    messages: int
    tools: int
    finish_reason: str | None = None
    error: str | None = None
    tool_calls: int = 0
    usage: ModelUsage = ModelUsage()
    latency_ms: int | None = None


class KnownMessage(Where):
    role: str
    agent: str | None = None
    content: str


class KnownToolCall(Answer):
    call_id: str
    tool: str | None = None
    agent: str | None = None
    arguments: dict[str, Any] | None = None
    status: str
    result: Any = None
    error: str | None = None
    duration_ms: int | None = None
    requested: Where | None = None
    finished: Where | None = None


class KnownApproval(Answer):
    approval_id: str
    action: str | None = None
    risk: str | None = None
    requested_by: str | None = None
    expires_at: datetime | None = None
    details: dict[str, Any] | None = None
    status: str
    reviewer: str | None = None
    comment: str | None = None
    decided_at: datetime | None = None
    requested: Where | None = None
    decided: Where | None = None


class StateAt(Answer):
    """A session replayed at `version` (GET /v1/sessions/{id}/state?at_version=N): its status and
    state sections, the whole decision state, and what the agents knew then (the conversation,
    tool calls with results, approvals, model calls), a fork's inherited part included."""

    session_id: str
    version: int
    last_version: int
    status: str
    sections: dict[str, dict[str, Any]] = {}
    state: dict[str, Any] = {}
    conversation: tuple[KnownMessage, ...] = ()
    tool_calls: tuple[KnownToolCall, ...] = ()
    approvals: tuple[KnownApproval, ...] = ()
    model_calls: tuple[ModelCallSummary, ...] = ()


class HistoryEntry(Answer):
    """One event as `agentlog history` shows it."""

    session_id: str
    version: int
    type: str
    recorded_at: datetime
    actor: str | None = None
    agent: str | None = None
    summary: str
    event_id: str
    position: int


class PathValue(Answer):
    path: str
    """A JSON Pointer into the compared state (e.g. /sections/billing/amount)."""
    value: Any = None


class PathChange(Answer):
    path: str
    old: Any = Field(default=None, alias="from")
    new: Any = Field(default=None, alias="to")


class StateChanges(Answer):
    added: tuple[PathValue, ...] = ()
    removed: tuple[PathValue, ...] = ()
    changed: tuple[PathChange, ...] = ()


class StepPair(Answer):
    """A step of the aligned histories: each side's event there (None where a side has ended),
    and whether both did the same thing."""

    step: int
    same: bool
    left: HistoryEntry | None = None
    right: HistoryEntry | None = None


class SessionDiff(Answer):
    """Two points of history (GET /v1/sessions/{id}/diff): the state changes and the events after
    the steps both sides share (a fork against its source is aligned at the fork point)."""

    left: Where
    right: Where
    common_steps: int
    state: StateChanges
    events: tuple[StepPair, ...] = ()


class BlameEntry(Answer):
    """A leaf of the state and the event that last set it (`session_id` is the source's for a
    value a fork inherited)."""

    path: str
    value: Any = None
    session_id: str
    version: int
    type: str
    agent: str | None = None
    actor: str | None = None
    recorded_at: datetime
    event_id: str


class Blame(Answer):
    session_id: str
    version: int
    last_version: int
    section: str | None = None
    entries: tuple[BlameEntry, ...] = ()


class ModelRequestRecord(Answer):
    """A model call's request with every reference resolved: what the model got."""

    system: Any = None
    messages: tuple[dict[str, Any], ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    parameters: dict[str, Any] = {}


class ModelResponseRecord(Answer):
    content: Any = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str | None = None
    error: str | None = None


class ModelContext(Answer):
    """The exact request of one model call, rebuilt from the log (GET /v1/sessions/{id}/context)."""

    session_id: str
    version: int
    recorded_at: datetime
    call_id: str
    agent: str | None = None
    provider: str | None = None
    model: str
    request: ModelRequestRecord
    response: ModelResponseRecord = ModelResponseRecord()
    usage: ModelUsage = ModelUsage()
    latency_ms: int | None = None


class ModelCallPage(Page[ModelCallSummary]):
    """A page of a session's model calls (a fork's inherited ones first)."""

    session_id: str
    version: int
    last_version: int


class Fork(Answer):
    """A session forked from another, as the read models show it."""

    session_id: str
    forked_from_version: int | None = None
    status: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_version: int | None = None


class ForkPage(Page[Fork]):
    session_id: str


# --- agent frameworks' records (agentlog.integrations) ---------------------------------------------


class StoredValue(Answer):
    """A serialized value as stored: `kind` "json" (`value`), "bytes" (`type`, `base64`: the
    serializer's tag and bytes) or "empty"."""

    kind: str
    value: Any = None
    type: str | None = None
    base64: str | None = None


class GraphPendingWrite(Answer):
    task_id: str
    channel: str
    idx: int
    task_path: str = ""
    value: StoredValue


class GraphCheckpoint(Answer):
    """A LangGraph checkpoint as stored: `checkpoint["channel_values"]` maps each channel to a
    StoredValue-shaped dict; `recorded_in` is where it was written (a copied thread's inherited
    checkpoints were written in its source)."""

    thread_id: str | None = None
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None = None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any] = {}
    pending_writes: tuple[GraphPendingWrite, ...] = ()
    session_id: str
    recorded_in: Where
    recorded_at: datetime


class GraphCheckpoints(Answer):
    """A thread's checkpoints, newest first, with the session's head."""

    session_id: str
    status: str
    version: int
    has_parked_events: bool = False
    items: tuple[GraphCheckpoint, ...] = ()


class TenantGraphCheckpoints(Answer):
    items: tuple[GraphCheckpoint, ...] = ()


class ConversationItem(Answer):
    index: int
    item: dict[str, Any]
    agent: str | None = None
    added_version: int
    recorded_at: datetime


class ConversationItems(Answer):
    """The live items of a conversation memory, oldest first; `version` is exactly the session
    version they reflect (send it as `expected_version` with a pop)."""

    session_id: str
    status: str
    version: int
    has_parked_events: bool = False
    total: int
    items: tuple[ConversationItem, ...] = ()
