"""A scratch database for one benchmark run: created, migrated to head, dropped afterwards.

Invariant: whatever the benchmark does (or however it fails), the database it was given is dropped;
nothing else on the server is touched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from eventstore import migrations


async def _admin(admin_dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(admin_dsn: str) -> AsyncIterator[str]:
    """Yields the DSN of a new migrated database on the server of `admin_dsn`."""
    name = f"agentlog_bench_{uuid.uuid4().hex[:8]}"
    await _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    dsn = f"{admin_dsn.rpartition('/')[0]}/{name}"
    try:
        await asyncio.to_thread(migrations.upgrade, dsn)
        yield dsn
    finally:
        await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
