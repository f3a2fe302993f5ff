"""Reads from the event store that the projector needs: the events a Kafka gap skipped.

Invariant: the events table is the source of truth; a gap in the versions a projector received is
filled from it in version order, inside the batch's transaction.
"""

from __future__ import annotations

import asyncpg

from eventstore.envelope import RecordedEvent

COLUMNS = "position, tenant, session_id, version, event_id, type, schema_version, data, metadata, recorded_at"


def from_row(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        position=row["position"], session_id=row["session_id"], version=row["version"],
        event_id=row["event_id"], type=row["type"], schema_version=row["schema_version"],
        data=row["data"], tenant=row["tenant"], recorded_at=row["recorded_at"],
        metadata=row["metadata"] or {},
    )


async def read_versions_between(conn: asyncpg.Connection, tenant: str, session_id: str,
                                after: int, before: int) -> list[RecordedEvent]:
    """Events of a session with after < version < before, in version order."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events WHERE tenant = $1 AND session_id = $2 "
        "AND version > $3 AND version < $4 ORDER BY version",
        tenant, session_id, after, before,
    )
    return [from_row(row) for row in rows]
