"""`agentlog projections rebuild` killed with SIGKILL while building, while verifying and inside the
swap transaction: each rerun goes on from the stored progress (never from zero) and the last one
ends with the exact rows. Each kill point is reached deterministically: the test holds a lock the
rebuild needs next (a shadow row, the live table, the projector's checkpoints) and kills it once
Postgres shows it waiting for a lock in that phase.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import asyncpg

from eventstore import db
from projections.rebuild.job import ProjectionRebuild
from projections.settings import DEFAULT_GROUP
from tests.integration.projection_rebuild_support import add_messages, readable, seed
from tests.integration.projection_support import read_models
from tests.waiting import wait_until

SHADOW = "agentlog_rebuild_session_summaries"
WAITING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
"""
PROGRESS = f"SELECT events_done, phase, started_at FROM {SHADOW}.rebuild_progress"


def start(database_url: str) -> subprocess.Popen:
    env = {**os.environ, "AGENTLOG_DATABASE_URL": database_url}
    argv = [
        sys.executable,
        "-m",
        "agentlog",
        "projections",
        "rebuild",
        "session_summaries",
        "--batch-size",
        "20",
        "--json",
    ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


async def progress(pool: asyncpg.Pool) -> asyncpg.Record | None:
    if await pool.fetchval("SELECT to_regclass($1) IS NULL", f"{SHADOW}.rebuild_progress"):
        return None
    return await pool.fetchrow(PROGRESS)


async def kill_when_waiting(pool: asyncpg.Pool, proc: subprocess.Popen, blocker, phase: str) -> None:
    """Once the rebuild waits in `phase` for what `blocker` holds, SIGKILL it and let go."""
    await wait_until(lambda: _waiting(pool, phase), timeout=60, message=f"the rebuild to wait for a lock in {phase}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    await blocker.execute("ROLLBACK")


async def _waiting(pool: asyncpg.Pool, phase: str) -> bool:
    now = await progress(pool)
    return now is not None and now["phase"] == phase and await pool.fetchval(WAITING) > 0


async def test_projection_rebuild_killed_at_three_points_resumes_and_ends_exact(fresh_database_url) -> None:
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    blocker = await db.connect(fresh_database_url)
    try:
        recorded = await seed(pool, sessions=30, group=DEFAULT_GROUP)
        total = await pool.fetchval("SELECT count(*) FROM events")

        # 1. building: a rebuild stopped after 3 batches; its rerun goes on until the log's last
        # event, which updates a shadow row the test holds.
        (tenant, first_session), last = (recorded[0].tenant, recorded[0].session_id), total + 1
        await add_messages(pool, tenant, first_session, 1, live=True, group=DEFAULT_GROUP)
        await readable(pool)
        stopped = await ProjectionRebuild(pool, "session_summaries", batch_size=20, max_batches=3).run()
        assert (stopped.status, stopped.events) == ("interrupted", 60)
        await blocker.execute("BEGIN")
        await blocker.execute(
            f"SELECT 1 FROM {SHADOW}.session_summaries_v1 WHERE tenant = $1 AND session_id = $2 FOR UPDATE",
            tenant,
            first_session,
        )
        proc = start(fresh_database_url)
        await kill_when_waiting(pool, proc, blocker, "building")
        first = await progress(pool)
        assert 60 < first["events_done"] < last
        total = last
        expected = await read_models(pool)

        # 2. verifying: the live table is held; the comparison's snapshot read waits.
        proc = start(fresh_database_url)
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE public.session_summaries_v1 IN ACCESS EXCLUSIVE MODE")
        await kill_when_waiting(pool, proc, blocker, "verifying")
        second = await progress(pool)
        assert second["events_done"] == total and second["started_at"] == first["started_at"]

        # 3. swapping: the projector's checkpoints are held; the swap transaction waits to hold them.
        proc = start(fresh_database_url)
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE projection_checkpoints IN ACCESS EXCLUSIVE MODE")
        await kill_when_waiting(pool, proc, blocker, "swapping")
        third = await progress(pool)
        assert (third["events_done"], third["started_at"]) == (total, first["started_at"])
        assert await read_models(pool) == expected, "nothing live changed before a swap committed"

        finished = start(fresh_database_url)
        out, _ = finished.communicate(timeout=120)
        summary = json.loads(out)
        assert finished.returncode == 0
        assert (summary["status"], summary["resumed"], summary["events"]) == ("swapped", True, total)
        assert summary["drift"]["clean"]
        assert await read_models(pool) == expected
    finally:
        await blocker.close()
        await pool.close()


async def _done_at_least(pool: asyncpg.Pool, events: int) -> bool:
    now = await progress(pool)
    return now is not None and now["events_done"] >= events
