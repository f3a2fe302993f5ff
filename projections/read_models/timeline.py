"""Session timeline (session_timeline_v1): one row per event with its version, type, a one-line
human summary, the agent involved and when it was recorded.

Invariant: the row of (tenant, session, version) is written once and never changed (insert or
nothing), so a duplicate delivery or a late retry leaves the timeline identical.
"""

from __future__ import annotations

import asyncpg

from eventstore import events as ev
from eventstore import history
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import BULK, Bulk, Projection, Write

TABLE = "session_timeline_v1"
SUMMARY_LIMIT = 200

INSERT = f"""
INSERT INTO {TABLE} (tenant, session_id, version, position, type, summary, agent, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant, session_id, version) DO NOTHING
"""
BULK[INSERT] = Bulk(f"""
INSERT INTO {TABLE} (tenant, session_id, version, position, type, summary, agent, recorded_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[],
    $8::timestamptz[])
ON CONFLICT (tenant, session_id, version) DO NOTHING
""")


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def summary_of(event: ev.Event) -> str:
    """The event's line as `agentlog history` shows it (eventstore/history.py), clipped to the column."""
    return _clip(history.describe(event))


def agent_of(event: ev.Event) -> str | None:
    for attribute in ("agent", "requested_by", "reviewer", "by", "started_by"):
        value = getattr(event, attribute, None)
        if value:
            return value
    return None


def on_event(recorded: RecordedEvent, event: ev.Event) -> list[Write]:
    return [
        Write(
            INSERT,
            (
                recorded.tenant,
                recorded.session_id,
                recorded.version,
                recorded.position,
                recorded.type,
                summary_of(event),
                agent_of(event),
                recorded.recorded_at,
            ),
        )
    ]


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
        tenant,
        session_id,
        after,
        limit,
    )
