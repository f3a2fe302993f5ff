"""Outbox facts for `agentlog status`: backlog, age of the oldest unpublished row, parked rows and
the current relay leader as last recorded (the advisory lock is the authority; a leader whose
heartbeat is older than `stale_after_s` is reported as not running)."""

from __future__ import annotations

from typing import Any

import asyncpg

from outbox import rows as outbox_rows

INSTANCES = """
SELECT instance_id, hostname, pid, role, started_at, heartbeat_at,
       EXTRACT(EPOCH FROM now() - heartbeat_at)::float8 AS heartbeat_age_s
FROM relay_instances ORDER BY role, instance_id
"""


async def outbox_status(pool: asyncpg.Pool, *, stale_after_s: float = 10.0) -> dict[str, Any]:
    async with pool.acquire() as conn:
        backlog, oldest_age_s = await outbox_rows.backlog(conn)
        parked = await conn.fetchval("SELECT count(*) FROM outbox_parked")
        instances = await conn.fetch(INSTANCES)
    live = [r for r in instances if r["heartbeat_age_s"] <= stale_after_s]
    leader = next((r for r in live if r["role"] == "leader"), None)
    return {
        "backlog": backlog,
        "oldest_age_seconds": round(oldest_age_s, 3),
        "parked": parked,
        "leader": None
        if leader is None
        else {
            "instance_id": leader["instance_id"],
            "hostname": leader["hostname"],
            "pid": leader["pid"],
            "since": leader["started_at"].isoformat(),
            "heartbeat_age_seconds": round(leader["heartbeat_age_s"], 3),
        },
        "standbys": [r["instance_id"] for r in live if r["role"] == "standby"],
    }
