"""Current session state (session_state_v1) and the state audit log (state_audit_v1).

Invariant: a section's value is the RFC 7396 merge of every StateSectionUpdated of that section in
version order (computed in SQL by agentlog_json_merge_patch, the same rule as
eventstore.merge_patch), starting from the fork snapshot for a forked session. Its owner is the
first writer, as in eventstore.state. The audit log keeps one row per change with the patch and the
old and new value; it derives the old value from its own previous row, so it never depends on the
state table and both can be parked or rebuilt independently.
"""

from __future__ import annotations

import asyncpg

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import Projection, Write

STATE = "session_state_v1"
AUDIT = "state_audit_v1"

UPSERT_SECTION = f"""
INSERT INTO {STATE} AS s (tenant, session_id, section, value, owner, last_agent, version, updated_at)
VALUES ($1, $2, $3, agentlog_json_merge_patch('{{}}'::jsonb, $4::jsonb), $5, $5, $6, $7)
ON CONFLICT (tenant, session_id, section) DO UPDATE SET
    value = agentlog_json_merge_patch(s.value, $4::jsonb),
    owner = COALESCE(s.owner, $5),
    last_agent = $5,
    version = GREATEST(s.version, $6),
    updated_at = GREATEST(s.updated_at, $7)
"""

FORK_SECTION = f"""
INSERT INTO {STATE} (tenant, session_id, section, value, owner, last_agent, version, updated_at)
VALUES ($1, $2, $3, $4::jsonb, $5, $5, $6, $7)
ON CONFLICT (tenant, session_id, section) DO NOTHING
"""

INSERT_AUDIT = f"""
INSERT INTO {AUDIT} (tenant, session_id, version, section, agent, patch, old_value, new_value,
    recorded_at)
SELECT $1, $2, $3, $4, $5, $6::jsonb, prev.new_value,
       agentlog_json_merge_patch(COALESCE(prev.new_value, '{{}}'::jsonb), $6::jsonb), $7
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT a.new_value FROM {AUDIT} a
    WHERE a.tenant = $1 AND a.session_id = $2 AND a.section = $4 AND a.version < $3
    ORDER BY a.version DESC LIMIT 1
) AS prev ON true
ON CONFLICT (tenant, session_id, section, version) DO NOTHING
"""


def _fork_sections(e: ev.SessionForked) -> list[tuple[str, dict, str | None]]:
    sections = e.state.get("sections") or {}
    owners = e.state.get("section_owners") or {}
    return [(name, value, owners.get(name)) for name, value in sorted(sections.items())]


def state_on_updated(r: RecordedEvent, e: ev.StateSectionUpdated) -> list[Write]:
    return [Write(UPSERT_SECTION, (r.tenant, r.session_id, e.section, e.changes, e.agent, r.version, r.recorded_at))]


def state_on_forked(r: RecordedEvent, e: ev.SessionForked) -> list[Write]:
    return [
        Write(FORK_SECTION, (r.tenant, r.session_id, name, value, owner, r.version, r.recorded_at))
        for name, value, owner in _fork_sections(e)
    ]


def audit_on_updated(r: RecordedEvent, e: ev.StateSectionUpdated) -> list[Write]:
    return [Write(INSERT_AUDIT, (r.tenant, r.session_id, r.version, e.section, e.agent, e.changes, r.recorded_at))]


def audit_on_forked(r: RecordedEvent, e: ev.SessionForked) -> list[Write]:
    # The fork's starting value of each section is recorded as a change from nothing.
    return [
        Write(INSERT_AUDIT, (r.tenant, r.session_id, r.version, name, owner, value, r.recorded_at))
        for name, value, owner in _fork_sections(e)
    ]


STATE_PROJECTION = Projection(
    name="session_state",
    tables=(STATE,),
    handlers={ev.StateSectionUpdated: state_on_updated, ev.SessionForked: state_on_forked},
    description="current value and owning agent of each state section",
)

AUDIT_PROJECTION = Projection(
    name="state_audit",
    tables=(AUDIT,),
    handlers={ev.StateSectionUpdated: audit_on_updated, ev.SessionForked: audit_on_forked},
    description="who changed which section: the merge patch, old and new value",
)


# Queries of the query API. Every statement filters by the caller's tenant first: the tenant is a
# bound parameter taken from the API key, never from the request, so no filter, cursor or path can
# reach another tenant's rows.
async def sections(conn, tenant: str, session_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT section, value, owner, last_agent, version, updated_at FROM {STATE} "
        "WHERE tenant = $1 AND session_id = $2 ORDER BY section",
        tenant,
        session_id,
    )


async def audit(
    conn, tenant: str, session_id: str, section: str | None, after: int, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT version, section, agent, patch, old_value, new_value, recorded_at FROM {AUDIT} "
        "WHERE tenant = $1 AND session_id = $2 AND ($3::text IS NULL OR section = $3) AND version > $4 "
        "ORDER BY version, section LIMIT $5",
        tenant,
        session_id,
        section,
        after,
        limit,
    )
