"""Both APIs answer the same bad requests the same way: status, application/problem+json, and the
same body keys (they share one edge, agentlog/edge). Both apps run in process over the real
Postgres, with the edge's default settings."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from commands.api.app import create_app as create_command_app
from commands.api.settings import CommandsSettings
from eventstore.settings import Settings
from projections.api.app import create_app as create_query_app
from projections.settings import QueriesSettings

PROBLEM_KEYS = {"type", "title", "status", "code", "detail"}


@pytest.fixture(scope="module")
async def apis(database_url: str):
    shared = Settings(database_url=SecretStr(database_url))
    commands = create_command_app(CommandsSettings(), shared=shared)
    queries = create_query_app(QueriesSettings(), shared=shared)
    async with (
        commands.router.lifespan_context(commands),
        queries.router.lifespan_context(queries),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=commands), base_url="http://commands") as c,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=queries), base_url="http://queries") as q,
    ):
        yield c, q


@pytest.fixture
async def keys(pool) -> dict[str, dict[str, str]]:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    return {role: {"Authorization": f"Bearer {await create_key(pool, tenant, role)}"} for role in ("reader", "writer")}


def _same_problem(a: httpx.Response, b: httpx.Response, status: int, code: str) -> None:
    for r in (a, b):
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["x-request-id"]
        assert r.json()["code"] == code and r.json().keys() >= PROBLEM_KEYS
    assert a.json().keys() == b.json().keys()


async def test_edge_parity_no_key_is_the_same_401(apis) -> None:
    c, q = apis
    _same_problem(
        await c.post("/v1/sessions", json={"session_id": "s-x"}), await q.get("/v1/sessions"), 401, "unauthenticated"
    )


async def test_edge_parity_bad_key_is_the_same_401(apis) -> None:
    c, q = apis
    bad = {"Authorization": "Bearer al_0000000000000000_nope"}
    _same_problem(
        await c.post("/v1/sessions", json={"session_id": "s-x"}, headers=bad),
        await q.get("/v1/sessions", headers=bad),
        401,
        "unauthenticated",
    )
    garbled = {"Authorization": "Basic Zm9vOmJhcg=="}
    _same_problem(
        await c.post("/v1/sessions", json={"session_id": "s-x"}, headers=garbled),
        await q.get("/v1/sessions", headers=garbled),
        401,
        "unauthenticated",
    )


async def test_edge_parity_wrong_role_is_403_on_the_command_api(apis, keys) -> None:
    # Honest limit: every role may read, so the query API has no "wrong role" request. The
    # command API's 403 (from agentlog.edge.auth, which both APIs use) has the problem shape, and
    # the same reader key reads on the query API.
    c, q = apis
    r = await c.post("/v1/sessions", json={"session_id": "s-x"}, headers=keys["reader"])
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json().keys() >= PROBLEM_KEYS
    assert (await q.get("/v1/sessions", headers=keys["reader"])).status_code == 200


async def test_edge_parity_unknown_route_is_the_same_404(apis, keys) -> None:
    c, q = apis
    _same_problem(
        await c.get("/v1/nowhere", headers=keys["writer"]),
        await q.get("/v1/nowhere", headers=keys["reader"]),
        404,
        "not_found",
    )


async def test_edge_parity_body_on_a_route_without_one_is_the_same_405(apis, keys) -> None:
    # The query API has no body routes: a malformed body sent to a read route is refused by
    # method, the same way on both (the command API's /v1/sessions/{id}/state is GET-only too).
    c, q = apis
    _same_problem(
        await c.post("/healthz", content=b"{not json", headers=keys["writer"]),
        await q.post("/healthz", content=b"{not json", headers=keys["reader"]),
        405,
        "method_not_allowed",
    )


async def test_edge_parity_malformed_json_is_400_malformed_json(apis, keys) -> None:
    c, _ = apis
    r = await c.post(
        "/v1/sessions", content=b"{not json", headers={**keys["writer"], "content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["code"] == "malformed_json"
    assert r.headers["content-type"] == "application/problem+json"


async def test_edge_parity_oversized_body_is_the_same_413(apis, keys) -> None:
    # The body limit runs before routing, so it refuses on both APIs, whatever the route.
    c, q = apis
    big = b"x" * (1024 * 1024 + 1)
    _same_problem(
        await c.post("/v1/sessions", content=big, headers=keys["writer"]),
        await q.post("/v1/sessions", content=big, headers=keys["reader"]),
        413,
        "payload_too_large",
    )


async def test_edge_parity_non_json_media_type_is_the_same_415(apis, keys) -> None:
    c, q = apis
    form = {"content-type": "application/x-www-form-urlencoded"}
    _same_problem(
        await c.post("/v1/sessions", content=b"a=b", headers={**keys["writer"], **form}),
        await q.post("/v1/sessions", content=b"a=b", headers={**keys["reader"], **form}),
        415,
        "unsupported_media_type",
    )


async def test_edge_parity_request_id_is_echoed_on_both(apis) -> None:
    c, q = apis
    for client in (c, q):
        ok = await client.get("/healthz", headers={"X-Request-Id": "req-123"})
        err = await client.get("/v1/nowhere", headers={"X-Request-Id": "req-456"})
        assert ok.headers["x-request-id"] == "req-123" and err.headers["x-request-id"] == "req-456"
        assert (await client.get("/healthz")).headers["x-request-id"]  # generated when absent


async def test_edge_parity_bad_path_parameter_is_named_the_same_way(apis, keys) -> None:
    # One field naming on both APIs: a path parameter with its location, a body field bare.
    c, q = apis
    a = await c.post("/v1/sessions/bad%20id/messages", json={"role": "user", "content": "x"}, headers=keys["writer"])
    b = await q.get("/v1/sessions/bad%20id", headers=keys["reader"])
    _same_problem(a, b, 422, "invalid_input")
    assert [e["field"] for e in a.json()["errors"]] == [e["field"] for e in b.json()["errors"]] == ["path.session_id"]
    body = await c.post("/v1/sessions/s-ok/messages", json={"role": "user", "content": ""}, headers=keys["writer"])
    assert [e["field"] for e in body.json()["errors"]] == ["content"]
