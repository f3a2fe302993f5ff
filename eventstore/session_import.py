"""Append an exported session (eventstore/export_file.py) as a new session of the log.

Invariant: an import is one transaction that writes the session's events as they were stored
(type, schema version, data, recorded time: an old payload stays old and is upcast on read),
one outbox row per event (so the relay publishes it and the projections build from it like any
session), and the stream row with the fold of those events; or nothing. It takes the same
advisory lock as `agentlog_append`, so it cannot interleave with a command on the same session,
and refuses a session that exists (StreamAlreadyExistsError) before writing anything.

Unlike a command's append it keeps each event's own recorded time and metadata, which the
append function (one metadata for all, the clock for the time) cannot; it is a rare bulk write,
not the command path, so it spends a few statements of one transaction instead of one call.
Event ids are unique in the whole log, and the file's may already be there (the session it was
exported from), so each event gets a new id derived from the target and its original id
(importing the same file into the same place always gives the same ids); the metadata keeps
everything it had and adds `imported_from` {session_id, event_id} of the original event; a
`tenant` it names is the importing tenant.
"""

from __future__ import annotations

import uuid

import asyncpg

from eventstore.envelope import RecordedEvent
from eventstore.errors import StreamAlreadyExistsError
from eventstore.export_file import ExportedSession
from eventstore.state import SessionState, fold
from eventstore.store import AppendResult

IMPORT_NAMESPACE = uuid.UUID("5b0c7f1e-7a51-4c1e-9a0e-1f6f3c0a9e11")

_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 0)), pg_current_xact_id()"
_EXISTING_SQL = "SELECT version FROM streams WHERE tenant = $1 AND session_id = $2"
_INSERT_EVENTS_SQL = """
INSERT INTO events (tenant, session_id, version, event_id, type, schema_version, data, metadata, recorded_at)
SELECT $1, $2, e.version, e.event_id, e.type, e.sv, d.value, m.value, e.recorded_at
  FROM unnest($3::bigint[], $4::uuid[], $5::text[], $6::integer[], $7::timestamptz[])
       WITH ORDINALITY AS e(version, event_id, type, sv, recorded_at, ord)
  JOIN jsonb_array_elements($8::jsonb) WITH ORDINALITY AS d(value, ord) USING (ord)
  JOIN jsonb_array_elements($9::jsonb) WITH ORDINALITY AS m(value, ord) USING (ord)
 ORDER BY e.ord
RETURNING position
"""
_INSERT_OUTBOX_SQL = """
INSERT INTO outbox (position, tenant, session_id) SELECT p, $2, $3 FROM unnest($1::bigint[]) AS p ORDER BY p
"""
_INSERT_STREAM_SQL = """
INSERT INTO streams (tenant, session_id, version, status, state, last_position) VALUES ($1, $2, $3, $4, $5, $6)
"""


def imported_event_id(tenant: str, session_id: str, original: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(IMPORT_NAMESPACE, f"{tenant}\x1f{session_id}\x1f{original}")


def as_recorded(exported: ExportedSession, tenant: str, session_id: str) -> list[RecordedEvent]:
    """The events as the import stores them (position 0: the log assigns it)."""
    recorded = []
    for e in exported.events:
        metadata = {**e.metadata, "imported_from": {"session_id": exported.session_id, "event_id": str(e.event_id)}}
        if "tenant" in metadata:
            metadata["tenant"] = tenant
        event_id = imported_event_id(tenant, session_id, e.event_id)
        recorded.append(
            RecordedEvent(
                0, session_id, e.version, event_id, e.type, e.schema_version, e.data, tenant, e.recorded_at, metadata
            )
        )
    return recorded


async def import_session(
    pool: asyncpg.Pool, exported: ExportedSession, *, tenant: str, session_id: str
) -> AppendResult:
    """Append `exported` as the new session `session_id` of `tenant`; raises
    StreamAlreadyExistsError (nothing written) when that session exists."""
    events = as_recorded(exported, tenant, session_id)
    state = fold(events, SessionState.new(session_id, tenant))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK_SQL, tenant, session_id)
        current = await conn.fetchval(_EXISTING_SQL, tenant, session_id)
        if current is not None:
            raise StreamAlreadyExistsError(
                f"session {session_id!r} already exists in tenant {tenant!r} (at version {current}); "
                "import it under another id with --as",
                current_version=current,
            )
        rows = await conn.fetch(
            _INSERT_EVENTS_SQL,
            tenant,
            session_id,
            [e.version for e in events],
            [e.event_id for e in events],
            [e.type for e in events],
            [e.schema_version for e in events],
            [e.recorded_at for e in events],
            [e.data for e in events],
            [e.metadata for e in events],
        )
        positions = [row["position"] for row in rows]
        await conn.execute(_INSERT_OUTBOX_SQL, positions, tenant, session_id)
        await conn.execute(
            _INSERT_STREAM_SQL,
            tenant,
            session_id,
            state.version,
            state.status,
            state.to_snapshot(compact=True),
            max(positions),
        )
    return AppendResult(session_id, state.version, max(positions), tuple(e.event_id for e in events))
