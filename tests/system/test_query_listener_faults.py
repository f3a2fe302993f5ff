"""Postgres stopped (immediate) and restarted under the query API's read-your-writes waiter, on a
cluster of this test's own (never the shared stack): the LISTEN connection must come back by itself,
so waits are answered by the projector's notification again, not by the fallback poll."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg

from agentlog.stack.postgres import PostgresCluster
from eventstore import db, migrations
from projections.api.waiting import ProjectionWaiter
from projections.settings import NOTIFY_CHANNEL
from tests.factories import free_port
from tests.waiting import wait_until

GROUP = "agentlog.test.listener.v1"
# Longer than any wait below: a wait that is answered at all was answered by a notification.
POLL_S = 600.0


async def test_query_listener_reconnects_after_a_postgres_restart_and_notifications_answer_waits_again() -> None:
    # The postgres user must reach the data folder: pytest's tmp_path is private to root.
    home = Path(tempfile.mkdtemp(prefix="agentlog-listener-pg-", dir="/var/tmp"))
    home.chmod(0o755)
    cluster = PostgresCluster(home=home, port=free_port())
    cluster.init()
    cluster.start()
    try:
        await cluster.wait_ready()
        await asyncio.to_thread(migrations.upgrade, cluster.dsn)
        pool = await db.create_pool(cluster.dsn, min_size=1, max_size=4)
        waiter = ProjectionWaiter(cluster.dsn, pool, GROUP, POLL_S)
        await waiter.start()
        try:
            assert waiter.listening and waiter.listens == 1
            assert await _answered_by_notification(cluster.dsn, waiter, "s-before") == 1
            await asyncio.to_thread(cluster.stop, "immediate")
            await wait_until(lambda: not waiter.listening, message="the listener sees the connection go")
            cluster.start()
            await cluster.wait_ready()
            await wait_until(lambda: waiter.listening, timeout=60, message="the listener is back")
            assert waiter.listens == 2
            await wait_until(lambda: _pool_answers(pool), message="the pool reconnects")
            assert await _answered_by_notification(cluster.dsn, waiter, "s-after") == 1
        finally:
            await waiter.close()
            await pool.close()
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


async def _answered_by_notification(dsn: str, waiter: ProjectionWaiter, session_id: str) -> int:
    """Start a wait, then project its version and NOTIFY as the projector does; the wait's answer."""
    wait = asyncio.create_task(waiter.wait_for_version("t1", session_id, 1, timeout_s=30))
    await wait_until(lambda: waiter.waiting == 1, message="the wait registered")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO projection_session_versions (projector, tenant, session_id, version, position) "
            "VALUES ($1, 't1', $2, 1, 1)",
            GROUP,
            session_id,
        )
        await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    finally:
        await conn.close()
    return await wait


async def _pool_answers(pool: asyncpg.Pool) -> bool:
    try:
        return await pool.fetchval("SELECT 1") == 1
    except db.CONNECTION_ERRORS:
        return False
