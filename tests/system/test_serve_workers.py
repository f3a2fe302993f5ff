"""`agentlog serve commands` with AGENTLOG_COMMANDS_WORKERS > 1: uvicorn starts each worker through
the `worker_app` factory, which builds that process's settings from the environment."""

from __future__ import annotations

import httpx

from agentlog.edge import keys as auth
from eventstore import db
from tests.factories import free_port, session_id
from tests.system.processes import Component, system_env


async def _key(database_url: str) -> str:
    conn = await db.connect(database_url)
    try:
        return await auth.create_key(conn, "workers", "writer", "test_serve_workers")
    finally:
        await conn.close()


async def test_serve_commands_with_two_workers_answers_writes(database_url, kafka_bootstrap, tmp_path) -> None:
    port = free_port()
    env = system_env(
        database_url, kafka_bootstrap, "unused", AGENTLOG_COMMANDS_PORT=str(port), AGENTLOG_COMMANDS_WORKERS="2"
    )
    api = Component("commands", ["serve", "commands"], env, tmp_path, port).start()
    try:
        await api.wait_ready(60)
        key, sid = await _key(database_url), session_id()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            answer = await client.post(
                "/v1/sessions", json={"session_id": sid}, headers={"Authorization": f"Bearer {key}"}
            )
        assert answer.status_code == 201, answer.text
        assert answer.json()["version"] == 1
    finally:
        assert api.stop() == 0, api.log()[-3000:]
