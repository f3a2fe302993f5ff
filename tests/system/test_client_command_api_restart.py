"""The client's retries across a crash: while writers run, the command API process is killed
(kill -9, whatever was in flight is cut off) and started again, three times; every logical write the
client was asked for ends stored exactly once (counted in the event store), none lost, none
doubled, including the tool calls whose ids the API assigns (a doubled one would be a new call)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from agentlog.client import AsyncAgentlogClient, RetryPolicy
from agentlog.edge.keys import create_key
from tests.factories import free_port, tenant_id, topic_name
from tests.system.processes import Component, system_env
from tests.waiting import wait_until

WRITERS = 16
WRITES_PER_WRITER = 30
KILL_AFTER = (80, 200, 320)  # completed logical writes (of 480) when the process is killed


async def _writer(client: AsyncAgentlogClient, session_id: str, progress: list[int], replays: list[int]) -> None:
    await client.start_session(session_id)
    for i in range(WRITES_PER_WRITER):
        if i % 3 == 0:
            result = await client.request_tool_call(session_id, "lookup", {"i": i})
        else:
            result = await client.add_message(session_id, "user", f"message {i}")
        progress[0] += 1
        replays[0] += result.replayed


async def test_client_writes_survive_command_api_kills_and_are_stored_exactly_once(
    services, database_url, pool, kafka_bootstrap, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    tenant, port = tenant_id(), free_port()
    key = await create_key(pool, tenant, "writer")
    env = system_env(database_url, kafka_bootstrap, topic_name("client"), AGENTLOG_COMMANDS_PORT=str(port))
    commands = Component("commands", ["serve", "commands"], env, tmp_path, port)
    sessions = [f"s-{uuid.uuid4().hex[:12]}" for _ in range(WRITERS)]
    progress, replays = [0], [0]
    caplog.set_level(logging.INFO, logger="agentlog.client")
    retry = RetryPolicy(max_attempts=200, max_elapsed_s=90, initial_backoff_s=0.05, max_backoff_s=0.5)
    try:
        await commands.start().wait_ready()
        async with AsyncAgentlogClient(key, commands_url=f"http://127.0.0.1:{port}", retry=retry, timeout=10) as client:
            writers = asyncio.gather(*(_writer(client, sid, progress, replays) for sid in sessions))
            for threshold in KILL_AFTER:
                await wait_until(lambda t=threshold: progress[0] >= t, timeout=120, message=f"{threshold} writes")
                commands.kill()
                commands.start()
            await asyncio.wait_for(writers, timeout=300)
    finally:
        commands.stop()

    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    print(f"\nclient retries: {len(retried)}; answers replayed after a lost answer: {replays[0]}")
    assert retried, "the kills were meant to cut writes off mid-run"
    assert commands.incarnation == 1 + len(KILL_AFTER)
    for sid in sessions:
        rows = await pool.fetch(
            "SELECT version, type, data FROM events WHERE tenant = $1 AND session_id = $2 ORDER BY version", tenant, sid
        )
        assert [r["version"] for r in rows] == list(range(1, WRITES_PER_WRITER + 2)), sid
        messages = [r["data"]["content"] for r in rows if r["type"] == "MessageAdded"]
        lookups = [r["data"]["arguments"]["i"] for r in rows if r["type"] == "ToolCallRequested"]
        assert messages == [f"message {i}" for i in range(WRITES_PER_WRITER) if i % 3]
        assert lookups == list(range(0, WRITES_PER_WRITER, 3))
