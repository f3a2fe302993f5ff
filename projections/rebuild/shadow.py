"""The shadow schema of a projection rebuild: the tables it builds and its resumable cursor.

Invariants:
- A rebuild of projection NAME works in schema `agentlog_rebuild_NAME`: copies (LIKE ... INCLUDING
  ALL, plus the live table's storage parameters, which LIKE leaves behind) of the tables it builds,
  of the applier's bookkeeping (session versions, parked events) and of session_summaries_v1
  (scratch, when not rebuilt, so that parking an event flags nothing live), plus one
  rebuild_progress row. All are created in one transaction: the schema is whole or absent.
- The cursor (where the source stands: a LogCursor of the store, or the Kafka offsets per
  partition, as JSON) moves by compare-and-set in the same transaction as the batch it covers: a
  crash keeps both or neither, and a second writer fails.
- A rerun resumes only a shadow built for the same projector, tables, source and handler code
  (the fingerprint, projections/rebuild/versions.py); anything else starts over, so a fixed handler
  never inherits rows its buggy predecessor wrote.
- The schema lives only as long as the rebuild: the progress row is in it (not in a migration) so a
  rerun finds the shadow tables and their cursor together, or neither. The phase, totals and the
  current run's start are there too, for `agentlog projections status` (phase, done, ETA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from eventstore.errors import ConcurrencyError

SCHEMA_PREFIX = "agentlog_rebuild_"
RETIRED_PREFIX = "agentlog_retired_"
BOOKKEEPING = ("projection_session_versions", "projection_parked_events")
SUMMARIES = "session_summaries_v1"

PROGRESS_TABLE = """
CREATE TABLE {schema}.rebuild_progress (
    projection        text        PRIMARY KEY,
    projector         text        NOT NULL,
    tables            text[]      NOT NULL,
    source            text        NOT NULL,
    fingerprint       text        NOT NULL,
    cursor            jsonb       NOT NULL DEFAULT '{{}}',
    events_done       bigint      NOT NULL DEFAULT 0,
    events_total      bigint      NOT NULL DEFAULT 0,
    filled_from_store bigint      NOT NULL DEFAULT 0,
    batches           bigint      NOT NULL DEFAULT 0,
    phase             text        NOT NULL DEFAULT 'building',
    started_at        timestamptz NOT NULL DEFAULT now(),
    run_started_at    timestamptz NOT NULL DEFAULT now(),
    run_done_at_start bigint      NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    swapped_at        timestamptz
)
"""
ADVANCE = """
UPDATE {schema}.rebuild_progress SET cursor = $2, events_done = events_done + $3,
    filled_from_store = filled_from_store + $4, batches = batches + 1, updated_at = now()
WHERE projection = $1 AND cursor = $5 AND swapped_at IS NULL
"""
COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
NEW_RUN = """
UPDATE {schema}.rebuild_progress SET run_started_at = now(), run_done_at_start = events_done,
    phase = 'building', updated_at = now()
WHERE projection = $1
"""


class RebuildMovedError(ConcurrencyError):
    """Another process moved the rebuild's cursor since this one read it."""

    code = "rebuild_moved"


Cursor = dict[str, Any]  # the source's position as JSON (projections/rebuild/sources.py)


@dataclass(frozen=True, slots=True)
class ShadowState:
    cursor: Cursor
    events_done: int
    batches: int
    filled_from_store: int
    resumed: bool


@dataclass(frozen=True, slots=True)
class BuildKey:
    """What a shadow was built for; a rerun resumes it only if all of it is the same."""

    projector: str
    tables: tuple[str, ...]
    source: str
    fingerprint: str


def schema_for(projection: str) -> str:
    return SCHEMA_PREFIX + projection  # projection names are catalog names: [a-z_]


def retired_schema_for(projection: str) -> str:
    return RETIRED_PREFIX + projection


def shadow_tables(tables: tuple[str, ...]) -> tuple[str, ...]:
    """Every table the rebuild's applier writes, in the shadow schema."""
    return tuple(dict.fromkeys(tables + BOOKKEEPING + (SUMMARIES,)))


