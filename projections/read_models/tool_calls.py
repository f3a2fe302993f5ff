"""Tool calls (tool_calls_v1) and tool statistics (tool_stats_v1).

Invariant: a call's row is keyed by (tenant, session, call id); its status only moves forward
(requested -> completed|failed; a late `requested` never overwrites an outcome), and its duration
is the event's own duration or, when the tool did not report one, finished_at - requested_at.
Statistics add exactly once per event (the runner's version guard ensures once); they read the
tool name of a finished call from tool_calls_v1, which the runner applies first in each batch.
A fork's open calls (the source's, at the version forked) are requested rows of the fork from its
first event, with only their tool known; statistics count them where they were requested.
"""

from __future__ import annotations

import asyncpg

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import Projection, Write

CALLS = "tool_calls_v1"
STATS = "tool_stats_v1"

UPSERT_CALL = f"""
INSERT INTO {CALLS} AS t (tenant, session_id, call_id, tool, agent, arguments, status,
    requested_version, requested_at, finished_at, duration_ms, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (tenant, session_id, call_id) DO UPDATE SET
    tool = COALESCE(t.tool, $4),
    agent = COALESCE(t.agent, $5),
    arguments = COALESCE(t.arguments, $6),
    status = CASE WHEN $7 = 'requested' THEN t.status ELSE $7 END,
    requested_version = COALESCE(t.requested_version, $8),
    requested_at = COALESCE(t.requested_at, $9),
    finished_at = COALESCE($10, t.finished_at),
    duration_ms = COALESCE($11, t.duration_ms,
        (extract(epoch FROM COALESCE($10, t.finished_at) - COALESCE(t.requested_at, $9)) * 1000)::bigint),
    error = COALESCE($12, t.error)
"""

STATS_REQUESTED = f"""
INSERT INTO {STATS} AS s (tenant, tool, calls) VALUES ($1, $2, 1)
ON CONFLICT (tenant, tool) DO UPDATE SET calls = s.calls + 1
"""

STATS_FINISHED = f"""
INSERT INTO {STATS} AS s (tenant, tool, completed, failures, timed_calls, total_duration_ms)
SELECT c.tenant, c.tool, (NOT $4)::int, $4::int, (c.duration_ms IS NOT NULL)::int,
       COALESCE(c.duration_ms, 0)
FROM {CALLS} c
WHERE c.tenant = $1 AND c.session_id = $2 AND c.call_id = $3 AND c.tool IS NOT NULL
ON CONFLICT (tenant, tool) DO UPDATE SET
    completed = s.completed + EXCLUDED.completed,
    failures = s.failures + EXCLUDED.failures,
    timed_calls = s.timed_calls + EXCLUDED.timed_calls,
    total_duration_ms = s.total_duration_ms + EXCLUDED.total_duration_ms
"""


def _call(
    r: RecordedEvent,
    call_id: str,
    status: str,
    *,
    tool=None,
    agent=None,
    arguments=None,
    finished: bool = False,
    duration_ms=None,
    error=None,
) -> Write:
    requested = status == "requested"
    return Write(
        UPSERT_CALL,
        (
            r.tenant,
            r.session_id,
            call_id,
            tool,
            agent,
            arguments,
            status,
            r.version if requested else None,
            r.recorded_at if requested else None,
            r.recorded_at if finished else None,
            duration_ms,
            error,
        ),
    )


def on_requested(r: RecordedEvent, e: ev.ToolCallRequested) -> list[Write]:
    return [_call(r, e.call_id, "requested", tool=e.tool, agent=e.agent, arguments=e.arguments)]


def on_completed(r: RecordedEvent, e: ev.ToolCallCompleted) -> list[Write]:
    return [_call(r, e.call_id, "completed", finished=True, duration_ms=e.duration_ms)]


def on_failed(r: RecordedEvent, e: ev.ToolCallFailed) -> list[Write]:
    return [_call(r, e.call_id, "failed", finished=True, duration_ms=e.duration_ms, error=e.error)]


def on_forked(r: RecordedEvent, e: ev.SessionForked) -> list[Write]:
    # The calls the source had open are open in the fork too (its fold says so, and a result for
    # them is accepted there); the snapshot knows their tool, not their arguments or agent.
    open_calls = e.state.get("open_calls") or {}
    return [_call(r, call_id, "requested", tool=tool) for call_id, tool in sorted(open_calls.items())]


def stats_on_requested(r: RecordedEvent, e: ev.ToolCallRequested) -> list[Write]:
    return [Write(STATS_REQUESTED, (r.tenant, e.tool))]


def stats_on_finished(r: RecordedEvent, e: ev.ToolCallCompleted | ev.ToolCallFailed) -> list[Write]:
    return [Write(STATS_FINISHED, (r.tenant, r.session_id, e.call_id, isinstance(e, ev.ToolCallFailed)))]


CALLS_PROJECTION = Projection(
    name="tool_calls",
    tables=(CALLS,),
    handlers={
        ev.ToolCallRequested: on_requested,
        ev.ToolCallCompleted: on_completed,
        ev.ToolCallFailed: on_failed,
        ev.SessionForked: on_forked,
    },
    description="each tool call: tool, status, requested/finished at, duration, error",
)

STATS_PROJECTION = Projection(
    name="tool_stats",
    tables=(STATS,),
    handlers={
        ev.ToolCallRequested: stats_on_requested,
        ev.ToolCallCompleted: stats_on_finished,
        ev.ToolCallFailed: stats_on_finished,
    },
    description="per tenant and tool: calls, completions, failures, total and average duration",
)


# Queries of the query API. Every statement filters by the caller's tenant first: the tenant is a
# bound parameter taken from the API key, never from the request, so no filter, cursor or path can
# reach another tenant's rows.
async def calls(conn, tenant: str, session_id: str, status: str | None, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT call_id, tool, agent, arguments, status, requested_version, requested_at, finished_at, "
        f"duration_ms, error FROM {CALLS} WHERE tenant = $1 AND session_id = $2 "
        "AND ($3::text IS NULL OR status = $3) AND COALESCE(requested_version, 0) > $4 "
        "ORDER BY requested_version NULLS FIRST, call_id LIMIT $5",
        tenant,
        session_id,
        status,
        after,
        limit,
    )


async def stats(conn, tenant: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tool, calls, completed, failures, total_duration_ms, "
        "CASE WHEN timed_calls > 0 THEN total_duration_ms::float8 / timed_calls END AS avg_duration_ms "
        f"FROM {STATS} WHERE tenant = $1 ORDER BY tool",
        tenant,
    )
