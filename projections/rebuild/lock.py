"""One rebuild, rollback or drop-old of a projection at a time: a session advisory lock per name.

Invariant: whoever holds the lock is the only writer of the projection's shadow and retired
schemas; it is held on a connection of its own for the whole operation and released on exit (or
by the server when that connection dies, so a killed rebuild never blocks the next one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from eventstore.errors import AgentlogError

KEY = "SELECT hashtextextended('agentlog.rebuild:' || $1, 0)"
# The advisory lock's key as pg_locks shows it (two oids), for `projections status`.
HELD = """
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted
               AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('agentlog.rebuild:' || $1, 0))
"""


class RebuildRunningError(AgentlogError):
    code = "rebuild_running"
    status = 409


@asynccontextmanager
async def exclusive(pool: asyncpg.Pool, projection: str, *more: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold the lock of `projection` (and of each of `more`) on one connection of `pool`."""
    async with pool.acquire() as conn:
        held: list[int] = []
        try:
            for name in dict.fromkeys((projection, *more)):
                key = await conn.fetchval(KEY, name)
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                    raise RebuildRunningError(
                        f"a rebuild, rollback or drop-old of {name} is already running", projection=name
                    )
                held.append(key)
            yield conn
        finally:
            for key in held:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def running(conn: asyncpg.Connection | asyncpg.Pool, projection: str) -> bool:
    return await conn.fetchval(HELD, projection)
