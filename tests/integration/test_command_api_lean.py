"""The lean write path (commands/api/lean.py) and the Idempotency-Key read with the state (issue 10),
on the real Postgres.

- every write route but the PATCH of a section (a query parameter) is served by the lean handler,
  and a request it hands to FastAPI's handler after authenticating it is counted once by the rate
  limit;
- a keyed write costs the round trips of an unkeyed one (load + append), a repeat one (the load,
  which finds the answer); the repeat answers the first answer even where deciding again would be
  refused (a repeated close); a key reused for another request is refused; writers racing with one
  key append once and all get the one answer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from commands import models as cmd
from commands.api import lean
from commands.api.app import create_app
from commands.api.routes import (
    approvals,
    conversation,
    forks,
    graph,
    model_calls,
    records,
    sessions,
    state,
    tool_calls,
)
from commands.api.routes.writes import WriteRoute
from commands.api.settings import CommandsSettings
from commands.handler import CommandHandler, CommandRequest
from eventstore.errors import IdempotencyKeyReusedError
from eventstore.settings import Settings
from eventstore.store import EventStore
from tests.factories import session_id, tenant_id
from tests.integration.command_api_fixtures import counts

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class CountingPool:
    """The real pool, counting the statements sent through it (one call, one round trip)."""

    def __init__(self, pool) -> None:
        self._pool = pool
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._pool, name)
        if name in {"fetch", "fetchrow", "fetchval", "execute"}:

            async def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return await attr(*args, **kwargs)

            return counted
        return attr


def _request(tenant: str, sid: str, command: cmd.Command, key: str | None, request_hash: str = "h") -> CommandRequest:
    return CommandRequest(
        tenant=tenant,
        session_id=sid,
        commands=[command],
        idempotency_key=key,
        request_hash=request_hash if key else "",
        metadata={"actor": "test"},
    )


@pytest.fixture
def counting(pool) -> CountingPool:
    return CountingPool(pool)


@pytest.fixture
def handler(counting) -> CommandHandler:
    return CommandHandler(EventStore(counting), clock=lambda: NOW)  # type: ignore[arg-type]


async def test_keyed_write_costs_the_round_trips_of_an_unkeyed_one(handler, counting, pool) -> None:
    tenant, sid = tenant_id(), session_id()
    await handler.handle(_request(tenant, sid, cmd.StartSession(workflow="w"), None))
    message = cmd.AddMessage(role="user", content="hi")

    counting.calls = 0
    await handler.handle(_request(tenant, sid, message, None))
    unkeyed = counting.calls

    counting.calls = 0
    first = await handler.handle(_request(tenant, sid, message, "k-1"))
    keyed = counting.calls

    counting.calls = 0
    again = await handler.handle(_request(tenant, sid, message, "k-1"))
    repeat = counting.calls

    assert (unkeyed, keyed, repeat) == (2, 2, 1)
    assert not first.replayed and again.replayed and again.body == first.body
    assert await counts(pool, tenant, sid) == (3, 3, 3)


async def test_repeat_of_a_close_answers_the_close_not_session_closed(handler, pool) -> None:
    tenant, sid = tenant_id(), session_id()
    await handler.handle(_request(tenant, sid, cmd.StartSession(workflow="w"), None))
    first = await handler.handle(_request(tenant, sid, cmd.CompleteSession(), "close-1"))
    again = await handler.handle(_request(tenant, sid, cmd.CompleteSession(), "close-1"))
    assert again.replayed and again.body == first.body and len(first.body["event_ids"]) == 1
    assert await counts(pool, tenant, sid) == (2, 2, 2)


async def test_key_reused_for_another_request_is_refused_and_writes_nothing(handler, pool) -> None:
    tenant, sid = tenant_id(), session_id()
    await handler.handle(_request(tenant, sid, cmd.StartSession(workflow="w"), None))
    await handler.handle(_request(tenant, sid, cmd.AddMessage(role="user", content="a"), "k", request_hash="h1"))
    with pytest.raises(IdempotencyKeyReusedError):
        await handler.handle(_request(tenant, sid, cmd.AddMessage(role="user", content="b"), "k", request_hash="h2"))
    assert await counts(pool, tenant, sid) == (2, 2, 2)


async def test_writers_racing_with_one_key_append_once(pool) -> None:
    tenant, sid = tenant_id(), session_id()
    handlers = [CommandHandler(EventStore(pool), clock=lambda: NOW) for _ in range(6)]
    await handlers[0].handle(_request(tenant, sid, cmd.StartSession(workflow="w"), None))
    message = cmd.AddMessage(role="user", content="once")
    answers = await asyncio.gather(*(h.handle(_request(tenant, sid, message, "race")) for h in handlers))
    assert all(a.body == answers[0].body for a in answers) and len(answers[0].body["event_ids"]) == 1
    assert sum(not a.replayed for a in answers) == 1
    assert await counts(pool, tenant, sid) == (2, 2, 2)


def test_every_write_route_but_the_section_patch_is_lean(monkeypatch) -> None:
    served: dict[str, bool] = {}
    build = lean.lean_handler

    def spy(route, fallback):
        handler = build(route, fallback)
        served[f"{sorted(route.methods)[0]} {route.path}"] = handler is not fallback
        return handler

    monkeypatch.setattr("commands.api.routes.writes.lean_handler", spy)
    for module in (sessions, records, tool_calls, approvals, state, model_calls, forks, graph, conversation):
        for route in module.router.routes:
            assert isinstance(route, WriteRoute)
            route.get_route_handler()
    assert served.pop("PATCH /v1/sessions/{session_id}/state/{section}") is False
    assert served and all(served.values()), served


async def test_lean_fallback_after_authenticating_counts_the_request_once(database_url, pool) -> None:
    tenant = tenant_id()
    app = create_app(
        CommandsSettings(rate_limit_per_s=0.05, rate_limit_burst=2),
        shared=Settings(database_url=SecretStr(database_url)),
    )
    headers = {"Authorization": f"Bearer {await create_key(pool, tenant, 'writer')}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        # a body the lean path decodes and authenticates, then hands to FastAPI's handler (invalid)
        refused = await client.post("/v1/sessions", json={"workflow": 7}, headers=headers)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "workflow", refused.text
        served = await client.post("/v1/sessions", json={"session_id": session_id()}, headers=headers)
        assert served.status_code == 201, served.text  # the burst of 2 had one token left
        over = await client.post("/v1/sessions", json={"session_id": session_id()}, headers=headers)
        assert over.status_code == 429
