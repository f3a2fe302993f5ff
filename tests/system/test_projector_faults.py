"""Postgres stopped (immediate) and restarted under the projector, on a cluster of this test's own
(never the shared stack): the projector must stay up, retry from its stored positions on a fresh
connection, and end with every event projected exactly once."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg

from agentlog.stack.postgres import PostgresCluster
from eventstore import db, migrations
from tests.factories import free_port
from tests.integration.projection_support import append, produce, running_projector, settings, support_case
from tests.waiting import wait_until

SESSIONS = 12


async def test_projector_survives_a_postgres_restart_and_projects_each_event_once(
    kafka_bootstrap: str, topic: str
) -> None:
    # The postgres user must reach the data folder: pytest's tmp_path is private to root.
    home = Path(tempfile.mkdtemp(prefix="agentlog-projector-pg-", dir="/var/tmp"))
    home.chmod(0o755)
    cluster = PostgresCluster(home=home, port=free_port())
    cluster.init()
    cluster.start()
    try:
        await cluster.wait_ready()
        await asyncio.to_thread(migrations.upgrade, cluster.dsn)
        pool = await db.create_pool(cluster.dsn, min_size=1, max_size=4)
        try:
            recorded = []
            for i in range(SESSIONS):
                recorded += await append(pool, "t1", f"s-fault-{i}", support_case())
            half = len(recorded) // 2
            await produce(kafka_bootstrap, topic, recorded[:half])
            async with running_projector(pool, kafka_bootstrap, topic, settings(batch_size=10)) as projector:
                await wait_until(
                    lambda: projector.totals.applied >= half, timeout=60, message="the first half projected"
                )
                await asyncio.to_thread(cluster.stop, "immediate")
                # Records arriving while Postgres is away: the projector fetches them and fails.
                await produce(kafka_bootstrap, topic, recorded[half:])
                await wait_until(
                    lambda: (projector.metrics.registry.get_sample_value("agentlog_projector_retries_total") or 0) >= 1,
                    timeout=30,
                    message="a failed batch while Postgres is away",
                )
                cluster.start()
                await cluster.wait_ready()
                await wait_until(
                    lambda: _timeline_rows(pool, len(recorded)),
                    timeout=90,
                    message="every event projected after the restart",
                )
                # The rows are visible once the last batch committed, its counts a moment later.
                await wait_until(
                    lambda: projector.totals.applied >= len(recorded), timeout=10, message="the last batch counted"
                )
                assert projector.totals.applied == len(recorded)
                assert not projector.task.done(), "the projector must still be running"
                assert not projector.totals.parked
            counts = await _counts(pool)
        finally:
            await pool.close()
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    per_session = len(recorded) // SESSIONS
    assert counts == {
        "events": len(recorded),
        "timeline": len(recorded),
        "summaries": SESSIONS,
        "last_versions": {per_session},
    }


async def _timeline_rows(pool: asyncpg.Pool, n: int) -> bool:
    try:
        return await pool.fetchval("SELECT count(*) FROM session_timeline_v1") >= n
    except db.CONNECTION_ERRORS:
        return False


async def _counts(pool: asyncpg.Pool) -> dict:
    return {
        "events": await pool.fetchval("SELECT count(*) FROM events"),
        "timeline": await pool.fetchval("SELECT count(*) FROM session_timeline_v1"),
        "summaries": await pool.fetchval("SELECT count(*) FROM session_summaries_v1"),
        "last_versions": {r[0] for r in await pool.fetch("SELECT last_version FROM session_summaries_v1")},
    }
