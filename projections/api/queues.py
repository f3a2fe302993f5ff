"""Cross-session views of the query API: the approvals queue and tool statistics.

Invariant: both are scoped to the caller's tenant; 'expired' is a pending approval past its expiry.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from agentlog.edge.keys import Principal
from agentlog.edge.openapi import AUTHENTICATED, operation_id, problems, success
from projections.api import answers, pagination
from projections.api.deps import BIGINT_MAX, Reads, principal, reads
from projections.read_models import approvals, tool_calls

router = APIRouter(tags=["queues"], responses=problems(*AUTHENTICATED), generate_unique_id_function=operation_id)


@router.get(
    "/v1/approvals",
    response_model=None,
    responses={**success(200, answers.Approvals, "a page of approval requests"), **problems(422, 504)},
)
async def list_approvals(
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    status: Literal["pending", "approved", "rejected", "expired"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    min_position: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    wait_ms: Annotated[int | None, Query(ge=0, le=30_000)] = None,
) -> dict[str, Any]:
    """Approval requests oldest first; `?status=pending` is the reviewers' queue."""
    after = pagination.decode(cursor, "approvals", (int,))
    await r.wait(who.tenant, None, None, min_position, wait_ms)
    async with r.pool.acquire() as conn:
        rows = await approvals.queue(conn, who.tenant, status, after[0] if after else 0, limit + 1)
    items = [dict(row) for row in rows[:limit]]
    next_cursor = pagination.encode("approvals", items[-1]["requested_position"]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/v1/stats/tools", response_model=None, responses=success(200, answers.ToolStats, "per tool"))
async def tool_stats(
    who: Annotated[Principal, Depends(principal)], r: Annotated[Reads, Depends(reads)]
) -> dict[str, Any]:
    """Per tool: calls, completions, failures, failure rate, total and average duration."""
    async with r.pool.acquire() as conn:
        rows = await tool_calls.stats(conn, who.tenant)
    items = [{**dict(row), "failure_rate": (row["failures"] / row["calls"]) if row["calls"] else None} for row in rows]
    return {"items": items, "next_cursor": None}
