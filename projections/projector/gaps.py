"""Reads from the event store that the projector needs: the events a Kafka gap skipped.

Invariant: the events table is the source of truth; a gap in the versions a projector received is
filled from it in version order, inside the batch's transaction.
"""

from __future__ import annotations

import asyncpg

from eventstore.envelope import EVENT_COLUMNS, RecordedEvent, recorded_from_row


async def read_versions_between(
    conn: asyncpg.Connection, tenant: str, session_id: str, after: int, before: int
) -> list[RecordedEvent]:
    """Events of a session with after < version < before, in version order."""
    rows = await conn.fetch(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant = $1 AND session_id = $2 "
        "AND version > $3 AND version < $4 ORDER BY version",
        tenant,
        session_id,
        after,
        before,
    )
    return [recorded_from_row(row) for row in rows]
