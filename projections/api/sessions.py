"""The /v1/sessions router of the query API: summaries, state, timeline, tool calls, audit.

Invariant: every answer about one session first resolves it for the caller's tenant (404 for an
unknown or another tenant's session, after any read-your-writes wait), and carries the session's
id, status and version (the last version projected).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from agentlog.edge.keys import Principal
from agentlog.edge.openapi import AUTHENTICATED, operation_id, problems, success
from agentlog.edge.responses import FastJSONResponse
from eventstore.errors import SessionNotFoundError
from projections.api import answers, pagination, timetravel
from projections.api.deps import BIGINT_MAX, MinPosition, MinVersion, Reads, SessionId, WaitMs, principal, reads
from projections.read_models import session_state, summaries, timeline, tool_calls, usage

# Every read may wait for its writes (504 when they are not projected in time) and refuse a parameter.
router = APIRouter(
    prefix="/v1/sessions",
    tags=["sessions"],
    responses=problems(422, 504, *AUTHENTICATED),
    generate_unique_id_function=operation_id,
)
ONE_SESSION = problems(404)  # unknown, or another tenant's


Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]
Status = Literal["open", "completed", "failed", "cancelled", "unknown"]
# Free text filters compared with Postgres text, which refuses a NUL: a 422, not a failed query.
Filter = Annotated[str | None, Query(max_length=200, pattern=pagination.NO_NUL)]


async def _session(
    reads: Reads, tenant: str, session_id: str, min_version: int | None, min_position: int | None, wait_ms: int | None
) -> dict[str, Any]:
    await reads.wait(tenant, session_id, min_version, min_position, wait_ms)
    async with reads.pool.acquire() as conn:
        row = await summaries.get_session(conn, reads.projector, tenant, session_id)
    if row is None:
        raise SessionNotFoundError(f"no session {session_id}", session_id=session_id)
    return summaries.session_item(row)


async def _with_usage(reads: Reads, tenant: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summaries with their sessions' model usage and budget (the usage read model)."""
    if not items:
        return items
    async with reads.pool.acquire() as conn:
        found = await usage.of_sessions(conn, tenant, [item["session_id"] for item in items])
    for item in items:
        item["usage"], item["budget"] = found[item["session_id"]]
    return items


def _head(session: dict[str, Any]) -> dict[str, Any]:
    return {k: session[k] for k in ("session_id", "status", "version", "has_parked_events")}


@router.get("", response_model=None, responses=success(200, answers.SessionPage, "a page of sessions"))
async def list_sessions(
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    status: Status | None = None,
    workflow: Filter = None,
    agent: Filter = None,
    updated_since: datetime | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200, pattern=pagination.NO_NUL, description="a substring of the session id or title (any case)"
        ),
    ] = None,
    order: Literal["desc", "asc"] = "desc",
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    """Sessions newest-updated first (`order=asc` with `updated_since` to sync changes)."""
    updated_since = pagination.instant(updated_since, "query.updated_since")
    key = pagination.decode(cursor, "sessions:" + order, (str, str))
    after = None if key is None else (pagination.instant(key[0], pagination.CURSOR), key[1])
    await r.wait(who.tenant, None, None, min_position, wait_ms)
    async with r.pool.acquire() as conn:
        rows = await summaries.list_sessions(
            conn,
            r.projector,
            who.tenant,
            status=status,
            workflow=workflow,
            agent=agent,
            updated_since=updated_since,
            after=after,
            order=order,
            limit=limit + 1,
            search=q,
        )
    items = await _with_usage(r, who.tenant, [summaries.session_item(row) for row in rows[:limit]])
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = pagination.encode("sessions:" + order, last["updated_at"].isoformat(), last["session_id"])
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{session_id}",
    response_model=None,
    responses={**success(200, answers.Session, "the session's summary"), **ONE_SESSION},
)
async def get_session(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    min_version: MinVersion = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    """The summary, with the usage of the session's own model calls and its budget: `budget.exceeded`
    is the flag an orchestrator polls (or waits for with ?min_version= the model call's answer)."""
    session = await _session(r, who.tenant, session_id, min_version, min_position, wait_ms)
    return (await _with_usage(r, who.tenant, [session]))[0]


@router.get(
    "/{session_id}/state",
    response_model=None,
    responses={
        **success(200, answers.SessionState | answers.StateAt, "the state sections; with at_version, the replay"),
        **ONE_SESSION,
    },
)
async def get_state(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    min_version: MinVersion = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
    at_version: Annotated[
        int | None,
        Query(ge=1, le=BIGINT_MAX, description="the state replayed at this version (projections/api/timetravel.py)"),
    ] = None,
) -> dict[str, Any] | FastJSONResponse:
    if at_version is not None:
        return await timetravel.state_at(r, who.tenant, session_id, at_version)
    session = await _session(r, who.tenant, session_id, min_version, min_position, wait_ms)
    async with r.pool.acquire() as conn:
        rows = await session_state.sections(conn, who.tenant, session_id)
    sections = {row["section"]: {k: v for k, v in row.items() if k != "section"} for row in rows}
    return {**_head(session), "sections": sections}


async def _page(
    r: Reads, who: Principal, session_id: str, kind: str, cursor: str | None, limit: int, fetch, key: str, waits: tuple
) -> dict[str, Any]:
    after = pagination.decode(cursor, kind, (int,))
    session = await _session(r, who.tenant, session_id, *waits)
    async with r.pool.acquire() as conn:
        rows = await fetch(conn, after[0] if after else 0, limit + 1)
    items = [dict(row) for row in rows[:limit]]
    next_cursor = pagination.encode(kind, items[-1][key] or 0) if len(rows) > limit else None
    return {**_head(session), "items": items, "next_cursor": next_cursor}


@router.get(
    "/{session_id}/timeline",
    response_model=None,
    responses={**success(200, answers.Timeline, "a page of the session's events, oldest first"), **ONE_SESSION},
)
async def get_timeline(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    limit: Limit = 100,
    cursor: Cursor = None,
    min_version: MinVersion = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    async def fetch(conn, after, n):
        return await timeline.entries(conn, who.tenant, session_id, after, n)

    return await _page(
        r, who, session_id, "timeline", cursor, limit, fetch, "version", (min_version, min_position, wait_ms)
    )


@router.get(
    "/{session_id}/tool-calls",
    response_model=None,
    responses={**success(200, answers.ToolCalls, "a page of the session's tool calls"), **ONE_SESSION},
)
async def get_tool_calls(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    status: Literal["requested", "completed", "failed"] | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_version: MinVersion = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    async def fetch(conn, after, n):
        return await tool_calls.calls(conn, who.tenant, session_id, status, after, n)

    return await _page(
        r,
        who,
        session_id,
        "tool-calls",
        cursor,
        limit,
        fetch,
        "requested_version",
        (min_version, min_position, wait_ms),
    )


@router.get(
    "/{session_id}/audit",
    response_model=None,
    responses={**success(200, answers.Audit, "a page of the session's state changes"), **ONE_SESSION},
)
async def get_audit(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    section: Filter = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_version: MinVersion = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    async def fetch(conn, after, n):
        return await session_state.audit(conn, who.tenant, session_id, section, after, n)

    return await _page(
        r, who, session_id, "audit", cursor, limit, fetch, "version", (min_version, min_position, wait_ms)
    )
