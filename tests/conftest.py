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
from pathlib import Path

import pytest

from agentlog.stack import kafka_probe
from agentlog.stack.stack import Stack
from eventstore import db, migrations
from tests.factories import create_database, drop_database, topic_name, with_database

TESTS = Path(__file__).resolve().parent
# The folder a test lives in is its marker: unit needs no service, integration needs the real
# Postgres and Kafka, system starts whole agentlog processes. `pytest -m unit` runs in seconds.
FOLDER_MARKERS = ("unit", "integration", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = Path(str(item.path)).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, folder))


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
    admin_dsn = services.database_url()
    name = await create_database(admin_dsn, f"agentlog_tmpl_{os.getpid()}")
    try:
        await asyncio.to_thread(migrations.upgrade, with_database(admin_dsn, name))
        yield name
    finally:
        await drop_database(admin_dsn, name)


@pytest.fixture(scope="session")
async def database_url(services: Stack, template_database: str):
    """A migrated database shared by the tests of one session; use random session ids in it."""
    admin_dsn = services.database_url()
    name = await create_database(admin_dsn, template=template_database)
    yield with_database(admin_dsn, name)
    await drop_database(admin_dsn, name)


@pytest.fixture
async def fresh_database_url(services: Stack, template_database: str):
    """A migrated database of this test's own: for relays and projectors that process every row."""
    admin_dsn = services.database_url()
    name = await create_database(admin_dsn, template=template_database)
    yield with_database(admin_dsn, name)
    await drop_database(admin_dsn, name)


@pytest.fixture(scope="session")
async def pool(database_url: str):
    pool = await db.create_pool(database_url, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    """A new topic of 3 partitions for this test."""
    name = topic_name()
    await kafka_probe.ensure_topic(kafka_bootstrap, name, partitions=3)
    return name
