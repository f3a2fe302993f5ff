"""The success bodies of the query API as its OpenAPI document states them.

Invariant: each model lists every key the matching route sends (projections/api/sessions.py,
queues.py, built from the read models' columns), with its JSON type and whether it may be null.
Documentation only: the routes return plain dicts and nothing is validated or filtered through
these models on the way out (tests/integration/test_openapi_schemathesis.py checks real answers
against them). No command limits here: read models keep whatever events were written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SessionStatus = Literal["open", "completed", "failed", "cancelled", "unknown"]


class Answer(BaseModel):
    """Closed (additionalProperties: false): a key the API sends but the document lacks is a
    conformance failure in the tests, not a silent drift."""

    model_config = ConfigDict(extra="forbid")


class Counts(Answer):
    messages: int
    tool_calls: int
    tool_failures: int
    errors: int


class Usage(Answer):
    """Sums over model calls (projections/read_models/usage.py); a cost is what a call was priced
    at when it was recorded, in USD; unpriced calls (no price for the model then) add no cost."""

    model_calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int = Field(description="of the input tokens, served from a cache")
    cost_usd: float
    unpriced_calls: int
    errors: int = Field(description="calls whose response was an error")
    total_latency_ms: int
    avg_latency_ms: float | None
    max_latency_ms: int | None


class SessionBudget(Answer):
    max_tokens: int | None
    max_cost_usd: float | None
    exceeded: bool = Field(description="a model call took the session over its budget (BudgetExceeded)")
    exceeded_by: str | None = Field(description="the model call that crossed it")
    exceeded_kind: Literal["tokens", "cost"] | None
    exceeded_version: int | None
    exceeded_at: datetime | None


class UsageGroup(Usage):
    key: str | None = Field(description="the agent, model, day (UTC, YYYY-MM-DD) or session of the group")


class UsageReport(Answer):
    group_by: Literal["agent", "model", "day", "session"] | None
    totals: Usage
    groups: list[UsageGroup] = Field(description="by key; empty without group_by")
    truncated: bool = Field(description="more groups than `limit` matched")


class Session(Answer):
    """A session summary; `version` is the last version projected (what ?min_version= waits for)."""

    session_id: str
    status: SessionStatus
    version: int
    workflow: str | None
    title: str | None
    agents: list[str]
    forked_from: str | None
    forked_from_version: int | None
    last_checkpoint: str | None
    last_step: int | None
    outcome: str | None
    counts: Counts
    created_at: datetime
    updated_at: datetime
    last_position: int
    has_parked_events: bool = Field(description="an event of this session is parked: some read model lacks it")
    usage: Usage = Field(description="this session's own model calls (a fork's excludes its source's)")
    budget: SessionBudget | None = Field(description="null: the session has no budget")


class SessionPage(Answer):
    items: list[Session]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class _Head(Answer):
    """What every answer about one session starts with."""

    session_id: str
    status: SessionStatus
    version: int
    has_parked_events: bool


class Section(Answer):
    value: dict[str, Any]
    owner: str | None
    last_agent: str | None
    version: int
    updated_at: datetime


class SessionState(_Head):
    sections: dict[str, Section]


class TimelineEntry(Answer):
    version: int
    position: int
    type: str
    summary: str
    agent: str | None
    recorded_at: datetime


class Timeline(_Head):
    items: list[TimelineEntry]
    next_cursor: str | None


class ToolCall(Answer):
    call_id: str
    tool: str | None
    agent: str | None
    arguments: dict[str, Any] | None
    status: Literal["requested", "completed", "failed"]
    requested_version: int | None
    requested_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error: str | None


class ToolCalls(_Head):
    items: list[ToolCall]
    next_cursor: str | None


class AuditEntry(Answer):
    version: int
    section: str
    agent: str | None
    patch: dict[str, Any]
    old_value: dict[str, Any] | None
    new_value: dict[str, Any]
    recorded_at: datetime


class Audit(_Head):
    items: list[AuditEntry]
    next_cursor: str | None


class Approval(Answer):
    session_id: str
    approval_id: str
    action: str | None
    risk: str | None
    requested_by: str | None
    details: dict[str, Any] | None
    expires_at: datetime | None
    status: Literal["pending", "approved", "rejected", "expired"]
    reviewer: str | None
    comment: str | None
    decided_at: datetime | None
    requested_at: datetime | None
    requested_position: int


class Approvals(Answer):
    items: list[Approval]
    next_cursor: str | None


class ToolStat(Answer):
    tool: str
    calls: int
    completed: int
    failures: int
    total_duration_ms: int
    avg_duration_ms: float | None
    failure_rate: float | None


class ToolStats(Answer):
    items: list[ToolStat]
    next_cursor: None = Field(description="always null: one page")


# --- Time travel (projections/api/timetravel.py): folds of the store. The top level is stated
# exactly; nested entries (events, transcripts, provider request bodies) are open objects.


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StateAt(Answer):
    """GET /state?at_version=N: the state replayed at N and what the agents knew then."""

    session_id: str
    version: int
    last_version: int
    status: str
    sections: dict[str, Any]
    state: dict[str, Any]
    conversation: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    model_calls: list[dict[str, Any]]


class DiffSide(Answer):
    session_id: str
    version: int


class Diff(Answer):
    left: DiffSide
    right: DiffSide
    common_steps: int
    state: dict[str, Any]
    events: list[dict[str, Any]]


class BlameAnswer(Answer):
    session_id: str
    version: int
    last_version: int
    section: str | None
    entries: list[dict[str, Any]]


class ModelCalls(Answer):
    session_id: str
    version: int
    last_version: int
    items: list[dict[str, Any]]
    next_cursor: str | None


class Context(_Open):
    """The recorded request (format=json), or a provider's API body (format=openai|anthropic)."""


class Fork(Answer):
    session_id: str
    forked_from_version: int | None
    status: SessionStatus
    created_at: datetime
    updated_at: datetime
    last_version: int


class Forks(Answer):
    session_id: str
    items: list[Fork]
    next_cursor: str | None


# --- Agent frameworks' records (projections/api/graph.py, conversation.py) ---------------------


class StoredValue(Answer):
    """A framework's value: `json` (`value`), `bytes` (the serializer's `type` tag and `base64`) or `empty`."""

    kind: Literal["json", "bytes", "empty"]
    value: Any
    type: str | None
    base64: str | None


class GraphPendingWrite(Answer):
    task_id: str
    channel: str
    idx: int
    task_path: str
    value: StoredValue


class RecordedIn(Answer):
    session_id: str
    version: int


class GraphCheckpoint(Answer):
    """A LangGraph checkpoint: `checkpoint.channel_values` maps each channel to a StoredValue."""

    thread_id: str | None = Field(description="LangGraph's thread id (null for a copy not written to yet)")
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    pending_writes: list[GraphPendingWrite]
    session_id: str = Field(description="the thread's session")
    recorded_in: RecordedIn = Field(description="where it was written: a copy's inherited checkpoints, in the source")
    recorded_at: datetime


class GraphCheckpoints(_Head):
    items: list[GraphCheckpoint] = Field(description="newest first; page on with ?before=<last checkpoint_id>")


class TenantGraphCheckpoints(Answer):
    items: list[GraphCheckpoint]


class ConversationItem(Answer):
    index: int = Field(description="the item's number in the session, counting every item ever added")
    item: dict[str, Any]
    agent: str | None
    added_version: int
    recorded_at: datetime


class ConversationItems(_Head):
    total: int = Field(description="items not popped or cleared")
    items: list[ConversationItem] = Field(description="oldest first; with ?limit=, the latest ones")
