"""The session state limit is the setting AGENTLOG_COMMANDS_MAX_STATE_BYTES (default 1 MiB),
passed from the command API's settings to the handler (issue 9 #8)."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from commands.api.app import create_app
from commands.api.settings import CommandsSettings
from eventstore.settings import Settings
from tests.factories import session_id, tenant_id


@asynccontextmanager
async def _client(settings: CommandsSettings, database_url: str):
    app = create_app(settings, shared=Settings(database_url=SecretStr(database_url)))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        )


async def _patch_8_kib(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, httpx.Response]:
    sid = session_id()
    assert (await client.post("/v1/sessions", json={"session_id": sid}, headers=headers)).status_code == 201
    patch = await client.patch(f"/v1/sessions/{sid}/state/notes?agent=a1", json={"text": "x" * 8192}, headers=headers)
    return sid, patch


async def test_state_size_setting_changes_the_limit_the_command_api_enforces(database_url, pool) -> None:
    tenant = tenant_id()
    headers = {"Authorization": f"Bearer {await create_key(pool, tenant, 'writer')}"}
    async with _client(CommandsSettings(max_state_bytes=4096), database_url) as small:
        sid, refused = await _patch_8_kib(small, headers)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "state_too_large" and problem["limit_bytes"] == 4096
    assert problem["errors"][0]["field"] == "state.notes"
    stored = await pool.fetchval("SELECT version FROM streams WHERE tenant = $1 AND session_id = $2", tenant, sid)
    assert stored == 1  # nothing written
    async with _client(CommandsSettings(), database_url) as default:
        _, accepted = await _patch_8_kib(default, headers)
    assert accepted.status_code == 200 and accepted.json()["version"] == 2, accepted.text
