"""The queries of the query API, one function each: its arguments in, the Call out.

Invariant: a query about one session is marked `reads="session"` and a query across sessions
`reads="tenant"`, so ClientCore can add the read-your-writes bound (`min_version` of this
client's last write to that session, `min_position` of its last write) when the caller gave none.
The time-travel queries fold the event store, so they are current as soon as a write answered and
carry no bound (they are not marked); `/forks` lists read models and is marked `reads="tenant"`.
List queries answer a Page (or SessionPage) whose `next_cursor` the clients follow to iterate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from agentlog.client.calls import Call, Reads, path, query_params
from agentlog.client.models import (
    Approval,
    AuditEntry,
    Blame,
    ConversationItems,
    ForkPage,
    GraphCheckpoints,
    ModelCallPage,
    ModelContext,
    Page,
    Session,
    SessionDiff,
    SessionPage,
    SessionState,
    StateAt,
    TenantGraphCheckpoints,
    TimelineEntry,
    ToolCall,
    ToolStats,
    UsageReport,
)

M = TypeVar("M", bound=BaseModel)

SessionStatus = Literal["open", "completed", "failed", "cancelled", "unknown"]
ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]
ToolCallStatus = Literal["requested", "completed", "failed"]
ProviderFormat = Literal["openai", "anthropic"]


def _parser(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        return model.model_validate(response.json())

    return parse


def _query(url: str, model: type[M], reads: Reads | None, session_id: str | None = None, **params: Any) -> Call[M]:
    return Call(
        "queries", "GET", url, _parser(model), params=query_params(**params), session_id=session_id, reads=reads
    )


def get_session(session_id: str, *, min_version: int | None = None, wait_ms: int | None = None) -> Call[Session]:
    """A session's summary: status, version, counts, last checkpoint, timestamps."""
    url = path("sessions", session_id)
    return _query(url, Session, "session", session_id, min_version=min_version, wait_ms=wait_ms)


def get_state(session_id: str, *, min_version: int | None = None, wait_ms: int | None = None) -> Call[SessionState]:
    """A session's current state sections, each with its owner, last agent and version."""
    url = path("sessions", session_id, "state")
    return _query(url, SessionState, "session", session_id, min_version=min_version, wait_ms=wait_ms)


def list_sessions(
    *,
    status: SessionStatus | None = None,
    workflow: str | None = None,
    agent: str | None = None,
    updated_since: datetime | None = None,
    order: Literal["desc", "asc"] | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    min_position: int | None = None,
    wait_ms: int | None = None,
) -> Call[Page[Session]]:
    """Sessions, newest updated first (`order="asc"` with `updated_since` to sync changes)."""
    return _query(
        path("sessions"),
        Page[Session],
        "tenant",
        status=status,
        workflow=workflow,
        agent=agent,
        updated_since=updated_since,
        order=order,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
        wait_ms=wait_ms,
    )


def _sse_entries(response: httpx.Response) -> list[TimelineEntry]:
    entries = []
    for block in response.text.split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in block.split("\n") if line.startswith("data:"))
        if data:
            entries.append(TimelineEntry.model_validate(json.loads(data)))
    return entries


def events_after(session_id: str, after_version: int = 0) -> Call[list[TimelineEntry]]:
    """The timeline entries projected after `after_version`, read from the live stream
    (GET /v1/sessions/{id}/events, server-sent events) without following it: the browser
    explorer follows; a program catches up with this and asks again."""
    url = path("sessions", session_id, "events")
    params = query_params(after_version=after_version, follow=False)
    return Call("queries", "GET", url, _sse_entries, params=params, session_id=session_id)


def timeline(
    session_id: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    min_version: int | None = None,
    wait_ms: int | None = None,
) -> Call[SessionPage[TimelineEntry]]:
    """A session's events in version order, one summary line each."""
    url = path("sessions", session_id, "timeline")
    return _query(
        url,
        SessionPage[TimelineEntry],
        "session",
        session_id,
        limit=limit,
        cursor=cursor,
        min_version=min_version,
        wait_ms=wait_ms,
    )


def tool_calls(
    session_id: str,
    *,
    status: ToolCallStatus | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    min_version: int | None = None,
    wait_ms: int | None = None,
) -> Call[SessionPage[ToolCall]]:
    """A session's tool calls in the order requested: arguments, status, duration, error."""
    return _query(
        path("sessions", session_id, "tool-calls"),
        SessionPage[ToolCall],
        "session",
        session_id,
        status=status,
        limit=limit,
        cursor=cursor,
        min_version=min_version,
        wait_ms=wait_ms,
    )


def audit(
    session_id: str,
    *,
    section: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    min_version: int | None = None,
    wait_ms: int | None = None,
) -> Call[SessionPage[AuditEntry]]:
    """Every change of a session's state sections: agent, patch, old and new value."""
    return _query(
        path("sessions", session_id, "audit"),
        SessionPage[AuditEntry],
        "session",
        session_id,
        section=section,
        limit=limit,
        cursor=cursor,
        min_version=min_version,
        wait_ms=wait_ms,
    )


def approvals(
    *,
    status: ApprovalStatus | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    min_position: int | None = None,
    wait_ms: int | None = None,
) -> Call[Page[Approval]]:
    """Approval requests of every session, oldest first; `status="pending"` is the reviewers' queue."""
    return _query(
        path("approvals"),
        Page[Approval],
        "tenant",
        status=status,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
        wait_ms=wait_ms,
    )


def _tool_stats(response: httpx.Response) -> tuple[ToolStats, ...]:
    return Page[ToolStats].model_validate(response.json()).items


