"""The previous version of a projection, kept after a swap: rollback and drop-old.

Invariants:
- The retired version lives in schema `agentlog_retired_NAME`: the projection's tables as they were
  live, plus what says which events they reflect: a copy of the live session versions taken
  when the swap had reconciled them (projection_session_versions) and the projection's parked
  events; and a scratch session_summaries_v1 when the projection does not own it (catching up
  may park an event, and the flag must land there, not live). It is made in the swap's
  transaction (`retire_into`), so it exists exactly when the registry says a version is retired.
- Rollback first catches the retired tables up with every event the live guard has applied since
  (outside the swap, then the rest inside it while the projector waits), then exchanges them
  with the live tables in one transaction (projections/rebuild/swap.py): nothing applied since
  the swap is lost, and a second rollback rolls forward.
- A projection whose handlers read another's tables (tool_stats reads tool_calls_v1) reads the
  live ones while catching up: they are at or past the versions being applied.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from eventstore.errors import AgentlogError
from projections.read_models.projection import Projection
from projections.rebuild import shadow, swap, versions
from projections.rebuild.lock import exclusive

log = logging.getLogger(__name__)
GUARD = "projection_session_versions"
PARKED = "projection_parked_events"


class NothingToRollBackError(AgentlogError):
    code = "no_retired_version"
    status = 409


@dataclass
class RollbackSummary:
    projection: str
    status: str  # rolled_back | dropped
    live_version: int | None
    retired_version: int | None
    caught_up: int = 0  # events applied to the retired tables before they went live again
    parked: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def retire_into(conn: asyncpg.Connection, schema: str, projection: Projection, projector: str) -> None:
    """A fresh `schema` with the bookkeeping of the live tables that are about to move into it."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await conn.execute(f"CREATE SCHEMA {schema}")
    scratch = () if shadow.SUMMARIES in projection.tables else (shadow.SUMMARIES,)
    for table in (GUARD, PARKED, *scratch):
        await conn.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
    await conn.execute(f"INSERT INTO {schema}.{GUARD} SELECT * FROM public.{GUARD} WHERE projector = $1", projector)
    await conn.execute(
        f"INSERT INTO {schema}.{PARKED} ({swap.PARKED_COLUMNS}) SELECT {swap.PARKED_COLUMNS} FROM public.{PARKED} "
        "WHERE projector = $1 AND projection = $2",
        projector,
        projection.name,
    )


class RetiredVersionOutdatedError(AgentlogError):
    code = "retired_version_outdated"
    status = 409


async def has_retired(conn: asyncpg.Connection, projection: Projection) -> bool:
    schema = shadow.retired_schema_for(projection.name)
    for table in (*projection.tables, GUARD):
        if await conn.fetchval("SELECT to_regclass($1) IS NULL", f"{schema}.{table}"):
            return False
    return True


async def _rollback_possible(conn: asyncpg.Connection, projection: Projection) -> None:
    if not await has_retired(conn, projection):
        raise NothingToRollBackError(
            f"{projection.name} has no previous version to roll back to", projection=projection.name
        )
    if not await shadow.same_shape(conn, shadow.retired_schema_for(projection.name), "public", projection.tables):
        raise RetiredVersionOutdatedError(
            f"the previous version of {projection.name} predates a migration of its tables; "
            f"it cannot go live again (agentlog projections drop-old {projection.name})",
            projection=projection.name,
        )


async def rollback(
    pool: asyncpg.Pool,
    projection: Projection,
    catalog: tuple[Projection, ...],
    *,
    projector: str,
    max_retries: int = 3,
) -> RollbackSummary:
    started = time.monotonic()
    retired = shadow.retired_schema_for(projection.name)
    plan = swap.SwapPlan(projection, (projection,), projector, max_retries, catalog, schema=retired)
    async with exclusive(pool, projection.name) as lock_conn:
        await _rollback_possible(lock_conn, projection)
        async with pool.acquire() as conn, conn.transaction():  # most of the catching up, projector running
            early = await swap.reconcile(conn, plan, bring_forward=False)
        async with pool.acquire() as conn, conn.transaction():
            await swap.hold_projector(conn)
            late = await swap.reconcile(conn, plan)
            staging = retired.replace(shadow.RETIRED_PREFIX, "agentlog_retiring_")
            await retire_into(conn, staging, projection, projector)
            await swap.move_tables(conn, projection.tables, incoming=retired, outgoing=staging)
            parked = await swap.replace_parked(conn, plan)
            await conn.execute(f"DROP SCHEMA {retired} CASCADE")
            await conn.execute(f"ALTER SCHEMA {staging} RENAME TO {retired}")
            live, old = await versions.record_rollback(conn, projector, projection.name)
    caught_up = early.caught_up_in_shadow + late.caught_up_in_shadow
    log.info("rolled %s back to version %s (%d events caught up)", projection.name, live, caught_up)
    return RollbackSummary(
        projection.name, "rolled_back", live, old, caught_up, parked, round(time.monotonic() - started, 3)
    )


async def drop_old(pool: asyncpg.Pool, projection: Projection, *, projector: str) -> RollbackSummary:
    started = time.monotonic()
    async with exclusive(pool, projection.name) as conn:
        if not await has_retired(conn, projection):
            raise NothingToRollBackError(
                f"{projection.name} has no previous version to drop", projection=projection.name
            )
        async with conn.transaction():
            await conn.execute(f"DROP SCHEMA {shadow.retired_schema_for(projection.name)} CASCADE")
            dropped = await versions.record_drop(conn, projector, projection.name)
        live = await conn.fetchval(
            "SELECT version FROM projection_versions WHERE projector = $1 AND projection = $2 AND status = 'live'",
            projector,
            projection.name,
        )
    return RollbackSummary(projection.name, "dropped", live, dropped, seconds=round(time.monotonic() - started, 3))
