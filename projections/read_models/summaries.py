"""Session summaries (session_summaries_v1): one row per (tenant, session) with status, workflow,
title, agents, last checkpoint/step, counts, timestamps and the last version projected.

Invariant: every event of a session changes its row through one upsert statement whose effect
does not depend on what was applied before except through monotonic fields (counts add, versions
and timestamps only grow, a start event sets the status only while it is still 'unknown'), so a
parked event retried late never rolls back what later events set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import BULK, Bulk, Projection, Write

TABLE = "session_summaries_v1"
CLOSED = {ev.SessionCompleted: "completed", ev.SessionFailed: "failed", ev.SessionCancelled: "cancelled"}

UPSERT = f"""
INSERT INTO {TABLE} AS s (tenant, session_id, status, workflow, title, agents, forked_from,
    forked_from_version, last_checkpoint, last_step, outcome, message_count, tool_call_count,
    tool_failure_count, error_count, created_at, updated_at, last_version, last_position)
VALUES ($1, $2, COALESCE($3, 'unknown'), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
    $17, $17, $18, $19)
ON CONFLICT (tenant, session_id) DO UPDATE SET
    status = CASE WHEN $3 IS NULL THEN s.status
                  WHEN $4 AND s.status <> 'unknown' THEN s.status ELSE $3 END,
    workflow = COALESCE($5, s.workflow),
    title = COALESCE($6, s.title),
    agents = CASE WHEN $7::text[] <@ s.agents THEN s.agents  -- the usual case: no new agent
                  ELSE ARRAY(SELECT a FROM unnest(s.agents || $7::text[]) WITH ORDINALITY AS t(a, i)
                             GROUP BY a ORDER BY min(i)) END,
    forked_from = COALESCE($8, s.forked_from),
    forked_from_version = COALESCE($9, s.forked_from_version),
    last_checkpoint = CASE WHEN $10 IS NOT NULL AND $18 >= s.last_version THEN $10
                           ELSE s.last_checkpoint END,
    last_step = CASE WHEN $10 IS NOT NULL AND $18 >= s.last_version THEN $11 ELSE s.last_step END,
    outcome = COALESCE($12, s.outcome),
    message_count = s.message_count + $13,
    tool_call_count = s.tool_call_count + $14,
    tool_failure_count = s.tool_failure_count + $15,
    error_count = s.error_count + $16,
    created_at = CASE WHEN $4 THEN $17 ELSE LEAST(s.created_at, $17) END,
    updated_at = GREATEST(s.updated_at, $17),
    last_version = GREATEST(s.last_version, $18),
    last_position = GREATEST(s.last_position, $19)
"""

# The UPSERT of a run of events as one statement (projections/read_models/projection.py Bulk):
# the same arguments as columns, each row's change exactly as UPSERT makes it. MERGE, because an
# ON CONFLICT update sees only the inserted row (EXCLUDED), which cannot say "no status" ($3 NULL)
# or "a start event" ($4). Rows in rounds (key: tenant, session), so no row is changed twice in
# one statement. A new row inserted meanwhile by another transaction would fail the statement,
# not be missed: the batch is then applied again event by event with UPSERT. The agents of each
# row come as a JSON array (an array cannot hold one list per row).
BULK[UPSERT] = Bulk(
    f"""
