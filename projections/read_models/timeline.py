"""Session timeline (session_timeline_v1): one row per event with its version, type, a one-line
human summary, the agent involved and when it was recorded.

Invariant: the row of (tenant, session, version) is written once and never changed (insert or
nothing), so a duplicate delivery or a late retry leaves the timeline identical.
"""

from __future__ import annotations

import asyncpg

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import Projection, Write

TABLE = "session_timeline_v1"
SUMMARY_LIMIT = 200

INSERT = f"""
INSERT INTO {TABLE} (tenant, session_id, version, position, type, summary, agent, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant, session_id, version) DO NOTHING
"""


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def summary_of(event: ev.Event) -> str:
    """A one-line description of an event for people scanning a session (pure)."""
    match event:
        case ev.SessionStarted():
            return f"session started: {event.title or event.workflow or 'untitled'}"
        case ev.SessionForked():
            return f"forked from {event.source_session_id} at version {event.source_version}"
        case ev.MessageAdded():
            return f"{event.agent or event.role}: {event.content}"
        case ev.ToolCallRequested():
            return f"tool call {event.call_id} requested: {event.tool}"
        case ev.ToolCallCompleted():
            took = f" in {event.duration_ms} ms" if event.duration_ms is not None else ""
            return f"tool call {event.call_id} completed{took}"
        case ev.ToolCallFailed():
            return f"tool call {event.call_id} failed: {event.error}"
        case ev.StateSectionUpdated():
            return f"{event.agent} updated {event.section}: {', '.join(sorted(event.changes)) or '-'}"
        case ev.CheckpointSaved():
            step = f" (step {event.step})" if event.step is not None else ""
            return f"checkpoint {event.name}{step}"
        case ev.ApprovalRequested():
            return f"approval {event.approval_id} requested ({event.risk}): {event.action}"
        case ev.ApprovalDecided():
            return f"approval {event.approval_id} {event.decision} by {event.reviewer}"
        case ev.ErrorRecorded():
            return f"error{f' [{event.kind}]' if event.kind else ''}: {event.message}"
        case ev.CompensationRecorded():
            return f"compensated {event.step}{f': {event.reason}' if event.reason else ''}"
        case ev.SessionCompleted():
            return f"completed{f': {event.outcome}' if event.outcome else ''}"
        case ev.SessionFailed():
            return f"failed: {event.reason}"
        case ev.SessionCancelled():
            return f"cancelled{f': {event.reason}' if event.reason else ''}"
        case _:
            return type(event).TYPE


def agent_of(event: ev.Event) -> str | None:
    for attribute in ("agent", "requested_by", "reviewer", "by", "started_by"):
        value = getattr(event, attribute, None)
        if value:
            return value
    return None


def on_event(recorded: RecordedEvent, event: ev.Event) -> list[Write]:
    return [Write(INSERT, (
        recorded.tenant, recorded.session_id, recorded.version, recorded.position, recorded.type,
        _clip(summary_of(event)), agent_of(event), recorded.recorded_at,
    ))]


PROJECTION = Projection(
    name="session_timeline",
    tables=(TABLE,),
    handlers={cls: on_event for cls in ev.ALL_EVENT_CLASSES},
    description="one row per event: version, type, summary, agent, recorded at",
)


# Queries of the query API. Every statement filters by the caller's tenant first: the tenant is a
# bound parameter taken from the API key, never from the request, so no filter, cursor or path can
# reach another tenant's rows.
async def entries(conn, tenant: str, session_id: str, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT version, position, type, summary, agent, recorded_at FROM {TABLE} "
        "WHERE tenant = $1 AND session_id = $2 AND version > $3 ORDER BY version LIMIT $4",
        tenant, session_id, after, limit)
