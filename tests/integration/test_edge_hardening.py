"""Issue 9 items that live in the HTTP edge, one test per guarded behaviour."""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from agentlog.edge.keys import DEFAULT_CACHE_TTL_S, create_key, list_keys, revoke_key
from commands.api.app import create_app as create_command_app
from commands.api.settings import CommandsSettings
from eventstore.settings import Settings
from projections.api.app import create_app as create_query_app
from projections.settings import QueriesSettings
from tests.waiting import wait_until


@asynccontextmanager
async def _clients(*apps):
    """Each app with its lifespan and an in-process client, in order."""
    async with AsyncExitStack() as stack:
        clients = []
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
                )
            )
        yield clients


def _shared(database_url: str) -> Settings:
    return Settings(database_url=SecretStr(database_url))


async def _writer(pool) -> dict[str, str]:
    key = await create_key(pool, f"t-{uuid.uuid4().hex[:10]}", "writer")
    return {"Authorization": f"Bearer {key}"}


async def test_edge_after_a_500_the_same_keep_alive_connection_still_works(database_url, caplog) -> None:
    app = create_command_app(CommandsSettings(), shared=_shared(database_url))

    @app.get("/test-only/boom")
    async def boom():
        raise RuntimeError("a bug")

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, timeout=20, message="uvicorn started")
        port = server.servers[0].sockets[0].getsockname()[1]
        caplog.set_level(logging.ERROR)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_connections=1)
        ) as client:
            failed = await client.get("/test-only/boom")
            assert failed.status_code == 500
            assert failed.headers["content-type"] == "application/problem+json"
            assert failed.json()["code"] == "internal_error" and "a bug" not in failed.text
            assert failed.headers["x-request-id"]
            after = await client.get("/healthz")
            assert after.status_code == 200 and after.json() == {"status": "ok"}
            assert _local_address(after) == _local_address(failed), "the connection was not kept"
        tracebacks = [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]
        assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
    finally:
        server.should_exit = True
        await serving


def _local_address(response: httpx.Response):
    return response.extensions["network_stream"].get_extra_info("client_addr")


async def test_edge_no_pool_connection_in_time_is_503_with_retry_after(database_url, pool) -> None:
    settings = CommandsSettings(pool_min_size=1, pool_size=1, pool_acquire_timeout_ms=100)
    app = create_command_app(settings, shared=_shared(database_url))
    headers = await _writer(pool)
    async with _clients(app) as [c]:
        async with app.state.pool.acquire():  # the only connection is taken
            r = await c.post("/v1/sessions", json={"session_id": f"s-{uuid.uuid4().hex[:12]}"}, headers=headers)
            ready = await c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "infrastructure_unavailable" and r.headers["retry-after"]
        assert ready.status_code == 503 and ready.json()["code"] == "infrastructure_unavailable"


async def test_edge_database_outage_is_503_and_readyz_shows_no_exception_text(database_url, pool) -> None:
    commands = create_command_app(CommandsSettings(), shared=_shared(database_url))
    queries = create_query_app(QueriesSettings(), shared=_shared(database_url))
    headers = await _writer(pool)
    async with _clients(commands, queries) as [c, q]:
        # the outage: every pooled connection is gone and no new one can be opened
        for app_pool in (commands.state.pool, queries.state.reads.pool):
            await app_pool.close()
        write = await c.post("/v1/sessions", json={"session_id": "s-outage"}, headers=headers)
        assert write.status_code == 503 and write.headers["retry-after"], write.text
        for client in (c, q):
            r = await client.get("/readyz")
            assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "infrastructure_unavailable"
            assert "closed" not in r.text.lower() and "(" not in r.json()["detail"], r.text


async def test_edge_a_body_nested_10000_deep_is_400_malformed_json(database_url, pool) -> None:
    app = create_command_app(CommandsSettings(), shared=_shared(database_url))
    headers = await _writer(pool)
    deep = b"[" * 10_000 + b"]" * 10_000
    async with _clients(app) as [c]:
        r = await c.post("/v1/sessions", content=deep, headers={**headers, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "malformed_json", r.text


def test_edge_body_limit_defaults_to_1_mib_on_both_apis() -> None:
    assert CommandsSettings().max_body_bytes == QueriesSettings().max_body_bytes == 1024 * 1024


async def test_edge_revoked_key_is_401_on_both_apis_within_the_cache_bound(database_url, pool) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    key = await create_key(pool, tenant, "writer")
    headers = {"Authorization": f"Bearer {key}"}
    commands = create_command_app(CommandsSettings(), shared=_shared(database_url))
    queries = create_query_app(QueriesSettings(), shared=_shared(database_url))
    async with _clients(commands, queries) as [c, q]:

        async def statuses() -> tuple[int, int]:
            write = await c.post("/v1/sessions", json={"session_id": f"s-{uuid.uuid4().hex[:12]}"}, headers=headers)
            return write.status_code, (await q.get("/v1/sessions", headers=headers)).status_code

        assert await statuses() == (201, 200)  # both verifiers now cache the good key
        [info] = [k for k in await list_keys(pool, tenant)]
        assert await revoke_key(pool, info.key_id)
        await wait_until(
            lambda: _both_401(statuses),
            timeout=DEFAULT_CACHE_TTL_S + 1,
            message="revoked key refused by both APIs within the cache TTL",
        )
    [info] = await list_keys(pool, tenant)
    assert info.revoked_at is not None


async def _both_401(statuses) -> bool:
    return await statuses() == (401, 401)


@pytest.mark.parametrize("settings", [CommandsSettings(), QueriesSettings()])
def test_edge_pool_acquire_timeout_has_a_2_s_default(settings) -> None:
    assert settings.pool_acquire_timeout_ms == 2_000 and settings.auth_cache_ttl_s == DEFAULT_CACHE_TTL_S
