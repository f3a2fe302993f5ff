"""The start-up wait's pure parts: where a DSN points (for log lines, never the password), and the
bound: 0 means one attempt, a set stop ends the wait. Nothing listens on the port used here."""

from __future__ import annotations

import asyncio
import logging

import pytest

from eventstore import db
from tests.factories import free_port
from tests.waiting import wait_until


@pytest.mark.parametrize(
    ("dsn", "address"),
    [
        ("postgresql://agentlog:s3cret@127.0.0.1:54329/agentlog", "127.0.0.1:54329"),
        ("postgresql://agentlog@db.internal/agentlog", "db.internal:5432"),
        ("postgresql://u:p@[::1]:6543/x", "[::1]:6543"),
        ("postgresql://u@h1:5432,h2:5433/x", "h1:5432,h2:5433"),
        ("postgresql:///agentlog?host=/run/postgresql&port=5433", "/run/postgresql"),
        ("postgresql:///agentlog", "localhost:5432"),
    ],
)
def test_database_server_address_names_host_and_port_never_the_password(dsn: str, address: str) -> None:
    assert db.server_address(dsn) == address
    assert "s3cret" not in db.server_address(dsn)


async def test_database_startup_wait_of_zero_fails_at_once_naming_the_server() -> None:
    port = free_port()
    with pytest.raises(db.DatabaseUnreachableError, match=rf"PostgreSQL at 127\.0\.0\.1:{port} is not reachable: "):
        await db.wait_until_reachable(f"postgresql://u:pw@127.0.0.1:{port}/x", 0)


async def test_database_startup_wait_logs_each_attempt_and_ends_when_stopped(caplog) -> None:
    stop = asyncio.Event()
    port = free_port()
    caplog.set_level(logging.WARNING, logger="eventstore.db")

    async def stop_after_two_attempts() -> None:
        await wait_until(
            lambda: sum("waiting for PostgreSQL" in r.getMessage() for r in caplog.records) >= 2,
            timeout=10,
            message="two attempts logged",
        )
        stop.set()

    stopper = asyncio.create_task(stop_after_two_attempts())
    assert await asyncio.wait_for(db.wait_until_reachable(f"postgresql://u@127.0.0.1:{port}/x", 600, stop), 10) is False
    await stopper
    first = caplog.records[0].getMessage()
    assert first.startswith(f"waiting for PostgreSQL at 127.0.0.1:{port}: ") and first.endswith(", retrying in 0.5 s")
