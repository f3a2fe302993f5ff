"""Per-key rate limits through the real apps and the real Postgres (issue 9 #13: one runaway agent
cannot starve its neighbours): a key over its rate gets 429 `rate_limited` with Retry-After and
nothing is written, while another tenant's key is served; per-tenant overrides; served again after
Retry-After. The bucket arithmetic has unit tests on an injected clock (tests/unit/test_rate_limit.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from agentlog.edge.rate_limit import TenantRateLimit
from commands.api.app import create_app as create_command_app
from commands.api.settings import CommandsSettings
from eventstore.settings import Settings
from projections.api.app import create_app as create_query_app
from projections.settings import QueriesSettings
from tests.factories import session_id, tenant_id
from tests.waiting import wait_until

SLOW = 0.05  # tokens per second: none comes back during a test's burst


@asynccontextmanager
async def _client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        )


def _shared(database_url: str) -> Settings:
    return Settings(database_url=SecretStr(database_url))


async def _key(pool, tenant: str, role: str = "writer") -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_key(pool, tenant, role)}"}


async def _events_of(pool, tenant: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM events WHERE tenant = $1", tenant)


def _start(client: httpx.AsyncClient, headers: dict[str, str]) -> Callable[[], Awaitable[httpx.Response]]:
    return lambda: client.post("/v1/sessions", json={"session_id": session_id()}, headers=headers)


def _assert_rate_limited(response: httpx.Response, *, limit_per_s: float, burst: int) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "rate_limited" and problem["status"] == 429
    assert problem["limit_per_s"] == limit_per_s and problem["burst"] == burst
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1 and int(retry_after) == problem["retry_after_s"]
    assert response.headers["x-request-id"]
    return int(retry_after)


async def test_rate_limit_command_api_key_over_its_rate_gets_429_while_another_tenants_key_is_served(
    database_url, pool
) -> None:
    runaway, neighbour = tenant_id(), tenant_id()
    app = create_command_app(CommandsSettings(rate_limit_per_s=SLOW, rate_limit_burst=5), shared=_shared(database_url))
    runaway_key, neighbour_key = await _key(pool, runaway), await _key(pool, neighbour)
    async with _client(app) as c:
        started = time.monotonic()
        calls = [("runaway", _start(c, runaway_key)()) for _ in range(40)]
        for i in range(5):  # the neighbour's requests arrive in the middle of the runaway's burst
            calls.insert(8 * i + 4, ("neighbour", _start(c, neighbour_key)()))
        answers = await asyncio.gather(*(call for _, call in calls))
        elapsed = time.monotonic() - started
    theirs = [a for (who, _), a in zip(calls, answers, strict=True) if who == "runaway"]
    others = [a for (who, _), a in zip(calls, answers, strict=True) if who == "neighbour"]
    assert [a.status_code for a in others] == [201] * 5, [a.text for a in others]
    served = [a for a in theirs if a.status_code == 201]
    assert 5 <= len(served) <= 5 + int(elapsed * SLOW) + 1, len(served)
    for refused in (a for a in theirs if a.status_code != 201):
        assert _assert_rate_limited(refused, limit_per_s=SLOW, burst=5) >= 1
    # a refused request wrote nothing; the neighbour's were all stored
    assert await _events_of(pool, runaway) == len(served)
    assert await _events_of(pool, neighbour) == 5


async def test_rate_limit_query_api_key_over_its_rate_gets_429_while_another_tenants_key_is_served(
    database_url, pool
) -> None:
    runaway, neighbour = tenant_id(), tenant_id()
    app = create_query_app(QueriesSettings(rate_limit_per_s=SLOW, rate_limit_burst=3), shared=_shared(database_url))
    runaway_key, neighbour_key = await _key(pool, runaway, "reader"), await _key(pool, neighbour, "reader")
    async with _client(app) as q:
        calls = [("runaway", q.get("/v1/sessions", headers=runaway_key)) for _ in range(20)]
        for i in range(3):
            calls.insert(6 * i + 2, ("neighbour", q.get("/v1/sessions", headers=neighbour_key)))
        answers = await asyncio.gather(*(call for _, call in calls))
    theirs = [a.status_code for (who, _), a in zip(calls, answers, strict=True) if who == "runaway"]
    others = [a.status_code for (who, _), a in zip(calls, answers, strict=True) if who == "neighbour"]
    assert others == [200] * 3
    assert theirs.count(200) >= 3 and theirs.count(429) >= 16, theirs
    refused = next(a for (who, _), a in zip(calls, answers, strict=True) if who == "runaway" and a.status_code == 429)
    _assert_rate_limited(refused, limit_per_s=SLOW, burst=3)


async def test_rate_limit_per_tenant_overrides_replace_the_default(database_url, pool) -> None:
    default, strict, generous, unlimited = (tenant_id() for _ in range(4))
    settings = CommandsSettings(
        rate_limit_per_s=SLOW,
        rate_limit_burst=3,
        rate_limit_by_tenant={
            strict: TenantRateLimit(per_s=SLOW, burst=1),
            generous: TenantRateLimit(per_s=1000, burst=60),
            unlimited: TenantRateLimit(per_s=0),
        },
    )
    app = create_command_app(settings, shared=_shared(database_url))
    keys = {tenant: await _key(pool, tenant) for tenant in (default, strict, generous, unlimited)}
    async with _client(app) as c:

        async def statuses(tenant: str, n: int) -> list[int]:
            return [(await _start(c, keys[tenant])()).status_code for _ in range(n)]

        assert await statuses(strict, 2) == [201, 429]
        assert await statuses(default, 4) == [201, 201, 201, 429]
        assert await statuses(generous, 60) == [201] * 60
        assert await statuses(unlimited, 80) == [201] * 80
        refused = await _start(c, keys[strict])()
        _assert_rate_limited(refused, limit_per_s=SLOW, burst=1)
    assert [await _events_of(pool, t) for t in (strict, default, generous, unlimited)] == [1, 3, 60, 80]


async def test_rate_limit_key_is_served_again_after_its_retry_after(database_url, pool) -> None:
    tenant = tenant_id()
    app = create_command_app(CommandsSettings(rate_limit_per_s=2, rate_limit_burst=1), shared=_shared(database_url))
    headers = await _key(pool, tenant)
    async with _client(app) as c:
        assert (await _start(c, headers)()).status_code == 201
        refused = await _start(c, headers)()
        retry_after = _assert_rate_limited(refused, limit_per_s=2, burst=1)
        assert retry_after == 1  # half a second to the next token, rounded up

        async def served() -> bool:
            return (await _start(c, headers)()).status_code == 201

        # refusals take no token, so polling does not push the key's turn back
        await wait_until(served, timeout=retry_after + 5, interval=0.1, message="the key served again")
    assert await _events_of(pool, tenant) == 2


async def test_rate_limit_bad_key_is_401_not_counted_and_ops_routes_are_never_limited(database_url, pool) -> None:
    tenant = tenant_id()
    app = create_command_app(CommandsSettings(rate_limit_per_s=SLOW, rate_limit_burst=1), shared=_shared(database_url))
    headers = await _key(pool, tenant)
    async with _client(app) as c:
        for _ in range(3):
            bad = await c.post("/v1/sessions", json={}, headers={"Authorization": f"Bearer al_x_{uuid.uuid4().hex}"})
            assert bad.status_code == 401
        assert (await _start(c, headers)()).status_code == 201
        assert (await _start(c, headers)()).status_code == 429
        for path in ("/healthz", "/readyz", "/metrics"):
            assert [(await c.get(path, headers=headers)).status_code for _ in range(5)] == [200] * 5, path