async def prepare(conn: asyncpg.Connection, projection: str, key: BuildKey) -> ShadowState:
    """Resume an unfinished rebuild built for the same `key`, or start anew."""
    schema = schema_for(projection)
    row = await _stored(conn, schema)
    if (
        row is not None
        and row["swapped_at"] is None
        and _key_of(row) == key
        and await same_shape(conn, schema, "public", key.tables)
    ):
        await conn.execute(NEW_RUN.format(schema=schema), projection)
        return ShadowState(row["cursor"], row["events_done"], row["batches"], row["filled_from_store"], resumed=True)
    async with conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute(f"CREATE SCHEMA {schema}")
        for table in shadow_tables(key.tables):
            await conn.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
            await copy_storage_parameters(conn, f"public.{table}", f"{schema}.{table}")
        await conn.execute(PROGRESS_TABLE.format(schema=schema))
        await conn.execute(
            f"INSERT INTO {schema}.rebuild_progress (projection, projector, tables, source, fingerprint) "
            "VALUES ($1, $2, $3, $4, $5)",
            projection,
            key.projector,
            list(key.tables),
            key.source,
            key.fingerprint,
        )
    return ShadowState({}, 0, 0, 0, resumed=False)


async def copy_storage_parameters(conn: asyncpg.Connection, source: str, target: str) -> None:
    """Give `target` the storage parameters of `source` (WITH (...): autovacuum's pace, fillfactor;
    migration 0016 sets some): CREATE TABLE ... LIKE copies none of them, and the copy becomes the
    live table at the swap."""
    options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", source)
    if options:  # ["name=value", ...] as Postgres wrote them back, its own names and values
        await conn.execute(f"ALTER TABLE {target} SET ({', '.join(options)})")


async def same_shape(conn: asyncpg.Connection, schema: str, other: str, tables: Sequence[str]) -> bool:
    """Whether `schema` and `other` hold the tables with the same columns (a migration since the
    shadow or the retired copy was made changes them: they can then no longer become live)."""
    for table in tables:
        mine = await conn.fetch(COLUMNS, f"{schema}.{table}")
        if not mine or [tuple(r) for r in mine] != [tuple(r) for r in await conn.fetch(COLUMNS, f"{other}.{table}")]:
            return False
    return True


def _key_of(row: asyncpg.Record) -> BuildKey | None:
    if row.get("fingerprint") is None:  # a shadow left by an older agentlog: start over
        return None
    return BuildKey(row["projector"], tuple(row["tables"]), row["source"], row["fingerprint"])


async def _stored(conn: asyncpg.Connection, schema: str) -> asyncpg.Record | None:
    if await conn.fetchval("SELECT to_regclass($1) IS NULL", f"{schema}.rebuild_progress"):
        return None
    return await conn.fetchrow(f"SELECT * FROM {schema}.rebuild_progress")


async def advance(
    conn: asyncpg.Connection, projection: str, before: Cursor, after: Cursor, events: int, filled: int = 0
) -> None:
    """Move the cursor from `before` to `after` in the caller's transaction, or raise
    RebuildMovedError (the caller rolls the batch back)."""
    status = await conn.execute(
        ADVANCE.format(schema=schema_for(projection)), projection, after, events, filled, before
    )
    if status != "UPDATE 1":
        raise RebuildMovedError(f"the rebuild cursor of {projection} moved under this process", projection=projection)


async def set_phase(
    conn: asyncpg.Connection | asyncpg.Pool, projection: str, phase: str, events_total: int | None = None
) -> None:
    """Record what the rebuild does now (building, verifying, swapping, verified, refused)."""
    await conn.execute(
        f"UPDATE {schema_for(projection)}.rebuild_progress SET phase = $2, "
        "events_total = COALESCE($3, events_total), updated_at = now() WHERE projection = $1",
        projection,
        phase,
        events_total,
    )


async def mark_swapped(conn: asyncpg.Connection, projection: str) -> None:
    await conn.execute(
        f"UPDATE {schema_for(projection)}.rebuild_progress SET swapped_at = now() WHERE projection = $1", projection
    )


async def drop(conn: asyncpg.Connection, projection: str) -> None:
    """Remove the shadow schema (after the swap committed, or to discard it). The retired schema
    (the previous version, for rollback) is not the shadow's: see projections/rebuild/versions.py."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema_for(projection)} CASCADE")


async def use_shadow(conn: asyncpg.Connection, projection: str) -> None:
    """Resolve the caller's unqualified table names in the shadow schema first, for the rest of
    its transaction (the handlers' SQL names tables unqualified; events stay in public)."""
    await conn.execute(f"SET LOCAL search_path = {schema_for(projection)}, public")
