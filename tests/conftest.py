"""Fixtures for tests that talk to the real PostgreSQL and the real Kafka.

The services are started by the first test that needs them (`agentlog stack up` logic) unless the
environment points at running ones. A service that cannot be reached is an error, never a skip.
Isolation is by random names: each test session migrates one template database; tests that need a
log of their own (relay, projector) take `fresh_database_url`, a copy of it; others share
`database_url` and use random session ids. Kafka topics are random per test.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

from eventstore import db, migrations
from agentlog.stack import kafka_probe
from agentlog.stack.stack import Stack


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack.from_settings()


@pytest.fixture(scope="session")
async def services(stack: Stack) -> Stack:
    await stack.up(log=lambda message: print(f"[stack] {message}"))
    return stack


@pytest.fixture(scope="session")
def kafka_bootstrap(services: Stack) -> str:
    return services.kafka_bootstrap()


@pytest.fixture(scope="session")
async def template_database(services: Stack):
    """A database migrated to head once per test session; others are created as copies of it."""
    name = f"agentlog_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_dsn = services.database_url()
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = _with_database(admin_dsn, name)
    await asyncio.to_thread(migrations.upgrade, url)
    yield name
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _create_copy(admin_dsn: str, template: str) -> str:
    name = f"agentlog_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name


async def _drop(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(services: Stack, template_database: str):
    """A migrated database shared by the tests of one session; use random session ids in it."""
    admin_dsn = services.database_url()
    name = await _create_copy(admin_dsn, template_database)
    yield _with_database(admin_dsn, name)
    await _drop(admin_dsn, name)


@pytest.fixture
async def fresh_database_url(services: Stack, template_database: str):
    """A migrated database of this test's own: for relays and projectors that process every row."""
    admin_dsn = services.database_url()
    name = await _create_copy(admin_dsn, template_database)
    yield _with_database(admin_dsn, name)
    await _drop(admin_dsn, name)


@pytest.fixture(scope="session")
async def pool(database_url: str):
    pool = await db.create_pool(database_url, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    """A new topic of 3 partitions for this test."""
    name = f"agentlog.test.{uuid.uuid4().hex[:10]}.v1"
    await kafka_probe.ensure_topic(kafka_bootstrap, name, partitions=3)
    return name
