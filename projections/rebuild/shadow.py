"""The shadow schema of a projection rebuild: the tables it builds and its resumable cursor.

Invariants:
- A rebuild of projection NAME works in schema `agentlog_rebuild_NAME`: copies (LIKE ... INCLUDING
  ALL) of the tables it builds, of the applier's bookkeeping (session versions, parked events) and
  of session_summaries_v1 (scratch, when not rebuilt, so that parking an event flags nothing live),
  plus one rebuild_progress row. All are created in one transaction: the schema is whole or absent.
- The cursor (a LogCursor of the log, eventstore/positions.py) moves by compare-and-set in the same
  transaction as the batch it covers: a crash keeps both or neither, and a second writer fails.
- The schema lives only as long as the rebuild: the progress row is in it (not in a migration) so a
  rerun finds the shadow tables and their cursor together, or neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from eventstore.errors import ConcurrencyError
from eventstore.positions import START, LogCursor

SCHEMA_PREFIX = "agentlog_rebuild_"
RETIRED_PREFIX = "agentlog_retired_"
BOOKKEEPING = ("projection_session_versions", "projection_parked_events")
SUMMARIES = "session_summaries_v1"

PROGRESS_TABLE = """
CREATE TABLE {schema}.rebuild_progress (
    projection      text        PRIMARY KEY,
    projector       text        NOT NULL,
    tables          text[]      NOT NULL,
    transaction_id  bigint      NOT NULL DEFAULT 0,
    position        bigint      NOT NULL DEFAULT 0,
    events_done     bigint      NOT NULL DEFAULT 0,
    batches         bigint      NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    swapped_at      timestamptz
)
"""
ADVANCE = """
UPDATE {schema}.rebuild_progress SET transaction_id = $2, position = $3,
    events_done = events_done + $4, batches = batches + 1, updated_at = now()
WHERE projection = $1 AND transaction_id = $5 AND position = $6 AND swapped_at IS NULL
"""


class RebuildMovedError(ConcurrencyError):
    """Another process moved the rebuild's cursor since this one read it."""

    code = "rebuild_moved"


@dataclass(frozen=True, slots=True)
class ShadowState:
    cursor: LogCursor
    events_done: int
    batches: int
    resumed: bool


def schema_for(projection: str) -> str:
    return SCHEMA_PREFIX + projection  # projection names are catalog names: [a-z_]


def retired_schema_for(projection: str) -> str:
    return RETIRED_PREFIX + projection


def shadow_tables(tables: tuple[str, ...]) -> tuple[str, ...]:
    """Every table the rebuild's applier writes, in the shadow schema."""
    return tuple(dict.fromkeys(tables + BOOKKEEPING + (SUMMARIES,)))


async def prepare(conn: asyncpg.Connection, projection: str, projector: str, tables: tuple[str, ...]) -> ShadowState:
    """Resume an unfinished rebuild of the same tables for the same projector, or start anew."""
    schema = schema_for(projection)
    row = await _stored(conn, schema)
    if (
        row is not None
        and row["swapped_at"] is None
        and row["projector"] == projector
        and tuple(row["tables"]) == tables
    ):
        return ShadowState(
            LogCursor(row["transaction_id"], row["position"]), row["events_done"], row["batches"], resumed=True
        )
    async with conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute(f"DROP SCHEMA IF EXISTS {retired_schema_for(projection)} CASCADE")
        await conn.execute(f"CREATE SCHEMA {schema}")
        for table in shadow_tables(tables):
            await conn.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
        await conn.execute(PROGRESS_TABLE.format(schema=schema))
        await conn.execute(
            f"INSERT INTO {schema}.rebuild_progress (projection, projector, tables) VALUES ($1, $2, $3)",
            projection,
            projector,
            list(tables),
        )
    return ShadowState(START, 0, 0, resumed=False)


async def _stored(conn: asyncpg.Connection, schema: str) -> asyncpg.Record | None:
    if await conn.fetchval("SELECT to_regclass($1) IS NULL", f"{schema}.rebuild_progress"):
        return None
    return await conn.fetchrow(f"SELECT * FROM {schema}.rebuild_progress")


async def advance(conn: asyncpg.Connection, projection: str, before: LogCursor, after: LogCursor, events: int) -> None:
    """Move the cursor from `before` to `after` in the caller's transaction, or raise
    RebuildMovedError (the caller rolls the batch back)."""
    status = await conn.execute(
        ADVANCE.format(schema=schema_for(projection)),
        projection,
        after.transaction_id,
        after.position,
        events,
        before.transaction_id,
        before.position,
    )
    if status != "UPDATE 1":
        raise RebuildMovedError(f"the rebuild cursor of {projection} moved under this process", projection=projection)


async def mark_swapped(conn: asyncpg.Connection, projection: str) -> None:
    await conn.execute(
        f"UPDATE {schema_for(projection)}.rebuild_progress SET swapped_at = now() WHERE projection = $1", projection
    )


async def drop(conn: asyncpg.Connection, projection: str) -> None:
    """Remove the shadow and retired schemas (after the swap committed, or to discard)."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema_for(projection)} CASCADE")
    await conn.execute(f"DROP SCHEMA IF EXISTS {retired_schema_for(projection)} CASCADE")


async def use_shadow(conn: asyncpg.Connection, projection: str) -> None:
    """Resolve the caller's unqualified table names in the shadow schema first, for the rest of
    its transaction (the handlers' SQL names tables unqualified; events stay in public)."""
    await conn.execute(f"SET LOCAL search_path = {schema_for(projection)}, public")
