"""When a rebuild compares its rows with the live ones: at the same session version, in two steps.

Invariants:
- Step 1 (`compare_settled`, in one REPEATABLE READ snapshot, before the swap and without holding
  anything the projector needs): the sessions whose version is the same in the rebuild's guard and
  the live guard are compared; their versions are remembered in `drift_settled`. Sessions whose
  versions differ (live traffic: the projector or the rebuild is ahead) are left out. In one
  snapshot the live rows and the live guard agree, since the projector writes both in one
  transaction; the shadow is not written while it runs.
- Step 2 (`compare_moved`, inside the swap transaction, after the swap reconciled every session to
  the live guard's version while the projector waits): the sessions not compared at the version
  they have now are compared, and the tables without a session key are compared whole.
- So every row is compared exactly once at a version both sides reflect, and live traffic during
  the rebuild is never reported as drift, while the projector waits only for step 2, whose size is
  the traffic of the last moments (or the projector's backlog, if it is behind).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from projections.rebuild.drift import Comparison, Scope, TableShape
from projections.rebuild.report import TableDrift

GUARD = "projection_session_versions"
SESSIONS_TABLE = (
    "CREATE TABLE {table} (tenant text NOT NULL, session_id text NOT NULL, {extra} PRIMARY KEY (tenant, session_id))"
)
SETTLED = """
INSERT INTO {schema}.drift_settled (tenant, session_id, version)
SELECT r.tenant, r.session_id, r.version FROM {schema}.projection_session_versions r
JOIN public.projection_session_versions g
  ON g.projector = r.projector AND g.tenant = r.tenant AND g.session_id = r.session_id
WHERE r.projector = $1 AND g.version = r.version
"""
MOVING = """
INSERT INTO {schema}.drift_moving (tenant, session_id)
SELECT COALESCE(r.tenant, g.tenant), COALESCE(r.session_id, g.session_id)
FROM (SELECT * FROM {schema}.projection_session_versions WHERE projector = $1) r
FULL JOIN (SELECT * FROM public.projection_session_versions WHERE projector = $1) g
  ON g.tenant = r.tenant AND g.session_id = r.session_id
WHERE r.version IS DISTINCT FROM g.version
"""
RECHECK = """
INSERT INTO {schema}.drift_recheck (tenant, session_id)
SELECT g.tenant, g.session_id FROM public.projection_session_versions g
WHERE g.projector = $1 AND NOT EXISTS (
    SELECT 1 FROM {schema}.drift_settled s
    WHERE s.tenant = g.tenant AND s.session_id = g.session_id AND s.version = g.version)
"""


async def _sessions_table(conn: asyncpg.Connection, table: str, extra: str = "") -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {table}")
    await conn.execute(SESSIONS_TABLE.format(table=table, extra=extra))


async def compare_settled(
    conn: asyncpg.Connection, schema: str, projector: str, shapes: Sequence[TableShape], comparison: Comparison
) -> list[TableDrift]:
    """Step 1, in the caller's REPEATABLE READ transaction: the sessions at the same version."""
    await _sessions_table(conn, f"{schema}.drift_settled", "version bigint NOT NULL,")
    await _sessions_table(conn, f"{schema}.drift_moving")
    await conn.execute(SETTLED.format(schema=schema), projector)
    await conn.execute(MOVING.format(schema=schema), projector)
    await conn.execute(f"ANALYZE {schema}.drift_moving")
    return await comparison.tables(conn, shapes, Scope.sessions_not_in(f"{schema}.drift_moving"))


async def compare_moved(
    conn: asyncpg.Connection, schema: str, projector: str, shapes: Sequence[TableShape], comparison: Comparison
) -> tuple[list[TableDrift], int]:
    """Step 2, in the swap transaction after the reconciliation: the rest. Returns the tables'
    drift and how many sessions were compared again."""
    await _sessions_table(conn, f"{schema}.drift_recheck")
    status = await conn.execute(RECHECK.format(schema=schema), projector)
    rechecked = int(status.split()[-1])
    await conn.execute(f"ANALYZE {schema}.drift_recheck")  # small: the planner should use the keys
    per_session = [s for s in shapes if s.per_session]
    whole = [s for s in shapes if not s.per_session]
    found = await comparison.tables(conn, per_session, Scope.sessions_in(f"{schema}.drift_recheck"))
    found += await comparison.tables(conn, whole, Scope.everything())
    return found, rechecked


async def totals(
    conn: asyncpg.Connection, shapes: Sequence[TableShape], live: str, rebuilt: str
) -> dict[str, tuple[int, int]]:
    """Whole-table row counts of both sides (for the report's "counts")."""
    out = {}
    for s in shapes:
        count = "SELECT count(*) FROM {schema}.{table} x WHERE " + s.where
        out[s.name] = (
            await conn.fetchval(count.format(schema=live, table=s.table)),
            await conn.fetchval(count.format(schema=rebuilt, table=s.table)),
        )
    return out
