"""ProjectionWaiter on a real Postgres: one version query per wake for all waiting reads.

Versions are written to projection_session_versions and notified on agentlog_projected the way
the projector's BatchApplier does (same transaction), on a database of the test's own so no other
projector's notifications arrive. Every statement on the waiter's pool is recorded by an asyncpg
query logger, so "how many queries" is counted by the driver, not by the code under test.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, Counter

from eventstore import db
from projections.api.waiting import APPLIED_MANY, ProjectionBehindError, ProjectionWaiter
from projections.settings import NOTIFY_CHANNEL
from tests.factories import free_port
from tests.waiting import wait_until

GROUP = "agentlog.test.waiting.v1"
NO_POLL = 60.0  # longer than any test: only notifications wake the refresher

UPSERT = """
INSERT INTO projection_session_versions (projector, tenant, session_id, version, position)
SELECT $1, t, s, v, v FROM unnest($2::text[], $3::text[], $4::bigint[]) AS k(t, s, v)
ON CONFLICT (projector, tenant, session_id) DO UPDATE SET version = EXCLUDED.version
"""


class _Recorded:
    """A pool whose every statement is logged by the driver."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.pool: asyncpg.Pool | None = None

    async def _init(self, conn: asyncpg.Connection) -> None:
        await db.init_connection(conn)
        conn.add_query_logger(lambda logged: self.statements.append(logged.query))

    def count(self, sql: str) -> int:
        return sum(1 for statement in self.statements if statement == sql)

    def on_versions(self) -> int:
        return sum(1 for statement in self.statements if "projection_session_versions" in statement)


@pytest.fixture
async def recorded(fresh_database_url: str):
    r = _Recorded()
    r.pool = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=8, init=r._init)
    yield r
    await r.pool.close()


@pytest.fixture
async def owner(fresh_database_url: str):
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


def _metrics() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    return registry, Counter("agentlog_queries_wait_refreshes", "test", registry=registry)


async def _started(waiter: ProjectionWaiter):
    await waiter.start()
    return waiter


async def _project(pool: asyncpg.Pool, versions: dict[tuple[str, str], int], *, notify: bool = True) -> None:
    """What a projector batch commit leaves behind: new versions and (optionally) one NOTIFY."""
    keys = list(versions)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(UPSERT, GROUP, [k[0] for k in keys], [k[1] for k in keys], list(versions.values()))
        if notify:
            await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, "0")


def _sessions(n: int) -> list[tuple[str, str]]:
    return [("acme", f"s-{uuid.uuid4().hex[:8]}") for _ in range(n)]


async def test_waiter_releases_200_waits_on_50_sessions_with_one_query_per_notification(
    fresh_database_url, recorded, owner
) -> None:
    registry, refreshes = _metrics()
    waiter = await _started(ProjectionWaiter(fresh_database_url, recorded.pool, GROUP, NO_POLL, refreshes=refreshes))
    try:
        sessions = _sessions(50)
        waits = {
            (key, wanted): asyncio.create_task(waiter.wait_for_version(*key, wanted, 30))
            for key in sessions
            for wanted in (1, 2, 3, 4)
        }
        await wait_until(lambda: waiter.waiting == 200, timeout=30, message="200 waits registered")
        assert recorded.count(APPLIED_MANY) == 0

        await _project(owner, {key: 2 for key in sessions})
        await wait_until(
            lambda: sum(t.done() for t in waits.values()) == 100,
            timeout=30,
            message="the waits for versions 1 and 2 released",
        )
        assert (recorded.count(APPLIED_MANY), waiter.waiting) == (1, 100)

        await _project(owner, {key: 4 for key in sessions})
        answers = await asyncio.wait_for(asyncio.gather(*waits.values()), 30)
        assert answers == [2 if wanted <= 2 else 4 for (_, wanted) in waits]
        assert recorded.count(APPLIED_MANY) == 2
        assert registry.get_sample_value("agentlog_queries_wait_refreshes_total") == 2
        assert recorded.on_versions() == 200 + 2  # each wait's own first check, then one per wake
        assert waiter.waiting == 0
    finally:
        await waiter.close()


async def test_waiter_fast_path_is_one_query_without_registration_when_caught_up(
    fresh_database_url, recorded, owner
) -> None:
    waiter = await _started(ProjectionWaiter(fresh_database_url, recorded.pool, GROUP, NO_POLL))
    try:
        [key] = _sessions(1)
        await _project(owner, {key: 3})
        assert await waiter.wait_for_version(*key, 2, 5) == 3
        assert (recorded.on_versions(), waiter.waiting) == (1, 0)
    finally:
        await waiter.close()


