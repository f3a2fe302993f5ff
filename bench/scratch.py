"""Scratch space for one benchmark run: a database created, migrated to head and dropped
afterwards; its topics' deletion; a folder for the components' logs.

Invariants: whatever the benchmark does (or however it fails), the database it was given is
dropped and nothing else on the server is touched; the log folder is deleted after a run that
ended well and kept (its path on stderr) after one that failed, where the logs say why.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from eventstore import migrations


async def _admin(admin_dsn: str, sql: str) -> None:
    try:
        conn = await asyncpg.connect(admin_dsn)
    except OSError as exc:  # refused, unreachable: the stack is not up
        raise SystemExit(
            f"cannot reach PostgreSQL ({exc}): start the stack first (`agentlog stack up`), or run the "
            "benchmark through `python -m bench NAME`, which starts it"
        ) from exc
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


async def drop_topics(bootstrap: str, *topics: str) -> None:
    """Deletes a benchmark's scratch topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(topics))
    finally:
        await admin.close()


@contextmanager
def component_logs(name: str) -> Iterator[Path]:
    """Yields a new folder for the logs of benchmark `name`'s processes (see the invariants)."""
    folder = Path(tempfile.mkdtemp(prefix=f"agentlog-bench-{name}-"))
    try:
        yield folder
    except BaseException:
        print(f"the logs of the benchmark's processes are kept in {folder}", file=sys.stderr)
        raise
    shutil.rmtree(folder, ignore_errors=True)
