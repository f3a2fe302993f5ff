"""Fixtures for command API tests: one app (with its lifespan) on the shared test database, and
API keys of a fresh random tenant per test. Imported by the test modules that use them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from commands.api.app import create_app
from commands.api.settings import CommandsSettings
from eventstore.settings import Settings
from tests.factories import random_id, tenant_id


@pytest.fixture(scope="session")
async def command_app(database_url: str):
    app = create_app(CommandsSettings(pool_size=20), shared=Settings(database_url=SecretStr(database_url)))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def http(command_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=command_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agentlog.test") as client:
        yield client


@dataclass(frozen=True)
class Tenant:
    name: str
    writer: dict[str, str]
    reader: dict[str, str]
    admin: dict[str, str]


def new_session_id() -> str:
    return random_id("s", 16)


@pytest.fixture
async def tenant(pool) -> Tenant:
    name = tenant_id()
    keys = {role: await create_key(pool, name, role) for role in ("writer", "reader", "admin")}
    return Tenant(name, *({"Authorization": f"Bearer {keys[r]}"} for r in ("writer", "reader", "admin")))


@pytest.fixture
async def other_tenant(pool) -> Tenant:
    name = tenant_id()
    keys = {role: await create_key(pool, name, role) for role in ("writer", "reader", "admin")}
    return Tenant(name, *({"Authorization": f"Bearer {keys[r]}"} for r in ("writer", "reader", "admin")))


async def start(http: httpx.AsyncClient, tenant: Tenant, **body) -> str:
    session_id = body.pop("session_id", None) or new_session_id()
    response = await http.post("/v1/sessions", json={"session_id": session_id, **body}, headers=tenant.writer)
    assert response.status_code == 201, response.text
    return session_id


async def counts(pool, tenant: str, session_id: str) -> tuple[int, int, int]:
    """(events, outbox rows, stream version) of one session."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM events WHERE tenant = $1 AND session_id = $2),
                  (SELECT count(*) FROM outbox WHERE tenant = $1 AND session_id = $2),
                  (SELECT coalesce(max(version), 0) FROM streams
                    WHERE tenant = $1 AND session_id = $2)""",
        tenant,
        session_id,
    )
    return row[0], row[1], row[2]
