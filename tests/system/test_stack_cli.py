"""The `agentlog` CLI as a user runs it: stack status, migrate, keys."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import orjson

from agentlog.edge import keys as auth


def _agentlog(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentlog", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_stack_status_reports_both_services_up(services) -> None:
    result = _agentlog("stack", "status")
    assert result.returncode == 0, result.stderr
    status = orjson.loads(result.stdout)
    assert status["postgres"]["up"] is True
    assert status["kafka"]["up"] is True


def test_stack_up_is_idempotent_when_already_running(services) -> None:
    result = _agentlog("stack", "up")
    assert result.returncode == 0, result.stderr
    assert "kafka:" in result.stdout and "postgres:" in result.stdout


async def test_keys_create_prints_the_key_alone_on_stdout(database_url: str) -> None:
    result = _agentlog(
        "keys", "create", "--tenant", "acme", "--role", "reader", env={"AGENTLOG_DATABASE_URL": database_url}
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("al_")
    conn = await asyncpg.connect(database_url)
    try:
        principal = await auth.KeyVerifier(conn).verify(f"Bearer {lines[0]}")
    finally:
        await conn.close()
    assert (principal.tenant, principal.role) == ("acme", "reader")
    assert lines[0] not in result.stderr


def test_keys_create_refuses_a_bad_tenant(database_url: str) -> None:
    result = _agentlog("keys", "create", "--tenant", "has space", env={"AGENTLOG_DATABASE_URL": database_url})
    assert result.returncode == 2
    assert "tenant" in result.stderr and result.stdout == ""


def test_migrate_is_idempotent(database_url: str) -> None:
    result = _agentlog("migrate", env={"AGENTLOG_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "schema at" in result.stdout


def test_projections_retry_parked_refuses_an_unknown_projection_with_the_known_names(database_url: str) -> None:
    # Regression: an unknown name ended in an uncaught ValueError and a traceback.
    result = _agentlog("projections", "retry-parked", "no_such_projection", env={"AGENTLOG_DATABASE_URL": database_url})
    assert result.returncode == 2
    assert "unknown projection 'no_such_projection'" in result.stderr and "session_summaries" in result.stderr
    assert "Traceback" not in result.stderr