async def test_waiter_polls_when_no_notification_is_sent(fresh_database_url, recorded, owner) -> None:
    waiter = await _started(ProjectionWaiter(fresh_database_url, recorded.pool, GROUP, 0.05))
    try:
        sessions = _sessions(50)
        waits = [
            asyncio.create_task(waiter.wait_for_version(*key, 1 + i % 4, 30)) for i in range(4) for key in sessions
        ]
        await wait_until(lambda: waiter.waiting == 200, timeout=30, message="200 waits registered")
        single_checks = recorded.on_versions() - recorded.count(APPLIED_MANY)
        await _project(owner, {key: 4 for key in sessions}, notify=False)
        assert await asyncio.wait_for(asyncio.gather(*waits), 30) == [4] * 200
        # Polling is the waiter's one refresh statement, never a query per waiting request.
        assert recorded.on_versions() - recorded.count(APPLIED_MANY) == single_checks
        assert waiter.waiting == 0
    finally:
        await waiter.close()


async def test_waiter_polls_when_listen_connection_is_unavailable(recorded, owner) -> None:
    nowhere = f"postgresql://agentlog@127.0.0.1:{free_port()}/agentlog"
    waiter = await _started(ProjectionWaiter(nowhere, recorded.pool, GROUP, 0.05))
    try:
        [key] = _sessions(1)
        wait = asyncio.create_task(waiter.wait_for_version(*key, 2, 30))
        await wait_until(lambda: waiter.waiting == 1, timeout=30, message="wait registered")
        await _project(owner, {key: 2})
        assert await asyncio.wait_for(wait, 30) == 2
        assert waiter.waiting == 0
    finally:
        await waiter.close()


async def test_waiter_cancelled_mid_wait_leaves_no_registration(fresh_database_url, recorded, owner) -> None:
    waiter = await _started(ProjectionWaiter(fresh_database_url, recorded.pool, GROUP, NO_POLL))
    try:
        [key] = _sessions(1)
        gone, stays = (asyncio.create_task(waiter.wait_for_version(*key, 2, 30)) for _ in range(2))
        await wait_until(lambda: waiter.waiting == 2, timeout=30, message="both waits registered")
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert waiter.waiting == 1
        await _project(owner, {key: 2})
        assert await asyncio.wait_for(stays, 30) == 2
        assert waiter.waiting == 0
    finally:
        await waiter.close()


async def test_waiter_deadline_raises_projection_behind_with_current_version(
    fresh_database_url, recorded, owner
) -> None:
    waiter = await _started(ProjectionWaiter(fresh_database_url, recorded.pool, GROUP, NO_POLL))
    try:
        [key] = _sessions(1)
        await _project(owner, {key: 2})
        with pytest.raises(ProjectionBehindError) as behind:
            await waiter.wait_for_version(*key, 5, 0.2)
        body = behind.value.problem()
        assert (body["status"], body["code"], body["wanted_version"], body["current_version"]) == (
            504,
            "projection_behind",
            5,
            2,
        )
        assert waiter.waiting == 0
    finally:
        await waiter.close()


class _NotifiedDuringCheck(ProjectionWaiter):
    """Its first check answers only after the projector's commit has been notified to it."""

    project: object = None

    async def applied_version(self, tenant: str, session_id: str) -> int:
        current = await super().applied_version(tenant, session_id)
        if self.project is not None:
            project, self.project, seen = self.project, None, self._notifications
            await project()
            await wait_until(lambda: self._notifications > seen, timeout=30, message="NOTIFY delivered")
        return current


async def test_waiter_notification_between_check_and_registration_is_not_lost(
    fresh_database_url, recorded, owner
) -> None:
    waiter = await _started(_NotifiedDuringCheck(fresh_database_url, recorded.pool, GROUP, NO_POLL))
    try:
        [key] = _sessions(1)
        waiter.project = lambda: _project(owner, {key: 1})
        # No poll and no later NOTIFY: only the refresh asked for at registration can release it.
        assert await waiter.wait_for_version(*key, 1, 10) == 1
        # Released by that refresh, not by the check a wait makes at its deadline.
        assert (recorded.count(APPLIED_MANY), recorded.on_versions(), waiter.waiting) == (1, 2, 0)
    finally:
        await waiter.close()
