"""The outbox table as the relay sees it: read the oldest committed rows in id order joined with
their events, delete rows Kafka acknowledged, park rows that can never be published.

Invariant: every read returns the oldest visible rows in outbox id order, skipping only rows the
caller already sent (and has not deleted yet), never `id > last read`. Per session that is version
order: appends to one session serialize on its streams row lock, so an earlier version's row is
committed (visible) before a later version's row is even inserted, and a read that sees the later
row sees the earlier one too, ahead of it, unless it was already sent. A row committing late
with a lower id is thus read on the next read, before any later row of its session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from eventstore.envelope import RecordedEvent, recorded_from_row

FETCH = """
SELECT o.id AS outbox_id, e.position, e.session_id, e.version, e.event_id, e.type,
       e.schema_version, e.data, e.metadata, e.tenant, e.recorded_at, o.traceparent
FROM outbox o JOIN events e ON e.position = o.position
WHERE o.id <> ALL($2::bigint[])
ORDER BY o.id
LIMIT $1
"""

# Deletes the acknowledged rows ($3) and reads the next batch in one round trip. The SELECT sees
# the statement's snapshot, from before the DELETE, so the deleted ids are excluded by hand.
DELETE_AND_FETCH = """
WITH deleted AS (DELETE FROM outbox WHERE id = ANY($3::bigint[]))
SELECT o.id AS outbox_id, e.position, e.session_id, e.version, e.event_id, e.type,
       e.schema_version, e.data, e.metadata, e.tenant, e.recorded_at, o.traceparent
FROM outbox o JOIN events e ON e.position = o.position
WHERE o.id <> ALL($2::bigint[]) AND o.id <> ALL($3::bigint[])
ORDER BY o.id
LIMIT $1
"""

DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"

PARK = """
WITH moved AS (DELETE FROM outbox WHERE id = $1 RETURNING id, position, tenant, session_id, created_at)
INSERT INTO outbox_parked (id, position, tenant, session_id, created_at, error)
SELECT id, position, tenant, session_id, created_at, $2 FROM moved
ON CONFLICT (id) DO NOTHING
"""

BACKLOG = """
SELECT count(*) AS backlog,
       COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_age_s
FROM outbox
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    outbox_id: int
    event: RecordedEvent
    traceparent: str | None = None  # the appending request's trace (W3C), carried on to Kafka


def _row(record: asyncpg.Record) -> OutboxRow:
    return OutboxRow(outbox_id=record["outbox_id"], event=recorded_from_row(record), traceparent=record["traceparent"])


async def fetch_batch(conn: asyncpg.Connection, limit: int, exclude: Sequence[int] = ()) -> list[OutboxRow]:
    """The `limit` oldest rows, without the ids in `exclude` (sent, awaiting acks or deletion)."""
    return [_row(r) for r in await conn.fetch(FETCH, limit, exclude)]


async def delete_and_fetch(
    conn: asyncpg.Connection, published: list[int], limit: int, exclude: list[int]
) -> list[OutboxRow]:
    """Delete the rows in `published` (acknowledged) and return the `limit` oldest of the rest,
    without the ids in `exclude` (sent, awaiting acks), in one statement."""
    return [_row(r) for r in await conn.fetch(DELETE_AND_FETCH, limit, exclude, published)]


async def delete_published(conn: asyncpg.Connection, outbox_ids: list[int]) -> None:
    await conn.execute(DELETE, outbox_ids)


async def park(conn: asyncpg.Connection, outbox_id: int, error: str) -> None:
    await conn.execute(PARK, outbox_id, error)


async def backlog(conn: asyncpg.Connection) -> tuple[int, float]:
    record = await conn.fetchrow(BACKLOG)
    return record["backlog"], record["oldest_age_s"]
