"""Overload is answered at once with 503 `overloaded` + Retry-After (issue 9 #13), never by a queue
that lasts until clients time out, and never on the ops routes.

The requests that fill the bound are held by a real dependency, deterministically: command API
writes wait to insert their events, behind a table lock the test holds in Postgres; query API reads wait for a
projection version that the test writes when it lets them go. No sleeps: the test waits until
Postgres (or the waiter) shows them held.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import httpx
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from commands.api.app import create_app as create_command_app
from commands.api.settings import CommandsSettings
from eventstore.settings import Settings
from projections.api.app import create_app as create_query_app
from projections.settings import QueriesSettings
from tests.factories import group_id, session_id, tenant_id
from tests.waiting import wait_until

OPS = ("/healthz", "/readyz", "/metrics")


@asynccontextmanager
async def _client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=60)
        )


def _shared(database_url: str) -> Settings:
    return Settings(database_url=SecretStr(database_url))


async def _key(pool, tenant: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_key(pool, tenant, role)}"}


def _assert_overloaded(response: httpx.Response, max_in_flight: int) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1" and response.headers["x-request-id"]
    problem = response.json()
    assert problem["code"] == "overloaded" and problem["max_in_flight"] == max_in_flight


@asynccontextmanager
async def _appends_held(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A SHARE lock on events until the block ends: every append's insert waits for it (reads do
    not), whichever way it appends (the one-statement append takes no per-session lock)."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE events IN SHARE MODE")
            yield conn
    finally:
        await conn.close()


async def _blocked_by(pool, holder: asyncpg.Connection) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", holder.get_server_pid()
    )


async def _two_blocked(pool, holder: asyncpg.Connection) -> bool:
    return await _blocked_by(pool, holder) == 2


async def test_overload_command_api_over_its_in_flight_bound_is_503_with_retry_after_and_ops_are_served(
    database_url, pool
) -> None:
    tenant = tenant_id()
    app = create_command_app(CommandsSettings(max_in_flight=2), shared=_shared(database_url))
    writer = await _key(pool, tenant, "writer")
    async with _client(app) as c:
        sid = session_id()
        assert (await c.post("/v1/sessions", json={"session_id": sid}, headers=writer)).status_code == 201
        async with _appends_held(database_url) as holder:
            held = [
                asyncio.create_task(
                    c.post(f"/v1/sessions/{sid}/messages", json={"role": "user", "content": f"m{i}"}, headers=writer)
                )
                for i in range(2)
            ]
            await wait_until(
                lambda: _two_blocked(pool, holder), timeout=30, message="both writes waiting to insert their events"
            )
            refused_sid = session_id()
            refused = await c.post("/v1/sessions", json={"session_id": refused_sid}, headers=writer)
            _assert_overloaded(refused, 2)
            assert refused.headers["connection"] == "close"  # its body was never read
            _assert_overloaded(await c.get(f"/v1/sessions/{sid}", headers=writer), 2)  # even a 404 route
            for path in OPS:
                assert (await c.get(path)).status_code == 200, path
            assert not any(task.done() for task in held)
        answers = await asyncio.gather(*held)
        assert sorted(a.json()["version"] for a in answers) == [2, 3], [a.text for a in answers]
        # the bound frees as the held requests finish
        assert (await c.post("/v1/sessions", json={"session_id": refused_sid}, headers=writer)).status_code == 201
    count = await pool.fetchval(
        "SELECT count(*) FROM events WHERE tenant = $1 AND session_id = $2", tenant, refused_sid
    )
    assert count == 1  # the refused attempt wrote nothing; the retry wrote its one event


async def test_overload_query_api_over_its_in_flight_bound_is_503_with_retry_after_and_ops_are_served(
    database_url, pool
) -> None:
    tenant, group = tenant_id(), group_id("overload")
    app = create_query_app(QueriesSettings(max_in_flight=2, projector_group=group), shared=_shared(database_url))
    reader = await _key(pool, tenant, "reader")
    sid = session_id()
    async with _client(app) as q:
        waiter = app.state.reads.waiter
        held = [
            asyncio.create_task(q.get(f"/v1/sessions/{sid}?min_version=1&wait_ms=30000", headers=reader))
            for _ in range(2)
        ]
        await wait_until(lambda: waiter.waiting == 2, timeout=30, message="both reads waiting for the projection")
        _assert_overloaded(await q.get("/v1/sessions", headers=reader), 2)
        for path in OPS:
            assert (await q.get(path)).status_code == 200, path
        assert not any(task.done() for task in held)
        # what the projector would write: the session processed up to version 1
        await pool.execute(
            "INSERT INTO projection_session_versions (projector, tenant, session_id, version, position) "
            "VALUES ($1, $2, $3, 1, 0)",
            group,
            tenant,
            sid,
        )
        answers = await asyncio.gather(*held)
        # released and served (the session has no summary row: 404), not refused
        assert [a.status_code for a in answers] == [404, 404], [a.text for a in answers]
        assert (await q.get("/v1/sessions", headers=reader)).status_code == 200
    await pool.execute("DELETE FROM projection_session_versions WHERE projector = $1", group)


def test_overload_in_flight_bound_has_a_documented_default_above_the_tests_and_benchmarks_concurrency() -> None:
    # 200 concurrent reads (test_query_api), 100 concurrent writers (test_command_api_contention),
    # bench_e2e's 200 connections: all below the default bound
    assert CommandsSettings().max_in_flight == 256 and QueriesSettings().max_in_flight == 512
