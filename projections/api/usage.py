"""GET /v1/stats/usage: tokens, cost, latency and errors of model calls, in total and per group.

Invariant: scoped to the caller's tenant (projections/read_models/usage.py); a bad filter is a
422 problem naming the parameter, never an empty answer that looks like no usage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from agentlog.edge.keys import Principal
from agentlog.edge.openapi import AUTHENTICATED, operation_id, problems, success
from eventstore.errors import ValidationProblemError
from eventstore.ids import ID_MAX_LENGTH, ID_PATTERN
from projections.api import answers, pagination
from projections.api.deps import BIGINT_MAX, Reads, principal, reads
from projections.read_models import usage
from projections.read_models.usage import GroupBy

router = APIRouter(tags=["stats"], responses=problems(*AUTHENTICATED), generate_unique_id_function=operation_id)
Filter = Annotated[str | None, Query(max_length=200, pattern=pagination.NO_NUL)]


@router.get(
    "/v1/stats/usage",
    response_model=None,
    responses={**success(200, answers.UsageReport, "sums over the matching model calls"), **problems(422, 504)},
)
async def usage_stats(
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    session: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)] = None,
    agent: Filter = None,
    model: Filter = None,
    since: Annotated[datetime | None, Query(description="calls recorded at or after this instant")] = None,
    until: Annotated[datetime | None, Query(description="calls recorded before this instant")] = None,
    group_by: Annotated[GroupBy | None, Query(description="one group per agent, model, UTC day or session")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="most groups returned")] = 1000,
    min_position: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="wait until the event at this position is projected")
    ] = None,
    wait_ms: Annotated[int | None, Query(ge=0, le=30_000)] = None,
) -> dict[str, Any]:
    """Input, output and cached tokens, cost (as priced when each call was recorded), latency and
    errors of the tenant's model calls; a fork counts only its own calls."""
    since = pagination.instant(since, "query.since")
    until = pagination.instant(until, "query.until")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise _refused(f"query.{name}", "must have a time-zone offset")
    if since is not None and until is not None and since >= until:
        raise _refused("query.until", "must be later than since")
    await r.wait(who.tenant, None, None, min_position, wait_ms)
    async with r.pool.acquire() as conn:
        return await usage.usage(
            conn,
            who.tenant,
            session_id=session,
            agent=agent,
            model=model,
            since=since,
            until=until,
            group_by=group_by,
            limit=limit,
        )


def _refused(field: str, reason: str) -> ValidationProblemError:
    return ValidationProblemError("the request is not valid", errors=[{"field": field, "reason": reason}])
