"""The swap of a projection rebuild: one transaction that makes the shadow tables the live ones.

Invariants (all inside the caller's one transaction; a failure leaves the live tables untouched):
- The swap first takes projection_checkpoints in EXCLUSIVE mode: a projector batch starts by
  updating its checkpoint rows, so the batch in flight finishes first and the next one waits for
  the swap; the live session versions (projection_session_versions, the live guard) hold still.
- After the swap, for every session, the rebuilt tables reflect exactly the versions up to the live
  guard, like the other read models, so the projector goes on from there for all projections:
  a session the rebuild is behind on is caught up in the shadow (from the event store, by version);
  a session the rebuild is ahead on is brought forward in the other projections' live tables, and
  the live guard moves with it (as a gap fill would), so the projector later skips those events.
- Parked events of the swapped projection are replaced by those the rebuild parked (an event that
  applied now is no longer parked; one that failed again is parked anew), and has_parked_events is
  recomputed for every session whose parked set changed.
- The live tables are locked ACCESS EXCLUSIVE only for the renames and the parked rows at the end:
  queries wait for a few catalog updates, then read the new tables (the old ones move to a retired schema that
  the caller drops after commit). Index names are kept, so later migrations can name them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from eventstore.envelope import RecordedEvent
from projections.projector.applier import BatchApplier
from projections.projector.gaps import read_versions_between
from projections.read_models.catalog import PROJECTIONS
from projections.read_models.projection import Projection
from projections.rebuild import shadow

DIFFERENCES = """
SELECT COALESCE(r.tenant, g.tenant) AS tenant, COALESCE(r.session_id, g.session_id) AS session_id,
       COALESCE(r.version, 0) AS rebuilt, COALESCE(g.version, 0) AS live
FROM (SELECT * FROM {schema}.projection_session_versions WHERE projector = $1) r
FULL JOIN (SELECT * FROM public.projection_session_versions WHERE projector = $1) g
  ON g.tenant = r.tenant AND g.session_id = r.session_id
WHERE COALESCE(r.version, 0) <> COALESCE(g.version, 0)
"""
PARKED_COLUMNS = (
    "projector, projection, tenant, session_id, version, position, event, error, attempts, parked_at, last_retry_at"
)
DROP_LIVE_PARKED = """
DELETE FROM public.projection_parked_events WHERE projector = $1 AND projection = ANY($2::text[])
RETURNING tenant, session_id
"""
COPY_SHADOW_PARKED = f"""
INSERT INTO public.projection_parked_events ({PARKED_COLUMNS})
SELECT {PARKED_COLUMNS} FROM {{schema}}.projection_parked_events
WHERE projector = $1 AND projection = ANY($2::text[])
RETURNING tenant, session_id
"""
RECOMPUTE_FLAGS = """
UPDATE public.session_summaries_v1 s SET has_parked_events = p.parked
FROM (SELECT k.tenant, k.session_id, EXISTS (
          SELECT 1 FROM public.projection_parked_events x
          WHERE x.tenant = k.tenant AND x.session_id = k.session_id) AS parked
      FROM unnest($1::text[], $2::text[]) AS k(tenant, session_id)) p