MERGE INTO {TABLE} AS s
USING (
    SELECT u.tenant, u.session_id, u.status, u.is_start, u.workflow, u.title,
           ARRAY(SELECT jsonb_array_elements_text(u.agents::jsonb)) AS agents, u.forked_from,
           u.forked_from_version, u.checkpoint, u.step, u.outcome, u.messages, u.tool_calls,
           u.tool_failures, u.errors, u.at, u.version, u.position
      FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[], $6::text[], $7::text[],
                  $8::text[], $9::bigint[], $10::text[], $11::integer[], $12::text[], $13::integer[],
                  $14::integer[], $15::integer[], $16::integer[], $17::timestamptz[], $18::bigint[],
                  $19::bigint[])
        AS u(tenant, session_id, status, is_start, workflow, title, agents, forked_from,
             forked_from_version, checkpoint, step, outcome, messages, tool_calls, tool_failures,
             errors, at, version, position)
) AS u
ON s.tenant = u.tenant AND s.session_id = u.session_id
WHEN MATCHED THEN UPDATE SET
    status = CASE WHEN u.status IS NULL THEN s.status
                  WHEN u.is_start AND s.status <> 'unknown' THEN s.status ELSE u.status END,
    workflow = COALESCE(u.workflow, s.workflow),
    title = COALESCE(u.title, s.title),
    agents = CASE WHEN u.agents <@ s.agents THEN s.agents
                  ELSE ARRAY(SELECT a FROM unnest(s.agents || u.agents) WITH ORDINALITY AS t(a, i)
                             GROUP BY a ORDER BY min(i)) END,
    forked_from = COALESCE(u.forked_from, s.forked_from),
    forked_from_version = COALESCE(u.forked_from_version, s.forked_from_version),
    last_checkpoint = CASE WHEN u.checkpoint IS NOT NULL AND u.version >= s.last_version THEN u.checkpoint
                           ELSE s.last_checkpoint END,
    last_step = CASE WHEN u.checkpoint IS NOT NULL AND u.version >= s.last_version THEN u.step
                     ELSE s.last_step END,
    outcome = COALESCE(u.outcome, s.outcome),
    message_count = s.message_count + u.messages,
    tool_call_count = s.tool_call_count + u.tool_calls,
    tool_failure_count = s.tool_failure_count + u.tool_failures,
    error_count = s.error_count + u.errors,
    created_at = CASE WHEN u.is_start THEN u.at ELSE LEAST(s.created_at, u.at) END,
    updated_at = GREATEST(s.updated_at, u.at),
    last_version = GREATEST(s.last_version, u.version),
    last_position = GREATEST(s.last_position, u.position)
WHEN NOT MATCHED THEN INSERT (tenant, session_id, status, workflow, title, agents, forked_from,
    forked_from_version, last_checkpoint, last_step, outcome, message_count, tool_call_count,
    tool_failure_count, error_count, created_at, updated_at, last_version, last_position)
VALUES (u.tenant, u.session_id, COALESCE(u.status, 'unknown'), u.workflow, u.title, u.agents, u.forked_from,
    u.forked_from_version, u.checkpoint, u.step, u.outcome, u.messages, u.tool_calls, u.tool_failures,
    u.errors, u.at, u.at, u.version, u.position)
""",
    key=(0, 1),
    adapt={6: lambda column: [orjson.dumps(agents).decode() for agents in column]},
)

MARK_PARKED = f"""
INSERT INTO {TABLE} AS s (tenant, session_id, status, created_at, updated_at, has_parked_events)
VALUES ($1, $2, 'unknown', $3, $3, $4)
ON CONFLICT (tenant, session_id) DO UPDATE SET has_parked_events = $4
"""


@dataclass(frozen=True, slots=True)
class SummaryChange:
    """What one event changes in its session's summary (None = unchanged, counts are deltas)."""

    status: str | None = None
    is_start: bool = False
    workflow: str | None = None
    title: str | None = None
    agents: tuple[str, ...] = ()
    forked_from: str | None = None
    forked_from_version: int | None = None
    checkpoint: str | None = None
    step: int | None = None
    outcome: str | None = None
    messages: int = 0
    tool_calls: int = 0
    tool_failures: int = 0
    errors: int = 0


def change_for(event: ev.Event) -> SummaryChange:
    """The summary change of one decoded event (pure: the given/when/then unit tests use it)."""
    agent = getattr(event, "agent", None)
    agents = (agent,) if agent else ()
    match event:
        case ev.SessionStarted():
            return SummaryChange(
                status="open", is_start=True, workflow=event.workflow, title=event.title, agents=tuple(event.agents)
            )
        case ev.SessionForked():
            # A fork continues from the source's state (eventstore.state folds it so): it starts
            # with the source's counts and last checkpoint, not from zero.
            snap = event.state
            counts = snap.get("counts") or {}
            checkpoint = snap.get("last_checkpoint") or {}
            return SummaryChange(
                status="open",
                is_start=True,
                workflow=snap.get("workflow"),
                agents=tuple(snap.get("agents") or ()),
                forked_from=event.source_session_id,
                forked_from_version=event.source_version,
                checkpoint=checkpoint.get("name"),
                step=checkpoint.get("step"),
                messages=counts.get("messages", 0),
                tool_calls=counts.get("tool_calls", 0),
                errors=counts.get("errors", 0),
            )
        case ev.MessageAdded():
            return SummaryChange(messages=1, agents=agents)
        case ev.ToolCallRequested():
            return SummaryChange(tool_calls=1, agents=agents)
        case ev.ToolCallFailed():
            return SummaryChange(tool_failures=1)
        case ev.ErrorRecorded():
            return SummaryChange(errors=1, agents=agents)
        case ev.CheckpointSaved():
            return SummaryChange(checkpoint=event.name, step=event.step)
        case ev.SessionCompleted():
            return SummaryChange(status="completed", outcome=event.outcome)
        case ev.SessionFailed() | ev.SessionCancelled():
            return SummaryChange(status=CLOSED[type(event)])
        case _:
            return SummaryChange(agents=agents)


