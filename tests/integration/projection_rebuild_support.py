"""Test data for rebuild tests: support cases projected live by the projector's own applier (one
session with a poison event that some projections park), and the changes a test makes to live
rows or to the log while a rebuild runs.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from eventstore import db
from eventstore import events as ev
from projections.projector.applier import BatchApplier
from projections.read_models import timeline
from projections.read_models.catalog import BY_NAME, PROJECTIONS
from projections.read_models.projection import Projection, Write
from tests.integration.projection_support import append, insert_raw, support_case
from tests.waiting import wait_until

GROUP = "agentlog.test.rebuild.v1"
POISON = {"role": "user", "body": "a v1 payload no upcaster understands"}
SHADOW_SCHEMAS = r"SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'agentlog\_rebuild\_%'"
RETIRED_SCHEMAS = r"SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'agentlog\_retired\_%'"


@pytest.fixture
async def fresh_pool(fresh_database_url: str):
    """A pool on a migrated database of the test's own (a rebuild reads the whole log)."""
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=6)
    yield pool
    await pool.close()


async def project_live(pool: asyncpg.Pool, recorded: list, group: str = GROUP) -> None:
    """What the projector does with a batch: all projections, one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await BatchApplier(PROJECTIONS, group, max_retries=1).apply(conn, recorded)


async def seed(pool: asyncpg.Pool, sessions: int, tenants=("t1", "t2"), group: str = GROUP) -> list:
    """Support cases projected live, one session with a poison event (parked in some projections)."""
    recorded = []
    for i in range(sessions):
        recorded += await append(pool, tenants[i % len(tenants)], f"s-{i:03d}-{uuid.uuid4().hex[:4]}", support_case())
    sick = "sick-" + uuid.uuid4().hex[:6]
    recorded += await append(pool, "t1", sick, support_case()[:2])
    recorded.append(await insert_raw(pool, "t1", sick, 3, "MessageAdded", 1, POISON))
    recorded += await append(pool, "t1", sick, support_case()[2:], first_version=4)
    await project_live(pool, recorded, group)
    await readable(pool)
    return recorded


async def readable(pool: asyncpg.Pool) -> None:
    """Wait until a rebuild's read-all sees every event written so far. It holds back rows of
    transactions newer than the oldest one open anywhere on the server (eventstore/positions.py),
    and the server is shared with other tests: without this, how far a rebuild gets before the
    swap catches it up would depend on them."""
    await wait_until(lambda: _all_readable(pool), timeout=60, message="the log to be below the read-all horizon")


async def _all_readable(pool: asyncpg.Pool) -> bool:
    return await pool.fetchval(
        "SELECT COALESCE(max(transaction_id) < pg_snapshot_xmin(pg_current_snapshot()), true) FROM events"
    )


async def damage(pool: asyncpg.Pool, name: str) -> None:
    """Live rows that drifted from the log (a bug fixed since, a manual edit, a lost parked row)."""
    for table in BY_NAME[name].tables:
        await pool.execute(f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} LIMIT 5)")
    await pool.execute("DELETE FROM projection_parked_events WHERE projection = $1", name)
    if name == "session_summaries":
        await pool.execute("UPDATE session_summaries_v1 SET has_parked_events = false")


async def add_messages(
    pool: asyncpg.Pool, tenant: str, session_id: str, n: int, *, live: bool, group: str = GROUP
) -> list:
    """n more messages appended to a session's log; with `live`, projected as the projector would."""
    version = await pool.fetchval(
        "SELECT max(version) FROM events WHERE tenant = $1 AND session_id = $2", tenant, session_id
    )
    messages = [ev.MessageAdded(role="user", content=f"later {i}") for i in range(n)]
    recorded = await append(pool, tenant, session_id, messages, first_version=version + 1)
    if live:
        await project_live(pool, recorded, group)
    await readable(pool)
    return recorded


def _shouting(recorded, event) -> list[Write]:
    """A changed handler: the timeline line of a message in capitals."""
    writes = timeline.on_event(recorded, event)
    if not isinstance(event, ev.MessageAdded):
        return writes
    return [Write(w.sql, (*w.args[:5], w.args[5].upper(), *w.args[6:])) for w in writes]


SHOUTING = tuple(
    Projection(p.name, p.tables, {cls: _shouting for cls in p.handlers}) if p.name == "session_timeline" else p
    for p in PROJECTIONS
)