WHERE s.tenant = p.tenant AND s.session_id = p.session_id AND s.has_parked_events <> p.parked
"""
FLAGGED_OR_PARKED = """
SELECT tenant, session_id FROM public.session_summaries_v1 WHERE has_parked_events
UNION SELECT tenant, session_id FROM public.projection_parked_events
"""
INDEXES = """
SELECT c.relname AS name, i.indisunique AS is_unique,
       substring(pg_get_indexdef(i.indexrelid) FROM ' USING .*$') AS definition
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass($1)
"""


@dataclass
class SwapResult:
    caught_up_in_shadow: int = 0  # events applied to the shadow in the swap (rebuild was behind)
    brought_forward_live: int = 0  # events applied to other live projections (rebuild was ahead)
    parked: int = 0  # parked events of the rebuilt projection after the swap


@dataclass(frozen=True)
class SwapPlan:
    projection: Projection
    build: tuple[Projection, ...]  # the projection and what it reads, in catalog order
    projector: str
    max_retries: int

    @property
    def schema(self) -> str:
        return shadow.schema_for(self.projection.name)


async def swap(conn: asyncpg.Connection, plan: SwapPlan) -> SwapResult:
    """Reconcile the shadow with the live guard and swap it in, in the caller's transaction."""
    result = SwapResult()
    await conn.execute("LOCK TABLE projection_checkpoints IN EXCLUSIVE MODE")
    behind, ahead = await _differences(conn, plan)
    await shadow.use_shadow(conn, plan.projection.name)
    shadow_applier = BatchApplier(plan.build, plan.projector, plan.max_retries, notify=False)
    result.caught_up_in_shadow = (await shadow_applier.apply(conn, behind)).applied
    await conn.execute("SET LOCAL search_path TO DEFAULT")
    others = [p for p in PROJECTIONS if p.name != plan.projection.name]
    result.brought_forward_live = (
        await BatchApplier(others, plan.projector, plan.max_retries).apply(conn, ahead)
    ).applied
    await _move_tables(conn, plan)
    result.parked = await _replace_parked(conn, plan)
    await shadow.mark_swapped(conn, plan.projection.name)
    return result


async def _differences(conn: asyncpg.Connection, plan: SwapPlan) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
    """Events the shadow lacks (up to the live guard) and events the live lacks (up to the shadow's)."""
    behind: list[RecordedEvent] = []
    ahead: list[RecordedEvent] = []
    for row in await conn.fetch(DIFFERENCES.format(schema=plan.schema), plan.projector):
        low, high = sorted((row["rebuilt"], row["live"]))
        events = await read_versions_between(conn, row["tenant"], row["session_id"], low, high + 1)
        (behind if row["rebuilt"] < row["live"] else ahead).extend(events)
    return behind, ahead


async def _move_tables(conn: asyncpg.Connection, plan: SwapPlan) -> None:
    retired = shadow.retired_schema_for(plan.projection.name)
    await conn.execute(f"CREATE SCHEMA {retired}")
    tables = plan.projection.tables
    await conn.execute(f"LOCK TABLE {', '.join('public.' + t for t in tables)} IN ACCESS EXCLUSIVE MODE")
    for table in tables:
        names = {(r["is_unique"], r["definition"]): r["name"] for r in await conn.fetch(INDEXES, f"public.{table}")}
        await conn.execute(f"ALTER TABLE public.{table} SET SCHEMA {retired}")
        for index in await conn.fetch(INDEXES, f"{plan.schema}.{table}"):
            wanted = names.get((index["is_unique"], index["definition"].replace(plan.schema + ".", "public.")))
            if wanted and wanted != index["name"]:
                await conn.execute(f'ALTER INDEX {plan.schema}."{index["name"]}" RENAME TO "{wanted}"')
        await conn.execute(f"ALTER TABLE {plan.schema}.{table} SET SCHEMA public")


async def _replace_parked(conn: asyncpg.Connection, plan: SwapPlan) -> int:
    names = [plan.projection.name]
    dropped = await conn.fetch(DROP_LIVE_PARKED, plan.projector, names)
    copied = await conn.fetch(COPY_SHADOW_PARKED.format(schema=plan.schema), plan.projector, names)
    keys = {(r["tenant"], r["session_id"]) for r in (*dropped, *copied)}
    if shadow.SUMMARIES in plan.projection.tables:
        # The new summaries only know the rebuild's own parked events; other projections' count too.
        keys |= {(r["tenant"], r["session_id"]) for r in await conn.fetch(FLAGGED_OR_PARKED)}
    await _recompute_flags(conn, sorted(keys))
    return len(copied)


async def _recompute_flags(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    if keys:
        await conn.execute(RECOMPUTE_FLAGS, [k[0] for k in keys], [k[1] for k in keys])
