"""An agent SDK's conversation memory on the query API: the live items of a session, oldest
first, for agentlog.integrations.openai_agents's Session and for people.

Invariant: the items and the `version` of one answer come from one snapshot of the database
(a repeatable-read transaction), so `version` is exactly the session version these items
reflect: a pop sent with `If-Match: "<version>"` removes the item read, or is a 409 when
anything was written since.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from agentlog.edge.keys import Principal
from agentlog.edge.openapi import AUTHENTICATED, operation_id, problems, success
from eventstore.errors import SessionNotFoundError
from projections.api import answers
from projections.api.deps import MinPosition, MinVersion, Reads, SessionId, WaitMs, principal, reads
from projections.read_models import conversation_items, summaries

router = APIRouter(
    prefix="/v1/sessions",
    tags=["conversation"],
    responses=problems(404, 422, 504, *AUTHENTICATED),
    generate_unique_id_function=operation_id,
)


@router.get(
    "/{session_id}/conversation/items",
    response_model=None,
    responses=success(200, answers.ConversationItems, "the live items, oldest first"),
)
async def get_conversation_items(
    session_id: SessionId,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    limit: Annotated[int | None, Query(ge=1, le=100_000, description="the latest this many (default: all)")] = None,
    min_version: MinVersion = None,
    min_position: MinPosition = None,
    wait_ms: WaitMs = None,
) -> dict[str, Any]:
    """The items not popped or cleared, oldest first (with `limit`, the latest ones)."""
    await r.wait(who.tenant, session_id, min_version, min_position, wait_ms)
    async with r.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        session = await summaries.get_session(conn, r.projector, who.tenant, session_id)
        if session is None:
            raise SessionNotFoundError(f"no session {session_id}", session_id=session_id)
        rows = await conversation_items.live_items(conn, who.tenant, session_id, limit)
        total = await conversation_items.live_count(conn, who.tenant, session_id)
    items = [{"index": row["idx"], **{k: v for k, v in row.items() if k != "idx"}} for row in rows]
    head = {k: session[k] for k in ("session_id", "status", "version", "has_parked_events")}
    return {**head, "total": total, "items": items}
