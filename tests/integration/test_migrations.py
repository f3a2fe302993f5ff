"""The schema migrates up, down to nothing, and up again on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import quote, urlsplit

import asyncpg
import pytest

from eventstore import db, migrations
from eventstore import events as ev
from eventstore.errors import SchemaBehindError
from eventstore.registry import to_stored
from eventstore.store import NO_STREAM, EventStore
from tests.factories import scratch_database

EVENT_STORE_TABLES = {"events", "streams", "outbox", "idempotency_keys", "api_keys"}
START = ev.SessionStarted(workflow="w", agents=["a"])


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


async def _socket_folder(url: str) -> str | None:
    """The folder of the test server's Unix socket, when it is on this machine."""
    conn = await asyncpg.connect(url)
    try:
        folders = (await conn.fetchval("SHOW unix_socket_directories")).split(",")
        port = await conn.fetchval("SHOW port")
    finally:
        await conn.close()
    return next((f.strip() for f in folders if os.path.exists(os.path.join(f.strip(), f".s.PGSQL.{port}"))), None)


@pytest.mark.parametrize("shape", ["libpq parameters", "socket in the query", "socket in the authority"])
async def test_migrations_take_every_dsn_the_services_take(empty_database_url: str, shape: str) -> None:
    # `agentlog migrate` let SQLAlchemy parse the DSN: sslmode= or application_name= (libpq's
    # parameters, which asyncpg and so every service take) failed with a TypeError, and a socket
    # folder percent-encoded as the host with a lookup of that name.
    parts = urlsplit(empty_database_url)
    login = parts.netloc.rpartition("@")[0]
    if shape == "libpq parameters":
        dsn = f"{empty_database_url}?sslmode=disable&application_name=agentlog-migrate"
    else:
        folder = await _socket_folder(empty_database_url)
        if folder is None:
            pytest.skip("the test server's Unix socket is not on this machine")
        port = parts.port or 5432
        if shape == "socket in the query":
            dsn = f"postgresql://{login}@{parts.path}?host={folder}&port={port}"
        else:
            dsn = f"postgresql://{login}@{quote(folder, safe='')}:{port}{parts.path}"

    await asyncio.to_thread(migrations.upgrade, dsn)

    assert await _tables(empty_database_url) >= EVENT_STORE_TABLES


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


async def test_large_json_values_are_written_with_lz4_after_0014(empty_database_url: str) -> None:
    """Migration 0014: a 95 KB decision snapshot (full memories) is stored lz4-compressed, which
    Postgres writes about 4x faster than pglz; going down to 0013 restores the default method."""
    await asyncio.to_thread(migrations.upgrade, empty_database_url)
    pool = await db.create_pool(empty_database_url, min_size=1, max_size=2)
    try:
        state = {"format": 2, "finished_calls": {"ids": [f"c{i}" for i in range(3000)], "values": ["f" * 32] * 3000}}
        await EventStore(pool).append("t", "big", [to_stored(START)], expected_version=NO_STREAM, new_state=state)
        method = await pool.fetchval(
            "SELECT pg_column_compression(state) FROM streams WHERE tenant = 't' AND session_id = 'big'"
        )
        assert method == "lz4"
    finally:
        await pool.close()
    await asyncio.to_thread(migrations.downgrade, empty_database_url, "0013")
    conn = await asyncpg.connect(empty_database_url)
    try:
        methods = await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'streams'::regclass AND attcompression <> ''"
        )
    finally:
        await conn.close()
    assert methods == []


async def test_analyze_keeps_no_statistics_of_event_payloads_after_0015(empty_database_url: str) -> None:
    """Migration 0015: ANALYZE builds no statistics for the events' data and metadata (nothing
    filters on them) and still does for the columns queries use; down to 0014 it builds them again."""

    async def analyzed() -> set[str]:
        conn = await asyncpg.connect(empty_database_url)
        try:
            await conn.execute("ANALYZE events")
            rows = await conn.fetch("SELECT attname FROM pg_stats WHERE schemaname = 'public' AND tablename = 'events'")
        finally:
            await conn.close()
        return {row["attname"] for row in rows}

    await asyncio.to_thread(migrations.upgrade, empty_database_url)
    pool = await db.create_pool(empty_database_url, min_size=1, max_size=2)
    try:
        store = EventStore(pool)
        for i in range(20):
            await store.append("t", f"s{i}", [to_stored(START)], expected_version=NO_STREAM, metadata={"actor": "a"})
    finally:
        await pool.close()
    columns = await analyzed()
    assert {"tenant", "session_id", "version", "type"} <= columns
    assert not columns & {"data", "metadata"}

    await asyncio.to_thread(migrations.downgrade, empty_database_url, "0014")
    assert {"data", "metadata"} <= await analyzed()


async def test_append_only_tables_are_vacuumed_at_a_gentler_pace_after_0016(empty_database_url: str) -> None:
    """Migration 0016: the event log and the append-only read models carry autovacuum's cost
    delay of 10 ms; the tables with updates and deletes keep the server's; down to 0015, none."""

    async def paced() -> dict[str, list[str]]:
        conn = await asyncpg.connect(empty_database_url)
        try:
            rows = await conn.fetch(
                "SELECT relname, reloptions FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                "AND relkind = 'r' AND reloptions::text LIKE '%autovacuum_vacuum_cost_delay%'"
            )
        finally:
            await conn.close()
        return {row["relname"]: row["reloptions"] for row in rows}

    await asyncio.to_thread(migrations.upgrade, empty_database_url)
    tables = await paced()
    assert set(tables) == {"events", "session_timeline_v1", "conversation_items_v1", "state_audit_v1", "model_usage_v1"}
    assert all("autovacuum_vacuum_cost_delay=10" in options for options in tables.values())

    await asyncio.to_thread(migrations.downgrade, empty_database_url, "0015")
    assert await paced() == {}
