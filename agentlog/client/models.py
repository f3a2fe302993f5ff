"""The answers of the agentlog APIs as typed, immutable objects.

Invariant: each model mirrors one answer shape of the public contract (docs/architecture.md, the
query API's read models) and nothing of the server's code; unknown fields a newer server adds are
kept (`extra="allow"`, readable in `model_extra`), never refused, so an older client keeps working.
Statuses are plain strings for the same reason: a new status must not break parsing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

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
