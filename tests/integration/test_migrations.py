"""The schema migrates up, down to nothing, and up again on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from eventstore import migrations
from eventstore.errors import SchemaBehindError
from tests.factories import scratch_database

EVENT_STORE_TABLES = {"events", "streams", "outbox", "idempotency_keys", "api_keys"}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


@pytest.fixture
async def empty_database_url(services):
    async with scratch_database(services.database_url(), "agentlog_mig") as url:
        yield url


async def test_migrations_up_down_up(empty_database_url: str) -> None:
    await asyncio.to_thread(migrations.upgrade, empty_database_url)
    assert await _tables(empty_database_url) >= EVENT_STORE_TABLES

    await asyncio.to_thread(migrations.downgrade, empty_database_url, "base")
    assert await _tables(empty_database_url) <= {"alembic_version"}

    await asyncio.to_thread(migrations.upgrade, empty_database_url)
    assert await _tables(empty_database_url) >= EVENT_STORE_TABLES
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrations.ensure_schema_current(conn)
    finally:
        await conn.close()


async def test_schema_check_refuses_when_schema_is_behind(empty_database_url: str) -> None:
    await asyncio.to_thread(migrations.upgrade, empty_database_url, "0001")
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(SchemaBehindError) as caught:
            await migrations.ensure_schema_current(conn)
    finally:
        await conn.close()
    assert caught.value.extra["current"] == "0001"
    assert caught.value.extra["required"] == migrations.head_revision()
