"""A component started while PostgreSQL is down waits for it (AGENTLOG_DATABASE_STARTUP_WAIT_S,
a log line per attempt) and then does its job; one that PostgreSQL refuses (a missing database)
or that cannot reach it within the wait exits with 2 and one clear line, no traceback.

Issue 9: `agentlog project` exited at once ("cannot reach a service", exit 1) when Postgres was not
up yet, and the APIs died in uvicorn's lifespan with a traceback and exit 3. Every component now
goes through the same start-up gate (agentlog/cli/process.py, eventstore/db.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import asyncpg

from eventstore import db
from tests.factories import free_port, with_database
from tests.integration.projection_support import append, produce, support_case
from tests.system.processes import Component, postgres_of_its_own, system_env
from tests.waiting import wait_until

SESSIONS = 4


async def test_projector_started_while_postgres_is_down_waits_then_projects_every_event(
    kafka_bootstrap: str, topic: str, tmp_path
) -> None:
    async with postgres_of_its_own("agentlog-startup-pg-") as cluster:
        recorded = await _recorded_and_produced(cluster.dsn, kafka_bootstrap, topic)
        await asyncio.to_thread(cluster.stop, "immediate")
        env = system_env(cluster.dsn, kafka_bootstrap, topic, AGENTLOG_DATABASE_STARTUP_WAIT_S="60")
        projector = Component("projector", ["project"], env, tmp_path).start()
        try:
            waiting = f"waiting for PostgreSQL at 127.0.0.1:{cluster.port}: "
            await wait_until(
                lambda: projector.log().count(waiting) >= 2 or not projector.running(),
                timeout=30,
                message="two start-up attempts logged",
            )
            assert projector.running(), projector.log()
            assert "retrying in " in projector.log()
            await asyncio.to_thread(cluster.start)
            await cluster.wait_ready()
            await projector.wait_ready(timeout=60)
            await wait_until(
                lambda: _timeline_rows(cluster.dsn, len(recorded)), timeout=60, message="every event projected"
            )
            assert projector.incarnation == 1 and projector.running()
        finally:
            code = projector.stop()
        assert code == 0, projector.log()
        assert "Traceback" not in projector.log()


async def test_projector_with_a_missing_database_fails_fast_with_a_clear_message_and_exit_code_2(
    services, kafka_bootstrap: str, topic: str, tmp_path
) -> None:
    missing = f"agentlog_missing_{uuid.uuid4().hex[:8]}"
    dsn = with_database(services.database_url(), missing)
    # A long wait: had the projector waited on this, it would not have exited within the deadline.
    env = system_env(dsn, kafka_bootstrap, topic, AGENTLOG_DATABASE_STARTUP_WAIT_S="600")
    projector = Component("projector", ["project"], env, tmp_path).start()
    started = time.monotonic()
    try:
        code = await asyncio.to_thread(projector.proc.wait, 30)
    except subprocess.TimeoutExpired:
        projector.kill()
        raise AssertionError(f"the projector did not fail fast:\n{projector.log()}") from None
    output = projector.log()
    assert code == 2, output
    assert (
        f'projector refuses to run: PostgreSQL at {db.server_address(dsn)} refused the connection: database "{missing}" does not exist'
        in output
    )
    assert "waiting for PostgreSQL" not in output and "Traceback" not in output
    print(f"\nexited {code} after {time.monotonic() - started:.1f} s (process start included)")


async def test_query_api_gives_up_after_the_startup_wait_with_exit_code_2(kafka_bootstrap: str, topic: str, tmp_path):
    dsn = f"postgresql://agentlog@127.0.0.1:{free_port()}/agentlog"  # nothing listens there
    env = system_env(
        dsn, kafka_bootstrap, topic, AGENTLOG_DATABASE_STARTUP_WAIT_S="1", AGENTLOG_QUERIES_PORT=str(free_port())
    )
    api = Component("queries", ["serve", "queries"], env, tmp_path).start()
    try:
        code = await asyncio.to_thread(api.proc.wait, 30)
    except subprocess.TimeoutExpired:
        api.kill()
        raise AssertionError(f"the query API did not give up:\n{api.log()}") from None
    output = api.log()
    assert code == 2, output
    assert f"waiting for PostgreSQL at {db.server_address(dsn)}: " in output
    assert "query API refuses to run: PostgreSQL at " in output
    assert "is not reachable after waiting 1 s (AGENTLOG_DATABASE_STARTUP_WAIT_S)" in output
    assert "Traceback" not in output


async def _recorded_and_produced(dsn: str, bootstrap: str, topic: str) -> list:
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    try:
        recorded = []
        for i in range(SESSIONS):
            recorded += await append(pool, "t1", f"s-startup-{i}", support_case())
    finally:
        await pool.close()
    await produce(bootstrap, topic, recorded)
    return recorded


async def _timeline_rows(dsn: str, n: int) -> bool:
    try:
        conn = await asyncpg.connect(dsn)
    except db.CONNECTION_ERRORS:
        return False
    try:
        return await conn.fetchval("SELECT count(*) FROM session_timeline_v1") == n
    finally:
        await conn.close()