def on_event(recorded: RecordedEvent, event: ev.Event) -> list[Write]:
    c = change_for(event)
    return [
        Write(
            UPSERT,
            (
                recorded.tenant,
                recorded.session_id,
                c.status,
                c.is_start,
                c.workflow,
                c.title,
                list(c.agents),
                c.forked_from,
                c.forked_from_version,
                c.checkpoint,
                c.step,
                c.outcome,
                c.messages,
                c.tool_calls,
                c.tool_failures,
                c.errors,
                recorded.recorded_at,
                recorded.version,
                recorded.position,
            ),
        )
    ]


def mark_parked(tenant: str, session_id: str, at: datetime, parked: bool = True) -> Write:
    """Flag (or unflag) a session whose rows may be behind because one of its events is parked."""
    return Write(MARK_PARKED, (tenant, session_id, at, parked))


PROJECTION = Projection(
    name="session_summaries",
    tables=(TABLE,),
    handlers={cls: on_event for cls in ev.ALL_EVENT_CLASSES},
    description="status, workflow, agents, last checkpoint, counts and timestamps per session",
)


# Queries of the query API. Every statement filters by the caller's tenant first: the tenant is a
# bound parameter taken from the API key, never from the request, so no filter, cursor or path can
# reach another tenant's rows.
# A session's `version` is what the projector processed for it (projection_session_versions),
# the number read-your-writes waits on.
SESSION_COLUMNS = """
s.session_id, s.status, COALESCE(v.version, s.last_version) AS version, s.workflow, s.title,
s.agents, s.forked_from, s.forked_from_version, s.last_checkpoint, s.last_step, s.outcome,
s.message_count, s.tool_call_count, s.tool_failure_count, s.error_count, s.created_at,
s.updated_at, s.last_position, s.has_parked_events
"""
SESSION_FROM = f"""
FROM {TABLE} s LEFT JOIN projection_session_versions v
  ON v.projector = $1 AND v.tenant = s.tenant AND v.session_id = s.session_id
"""
LIST_FILTERS = """
WHERE s.tenant = $2 AND ($3::text IS NULL OR s.status = $3) AND ($4::text IS NULL OR s.workflow = $4)
  AND ($5::text IS NULL OR s.agents @> ARRAY[$5::text]) AND ($6::timestamptz IS NULL OR s.updated_at >= $6)
  AND ($10::text IS NULL OR strpos(lower(s.session_id), $10) > 0 OR strpos(lower(COALESCE(s.title, '')), $10) > 0)
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
    item["counts"] = {
        "messages": item.pop("message_count"),
        "tool_calls": item.pop("tool_call_count"),
        "tool_failures": item.pop("tool_failure_count"),
        "errors": item.pop("error_count"),
    }
    return item


async def list_sessions(
    conn,
    projector: str,
    tenant: str,
    *,
    status=None,
    workflow=None,
    agent=None,
    updated_since=None,
    after: tuple[datetime, str] | None = None,
    order: str = "desc",
    limit: int = 50,
    search: str | None = None,
) -> list[asyncpg.Record]:
    """`search`: a case-insensitive substring of the session id or title (a scan of the tenant's
    sessions that pass the other filters; no index)."""
    after_at, after_id = after or (None, None)
    needle = search.lower() if search else None
    return await conn.fetch(
        LIST_SESSIONS[order],
        projector,
        tenant,
        status,
        workflow,
        agent,
        updated_since,
        after_at,
        after_id,
        limit,
        needle,
    )


async def get_session(conn, projector: str, tenant: str, session_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_SESSION, projector, tenant, session_id)


FORKS_OF = f"""
SELECT s.session_id, s.forked_from_version, s.status, s.created_at, s.updated_at, s.last_version
FROM {TABLE} s
WHERE s.tenant = $1 AND s.forked_from = $2 AND ($3::text IS NULL OR s.session_id > $3)
ORDER BY s.session_id LIMIT $4
"""


async def forks_of(conn, tenant: str, session_id: str, after: str | None, limit: int) -> list[asyncpg.Record]:
    """The sessions forked from `session_id` (GET /v1/sessions/{id}/forks), by session id."""
    return await conn.fetch(FORKS_OF, tenant, session_id, after, limit)
