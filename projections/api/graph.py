"""LangGraph threads on the query API: checkpoints with channel values and pending writes, for
agentlog.integrations.langgraph's saver (get_tuple, list) and for people.

Invariants: a thread is a session, read for the caller's tenant (404 for an unknown session,
after any read-your-writes wait). With `min_version`, the answer waits until the thread is
projected up to it and, for a copied thread, until each session it inherits from is projected
up to the version it was copied at, so a copy reads complete at once. Channel values and
writes come as stored values: `{"kind": "json", "value": ...}` for JSON (shown as it is),
`{"kind": "bytes", "type": ..., "base64": ...}` for what the saver's serializer made, `{"kind":
"empty"}`. Newest first; `before` pages on (LangGraph's own cursor).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query

from agentlog.edge.keys import Principal
from agentlog.edge.openapi import AUTHENTICATED, operation_id, problems, success
from eventstore.errors import SessionNotFoundError, ValidationProblemError
from projections.api import answers, pagination
from projections.api.deps import BIGINT_MAX, MinPosition, Reads, SessionId, WaitMs, principal, reads
from projections.read_models import graph_checkpoints, summaries

# Every read may wait for its writes (504 when they are not projected in time) and refuse a parameter.
router = APIRouter(
    tags=["langgraph"], responses=problems(422, 504, *AUTHENTICATED), generate_unique_id_function=operation_id
)

# Bounds that keep a request line within what HTTP servers take (a character may travel as 12
# bytes once percent-encoded): namespaces as long as a command takes them, ids of a uuid's size
# with room to spare, a metadata filter of a few keys.
Namespace = Annotated[
    str | None, Query(max_length=1024, pattern=pagination.NO_NUL, description="one namespace (default: all)")
]
Key = Annotated[str | None, Query(max_length=256, pattern=pagination.NO_NUL)]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many checkpoints")]
Metadata = Annotated[
    str | None,
    Query(max_length=2048, description='a JSON object: checkpoints whose metadata contains it (e.g. {"step": 1})'),
]
MinVersion = Annotated[
    int | None, Query(ge=1, le=BIGINT_MAX, description="wait until this thread is projected up to this version")
]


def _metadata_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or "\\u0000" in text or "\x00" in text:
        raise ValidationProblemError(
            "metadata must be a JSON object", errors=[{"field": "query.metadata", "reason": "must be a JSON object"}]
        )
    return value


def _stored_json(value: Any) -> dict[str, Any]:
    return {"kind": "json", "value": value, "type": None, "base64": None}


def checkpoint_item(row: Any) -> dict[str, Any]:
    """One checkpoint as the API shows it: its channel values merged back (the JSON scalars kept
    inline in the checkpoint and the stored values of the other channels)."""
    checkpoint = dict(row["checkpoint"])
    values = {channel: _stored_json(v) for channel, v in (checkpoint.get("channel_values") or {}).items()}
    values.update(row["blobs"] or {})
    checkpoint["channel_values"] = values
    return {
        "thread_id": row["thread_id"],
        "checkpoint_ns": row["checkpoint_ns"],
        "checkpoint_id": row["checkpoint_id"],
        "parent_checkpoint_id": row["parent_checkpoint_id"],
        "checkpoint": checkpoint,
        "metadata": row["metadata"],
        "pending_writes": row["pending_writes"] or [],
        "session_id": row["root"],
        "recorded_in": {"session_id": row["session_id"], "version": row["version"]},
        "recorded_at": row["recorded_at"],
    }


async def _wait_for_lineage(r: Reads, tenant: str, session_id: str, wait_ms: int | None, started: float) -> None:
    """Wait until the sessions a copied thread inherits from are projected up to their cuts,
    within what is left of the request's wait."""
    async with r.pool.acquire() as conn:
        ancestors = await graph_checkpoints.ancestors(conn, tenant, session_id)
    budget_ms = min(r.settings.default_wait_ms if wait_ms is None else wait_ms, r.settings.max_wait_ms)
    for ancestor in ancestors:
        left_ms = max(0, int(budget_ms - (time.monotonic() - started) * 1000))
        await r.wait(tenant, ancestor["session_id"], ancestor["upto"], None, left_ms)


@router.get(
    "/v1/sessions/{session_id}/graph/checkpoints",
    response_model=None,
    responses={**success(200, answers.GraphCheckpoints, "the thread's checkpoints, newest first"), **problems(404)},
)
async def get_thread_checkpoints(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    checkpoint_ns: Namespace = None,
    checkpoint_id: Key = None,
    before: Annotated[
        str | None, Query(max_length=256, pattern=pagination.NO_NUL, description="only checkpoint ids below this")
    ] = None,
    metadata: Metadata = None,
    limit: Limit = 100,
    min_version: MinVersion = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    """A thread's checkpoints (its own and, for a copy, its source's up to the copy), newest first."""
    started = time.monotonic()
    wanted = _metadata_filter(metadata)
    await r.wait(who.tenant, session_id, min_version, min_position, wait_ms)
    if min_version is not None:
        await _wait_for_lineage(r, who.tenant, session_id, wait_ms, started)
    async with r.pool.acquire() as conn:
        session = await summaries.get_session(conn, r.projector, who.tenant, session_id)
        if session is None:
            raise SessionNotFoundError(f"no session {session_id}", session_id=session_id)
        rows = await graph_checkpoints.checkpoints(
            conn,
            who.tenant,
            session_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            before=before,
            metadata=wanted,
            limit=limit,
        )
    head = {k: session[k] for k in ("session_id", "status", "version", "has_parked_events")}
    return {**head, "items": [checkpoint_item(row) for row in rows]}


@router.get(
    "/v1/graph/checkpoints",
    response_model=None,
    responses=success(200, answers.TenantGraphCheckpoints, "checkpoints of every thread, newest first"),
)
async def get_checkpoints(
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    checkpoint_ns: Namespace = None,
    checkpoint_id: Key = None,
    before: Key = None,
    metadata: Metadata = None,
    limit: Limit = 100,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    """Checkpoints of every thread of the tenant, newest first (LangGraph's `list(None, ...)`)."""
    wanted = _metadata_filter(metadata)
    await r.wait(who.tenant, None, None, min_position, wait_ms)
    async with r.pool.acquire() as conn:
        rows = await graph_checkpoints.checkpoints(
            conn,
            who.tenant,
            None,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            before=before,
            metadata=wanted,
            limit=limit,
        )
    return {"items": [checkpoint_item(row) for row in rows]}