def tool_stats() -> Call[tuple[ToolStats, ...]]:
    """Per tool of the tenant: calls, completions, failures, failure rate, total and average duration."""
    return Call("queries", "GET", path("stats", "tools"), _tool_stats)


def usage(
    *,
    session: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: Literal["agent", "model", "day", "session"] | None = None,
    limit: int | None = None,
) -> Call[UsageReport]:
    """Tokens, cost, latency and errors of the tenant's model calls (GET /v1/stats/usage), in total
    and per `group_by`; a fork counts only its own calls."""
    params: dict[str, Any] = {"session": session, "agent": agent, "model": model, "since": since, "until": until}
    params |= {"group_by": group_by, "limit": limit}
    return Call("queries", "GET", path("stats", "usage"), _parser(UsageReport), params=query_params(**params))


# --- time travel ---------------------------------------------------------------------------------


def state_at(session_id: str, at_version: int) -> Call[StateAt]:
    """The session replayed at `at_version` (GET /v1/sessions/{id}/state?at_version=N): state
    sections, decision state and what the agents knew then."""
    return _query(path("sessions", session_id, "state"), StateAt, None, session_id, at_version=at_version)


def diff(
    session_id: str, from_version: int, to_version: int | None = None, *, other: str | None = None
) -> Call[SessionDiff]:
    """What changed from `from_version` of this session to `to_version` (default: its last) of
    this session or of `other` (e.g. a fork of it, aligned at the fork point)."""
    params = {"from": from_version, "to": to_version, "other": other}
    return _query(path("sessions", session_id, "diff"), SessionDiff, None, session_id, **params)


def blame(session_id: str, *, section: str | None = None, at_version: int | None = None) -> Call[Blame]:
    """For each leaf of the state (of one `section`, at `at_version`), the event that last set it."""
    url = path("sessions", session_id, "blame")
    return _query(url, Blame, None, session_id, section=section, at_version=at_version)


def model_calls(session_id: str, *, limit: int | None = None, cursor: str | None = None) -> Call[ModelCallPage]:
    """The session's model calls in order (a fork's inherited calls first), one summary each."""
    url = path("sessions", session_id, "model-calls")
    return _query(url, ModelCallPage, None, session_id, limit=limit, cursor=cursor)


def context(session_id: str, call_id: str | None = None, *, at_version: int | None = None) -> Call[ModelContext]:
    """The exact request model call `call_id` got (or the last call at or before `at_version`),
    rebuilt through its references, with its response and usage."""
    url = path("sessions", session_id, "context")
    return _query(url, ModelContext, None, session_id, call_id=call_id, at_version=at_version)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body


def context_body(
    session_id: str, format: ProviderFormat, call_id: str | None = None, *, at_version: int | None = None
) -> Call[dict[str, Any]]:
    """The request of a model call as the body of a provider's API (`format="openai"`: Chat
    Completions, `"anthropic"`: Messages), to send it again or compare."""
    params = query_params(call_id=call_id, at_version=at_version, format=format)
    return Call("queries", "GET", path("sessions", session_id, "context"), _json_object, params=params)


def forks(
    session_id: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    min_position: int | None = None,
    wait_ms: int | None = None,
) -> Call[ForkPage]:
    """The sessions forked from this one, by session id (as the read models show them). Marked
    `reads="tenant"`: a fork is a write to another session, so the bound is this client's last
    write's position, and a fork this client just made is listed."""
    return _query(
        path("sessions", session_id, "forks"),
        ForkPage,
        "tenant",
        session_id,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
        wait_ms=wait_ms,
    )


# --- agent frameworks' records (agentlog.integrations) ---------------------------------------------


def _metadata_filter(metadata: dict[str, Any] | None) -> str | None:
    return None if metadata is None else json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)


def graph_checkpoints(
    session_id: str,
    *,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata: dict[str, Any] | None = None,
    limit: int | None = None,
    min_version: int | None = None,
    wait_ms: int | None = None,
) -> Call[GraphCheckpoints]:
    """A LangGraph thread's checkpoints, newest first (a copied thread's include its source's up to
    the copy): of one namespace (default all), one id, ids below `before`, metadata containing
    `metadata`; read-your-writes waits for the copy's sources too."""
    return _query(
        path("sessions", session_id, "graph", "checkpoints"),
        GraphCheckpoints,
        "session",
        session_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint_id,
        before=before,
        metadata=_metadata_filter(metadata),
        limit=limit,
        min_version=min_version,
        wait_ms=wait_ms,
    )


def all_graph_checkpoints(
    *,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata: dict[str, Any] | None = None,
    limit: int | None = None,
    min_position: int | None = None,
    wait_ms: int | None = None,
) -> Call[TenantGraphCheckpoints]:
    """Checkpoints of every LangGraph thread of the tenant, newest first."""
    return _query(
        path("graph", "checkpoints"),
        TenantGraphCheckpoints,
        "tenant",
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint_id,
        before=before,
        metadata=_metadata_filter(metadata),
        limit=limit,
        min_position=min_position,
        wait_ms=wait_ms,
    )


def conversation_items(
    session_id: str, *, limit: int | None = None, min_version: int | None = None, wait_ms: int | None = None
) -> Call[ConversationItems]:
    """The live items of a conversation memory, oldest first (with `limit`, the latest ones)."""
    url = path("sessions", session_id, "conversation", "items")
    return _query(url, ConversationItems, "session", session_id, limit=limit, min_version=min_version, wait_ms=wait_ms)
