"""What `agentlog projections status` says about rebuilds: the one under way (phase, events done,
rate, ETA, whether a process is still on it) and the live and kept versions of each projection.

Invariant: read only; a rebuild's figures come from its own progress row (written in each
batch's transaction), so status never disturbs it and shows where a rerun would resume.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from projections.rebuild import lock, shadow, versions
from projections.rebuild.job import ALL
from projections.settings import DEFAULT_GROUP

SHADOWS = r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'agentlog\_rebuild\_%' ORDER BY 1"


async def rebuilds(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    out = {}
    for row in await pool.fetch(SHADOWS):
        table = f"{row['nspname']}.rebuild_progress"
        if await pool.fetchval("SELECT to_regclass($1) IS NULL", table):
            continue
        progress = await pool.fetchrow(f"SELECT *, now() AS now FROM {table}")
        if progress is None or progress.get("phase") is None:
            continue
        out[progress["projection"]] = describe(progress, await lock.running(pool, progress["projection"]))
    return out


def describe(progress: asyncpg.Record | dict, running: bool) -> dict[str, Any]:
    elapsed = (progress["now"] - progress["run_started_at"]).total_seconds()
    done = progress["events_done"] - progress["run_done_at_start"]
    rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
    left = max(progress["events_total"] - progress["events_done"], 0)
    eta = left / rate if rate > 0 and progress["phase"] == "building" else None
    return {
        "phase": progress["phase"],
        "running": running,
        "source": progress["source"],
        "events_done": progress["events_done"],
        "events_total": progress["events_total"],
        "filled_from_store": progress["filled_from_store"],
        "rate": round(rate, 1),
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "started_at": progress["started_at"],
        "updated_at": progress["updated_at"],
        "schema": shadow.schema_for(progress["projection"]),
    }


async def add_to(
    pool: asyncpg.Pool, report: list[dict[str, Any]], projector: str = DEFAULT_GROUP
) -> list[dict[str, Any]]:
    """Each projection's entry of `projection_status` with its `rebuild` (or None) and `versions`."""
    running = await rebuilds(pool)
    known = await versions.listing(pool, projector)
    for entry in report:
        entry["rebuild"] = running.get(entry["projection"]) or running.get(ALL)
        entry["versions"] = known.get(entry["projection"], {"live": 1, "retired": None})
    return report
