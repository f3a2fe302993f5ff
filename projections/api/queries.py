"""Read-side SQL of the query API: every statement filters by the caller's tenant first.

Invariant: the tenant is a bound parameter taken from the API key, never from the request, so no
filter, cursor or path can reach another tenant's rows; a session's `version` is what the
projector processed for it (projection_session_versions), the number read-your-writes waits on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from projections.read_models import approvals
SESSION_COLUMNS = """
s.session_id, s.status, COALESCE(v.version, s.last_version) AS version, s.workflow, s.title,
s.agents, s.forked_from, s.forked_from_version, s.last_checkpoint, s.last_step, s.outcome,
s.message_count, s.tool_call_count, s.tool_failure_count, s.error_count, s.created_at,
s.updated_at, s.last_position, s.has_parked_events
"""
SESSION_FROM = """
FROM session_summaries_v1 s LEFT JOIN projection_session_versions v
  ON v.projector = $1 AND v.tenant = s.tenant AND v.session_id = s.session_id
"""
LIST_FILTERS = """
WHERE s.tenant = $2 AND ($3::text IS NULL OR s.status = $3) AND ($4::text IS NULL OR s.workflow = $4)
  AND ($5::text IS NULL OR s.agents @> ARRAY[$5::text]) AND ($6::timestamptz IS NULL OR s.updated_at >= $6)
"""
LIST_SESSIONS = {
    "desc": f"SELECT {SESSION_COLUMNS} {SESSION_FROM} {LIST_FILTERS} AND ($7::timestamptz IS NULL OR "
            "(s.updated_at, s.session_id) < ($7, $8)) ORDER BY s.updated_at DESC, s.session_id DESC LIMIT $9",
    "asc": f"SELECT {SESSION_COLUMNS} {SESSION_FROM} {LIST_FILTERS} AND ($7::timestamptz IS NULL OR "
           "(s.updated_at, s.session_id) > ($7, $8)) ORDER BY s.updated_at, s.session_id LIMIT $9",
}
GET_SESSION = f"SELECT {SESSION_COLUMNS} {SESSION_FROM} WHERE s.tenant = $2 AND s.session_id = $3"


def session_item(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item["counts"] = {"messages": item.pop("message_count"), "tool_calls": item.pop("tool_call_count"),
                      "tool_failures": item.pop("tool_failure_count"), "errors": item.pop("error_count")}
    return item


async def list_sessions(conn, projector: str, tenant: str, *, status=None, workflow=None, agent=None,
                        updated_since=None, after: tuple[datetime, str] | None = None,
                        order: str = "desc", limit: int = 50) -> list[asyncpg.Record]:
    after_at, after_id = after or (None, None)
    return await conn.fetch(LIST_SESSIONS[order], projector, tenant, status, workflow, agent,
                            updated_since, after_at, after_id, limit)


async def get_session(conn, projector: str, tenant: str, session_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_SESSION, projector, tenant, session_id)


async def state_sections(conn, tenant: str, session_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT section, value, owner, last_agent, version, updated_at FROM session_state_v1 "
        "WHERE tenant = $1 AND session_id = $2 ORDER BY section", tenant, session_id)


async def timeline(conn, tenant: str, session_id: str, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT version, position, type, summary, agent, recorded_at FROM session_timeline_v1 "
        "WHERE tenant = $1 AND session_id = $2 AND version > $3 ORDER BY version LIMIT $4",
        tenant, session_id, after, limit)


async def tool_calls(conn, tenant: str, session_id: str, status: str | None, after: int,
                     limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT call_id, tool, agent, arguments, status, requested_version, requested_at, finished_at, "
        "duration_ms, error FROM tool_calls_v1 WHERE tenant = $1 AND session_id = $2 "
        "AND ($3::text IS NULL OR status = $3) AND COALESCE(requested_version, 0) > $4 "
        "ORDER BY requested_version NULLS FIRST, call_id LIMIT $5",
        tenant, session_id, status, after, limit)


async def audit(conn, tenant: str, session_id: str, section: str | None, after: int,
                limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT version, section, agent, patch, old_value, new_value, recorded_at FROM state_audit_v1 "
        "WHERE tenant = $1 AND session_id = $2 AND ($3::text IS NULL OR section = $3) AND version > $4 "
        "ORDER BY version, section LIMIT $5", tenant, session_id, section, after, limit)


async def approval_queue(conn, tenant: str, status: str | None, after: int, limit: int) -> list[asyncpg.Record]:
    shown = approvals.SHOWN_STATUS
    return await conn.fetch(
        f"SELECT session_id, approval_id, action, risk, requested_by, details, expires_at, {shown} AS status, "
        "reviewer, comment, decided_at, requested_at, requested_position FROM approvals_v1 "
        f"WHERE tenant = $1 AND ($2::text IS NULL OR {shown} = $2) AND requested_position > $3 "
        "ORDER BY requested_position LIMIT $4", tenant, status, after, limit)


async def tool_stats(conn, tenant: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT tool, calls, completed, failures, total_duration_ms, "
        "CASE WHEN timed_calls > 0 THEN total_duration_ms::float8 / timed_calls END AS avg_duration_ms "
        "FROM tool_stats_v1 WHERE tenant = $1 ORDER BY tool", tenant)
