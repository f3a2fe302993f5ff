"""The steps of a swap: one transaction that makes one schema's tables the live ones.

Used by the rebuild (shadow -> live, live -> retired) and by rollback (retired -> live, live ->
retired). The caller runs them in this order inside ONE transaction; a failure, or a refusal in
between (drift), rolls back everything and leaves the live tables untouched:
1. `hold_projector`: projection_checkpoints in EXCLUSIVE mode. A projector batch starts by updating
   its checkpoint rows, so the batch in flight finishes first and the next one waits for the swap;
   the live session versions (projection_session_versions, the live guard) hold still.
2. `reconcile`: after it, for every session, the incoming tables and the live ones reflect exactly
   the same versions, those of the live guard, so the projector goes on from there for all
   projections and the two sides can be compared row by row: a session the incoming side is
   behind on is caught up (from the event store, by version); a session it is ahead on is
   brought forward in every live projection, and the live guard moves with it (as a gap fill
   would), so the projector later skips those events.
3. `move_tables`: the live tables are locked ACCESS EXCLUSIVE only for the renames: queries wait
   for a few catalog updates, then read the new tables. Index names are kept, so later
   migrations can name them.
4. `replace_parked`: the projection's parked events are replaced by the incoming side's (an event
   that applies now is no longer parked; one that failed again is parked anew), and
   has_parked_events is recomputed for every session whose parked set changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from eventstore.envelope import RecordedEvent
from projections.projector.applier import BatchApplier
from projections.projector.gaps import read_versions_between
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
COPY_PARKED = f"""
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
    caught_up_in_shadow: int = 0  # events applied to the incoming side in the swap (it was behind)
    brought_forward_live: int = 0  # events applied to the live projections (it was ahead)
    parked: int = 0  # parked events of the swapped projection after the swap


@dataclass(frozen=True)
class SwapPlan:
    projection: Projection
    build: tuple[Projection, ...]  # what the incoming schema applies (the projection, what it reads)
    projector: str
    max_retries: int
    catalog: tuple[Projection, ...]  # every projection the live projector runs
    schema: str = ""  # the incoming schema (default: the projection's shadow)

    @property
    def incoming(self) -> str:
        return self.schema or shadow.schema_for(self.projection.name)


async def hold_projector(conn: asyncpg.Connection) -> None:
    await conn.execute("LOCK TABLE projection_checkpoints IN EXCLUSIVE MODE")


async def reconcile(conn: asyncpg.Connection, plan: SwapPlan, *, bring_forward: bool = True) -> SwapResult:
    """Bring the incoming side and the live guard to the same version for every session (with
    `bring_forward=False`, only catch the incoming side up: outside the swap, live moves on)."""
    result = SwapResult()
    behind, ahead = await _differences(conn, plan)
    await conn.execute(f"SET LOCAL search_path = {plan.incoming}, public")
    incoming = BatchApplier(plan.build, plan.projector, plan.max_retries, notify=False)
    result.caught_up_in_shadow = (await incoming.apply(conn, behind)).applied
    await conn.execute("SET LOCAL search_path TO DEFAULT")
    if not bring_forward:
        return result
    live = BatchApplier(plan.catalog, plan.projector, plan.max_retries)
    result.brought_forward_live = (await live.apply(conn, ahead)).applied
    return result


async def _differences(conn: asyncpg.Connection, plan: SwapPlan) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
    """Events the incoming side lacks (up to the live guard) and events the live lacks (up to its)."""
    behind: list[RecordedEvent] = []
    ahead: list[RecordedEvent] = []
    for row in await conn.fetch(DIFFERENCES.format(schema=plan.incoming), plan.projector):
        low, high = sorted((row["rebuilt"], row["live"]))
        events = await read_versions_between(conn, row["tenant"], row["session_id"], low, high + 1)
        (behind if row["rebuilt"] < row["live"] else ahead).extend(events)
    return behind, ahead


async def move_tables(conn: asyncpg.Connection, tables: Sequence[str], incoming: str, outgoing: str) -> None:
    """public.T -> outgoing.T and incoming.T -> public.T, giving the incoming indexes the live names."""
    await conn.execute(f"LOCK TABLE {', '.join('public.' + t for t in tables)} IN ACCESS EXCLUSIVE MODE")
    for table in tables:
        names = {(r["is_unique"], r["definition"]): r["name"] for r in await conn.fetch(INDEXES, f"public.{table}")}
        await conn.execute(f"ALTER TABLE public.{table} SET SCHEMA {outgoing}")
        for index in await conn.fetch(INDEXES, f"{incoming}.{table}"):
            wanted = names.get((index["is_unique"], index["definition"].replace(incoming + ".", "public.")))
            if wanted and wanted != index["name"]:
                await conn.execute(f'ALTER INDEX {incoming}."{index["name"]}" RENAME TO "{wanted}"')
        await conn.execute(f"ALTER TABLE {incoming}.{table} SET SCHEMA public")


async def replace_parked(conn: asyncpg.Connection, plan: SwapPlan) -> int:
    names = [plan.projection.name]
    dropped = await conn.fetch(DROP_LIVE_PARKED, plan.projector, names)
    copied = await conn.fetch(COPY_PARKED.format(schema=plan.incoming), plan.projector, names)
    keys = {(r["tenant"], r["session_id"]) for r in (*dropped, *copied)}
    if shadow.SUMMARIES in plan.projection.tables:
        # The new summaries only know the rebuild's own parked events; other projections' count too.
        keys |= {(r["tenant"], r["session_id"]) for r in await conn.fetch(FLAGGED_OR_PARKED)}
    await recompute_flags(conn, sorted(keys))
    return len(copied)


async def recompute_flags(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    if keys:
        await conn.execute(RECOMPUTE_FLAGS, [k[0] for k in keys], [k[1] for k in keys])
