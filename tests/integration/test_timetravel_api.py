"""Time travel over HTTP on sessions made through the real command API and Postgres: the state at
a version, diff, blame, model calls, context and forks on the query API, fork on the command API;
tenant scope and problem+json errors."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import SecretStr

from eventstore.settings import Settings
from eventstore.store import EventStore
from projections.api.app import create_app
from projections.projector.applier import BatchApplier
from projections.read_models.catalog import PROJECTIONS
from projections.settings import QueriesSettings
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    http,
    new_session_id,
    other_tenant,
    start,
    tenant,
)
from tests.integration.test_blame_cli import patch
from tests.integration.timetravel_support import record_conversation

GROUP = f"agentlog.test.timetravel.{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def queries(database_url: str):
    app = create_app(QueriesSettings(projector_group=GROUP), shared=Settings(database_url=SecretStr(database_url)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queries") as client:
            yield client


def problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code, body
    return body


async def test_state_at_version_is_the_replayed_state_with_what_the_agents_knew(http, queries, tenant) -> None:
    sid = new_session_id()
    await record_conversation(http, tenant.writer, sid)
    response = await queries.get(f"/v1/sessions/{sid}/state", params={"at_version": 4}, headers=tenant.reader)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["session_id"], body["version"], body["last_version"], body["status"]) == (sid, 4, 7, "open")
    assert [m["call_id"] for m in body["model_calls"]] == ["m1", "m2"]
    assert [m["content"] for m in body["conversation"]] == ["I was charged twice, and I can't log in"]
    assert body["state"]["version"] == 4 and body["state"]["counts"]["model_calls"] == 2

    too_far = await queries.get(f"/v1/sessions/{sid}/state", params={"at_version": 9}, headers=tenant.reader)
    assert problem(too_far, 422, "invalid_input")["errors"][0]["field"] == "query.at_version"
    zero = await queries.get(f"/v1/sessions/{sid}/state", params={"at_version": 0}, headers=tenant.reader)
    assert problem(zero, 422, "invalid_input")["errors"][0]["field"] == "query.at_version"


async def test_context_and_model_calls_over_http(http, queries, tenant) -> None:
    sid = new_session_id()
    full = await record_conversation(http, tenant.writer, sid)
    for call_id, expected in full.items():
        response = await queries.get(f"/v1/sessions/{sid}/context", params={"call_id": call_id}, headers=tenant.reader)
        assert response.status_code == 200, response.text
        assert response.json()["request"] == expected
    openai = await queries.get(
        f"/v1/sessions/{sid}/context", params={"call_id": "m3", "format": "openai"}, headers=tenant.reader
    )
    assert openai.json()["messages"][1:] == full["m3"]["messages"]
    at = await queries.get(f"/v1/sessions/{sid}/context", params={"at_version": 5}, headers=tenant.reader)
    assert at.json()["call_id"] == "m2"
    unknown = await queries.get(f"/v1/sessions/{sid}/context", params={"call_id": "m9"}, headers=tenant.reader)
    assert problem(unknown, 404, "model_call_not_found")["call_id"] == "m9"
    neither = await queries.get(f"/v1/sessions/{sid}/context", headers=tenant.reader)
    problem(neither, 422, "invalid_input")

    page = await queries.get(f"/v1/sessions/{sid}/model-calls", params={"limit": 2}, headers=tenant.reader)
    first = page.json()
    assert [c["call_id"] for c in first["items"]] == ["m1", "m2"] and first["next_cursor"]
    rest = await queries.get(
        f"/v1/sessions/{sid}/model-calls", params={"cursor": first["next_cursor"]}, headers=tenant.reader
    )
    assert [(c["call_id"], c["messages"], c["tools"]) for c in rest.json()["items"]] == [("m3", 4, 1)]
    assert rest.json()["next_cursor"] is None


async def test_blame_and_diff_over_http(http, queries, tenant) -> None:
    sid = await start(http, tenant, agents=["billing", "account"], allow_shared_sections=True)
    await patch(http, tenant, sid, "case", "billing", {"charge": "ch_2", "amount": 42})
    await patch(http, tenant, sid, "case", "account", {"amount": 40})
    blamed = await queries.get(f"/v1/sessions/{sid}/blame", params={"section": "case"}, headers=tenant.reader)
    assert blamed.status_code == 200, blamed.text
    entries = {e["path"]: (e["value"], e["version"], e["agent"]) for e in blamed.json()["entries"]}
    assert entries == {"/sections/case/charge": ("ch_2", 2, "billing"), "/sections/case/amount": (40, 3, "account")}
    unknown = await queries.get(f"/v1/sessions/{sid}/blame", params={"section": "nope"}, headers=tenant.reader)
    assert problem(unknown, 422, "invalid_input")["errors"][0]["field"] == "query.section"

    changed = await queries.get(f"/v1/sessions/{sid}/diff", params={"from": 2, "to": 3}, headers=tenant.reader)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["state"]["changed"] == [{"path": "/sections/case/amount", "from": 42, "to": 40}]
    assert [(e["step"], e["right"]["version"]) for e in body["events"]] == [(3, 3)]
    beyond = await queries.get(f"/v1/sessions/{sid}/diff", params={"from": 1, "to": 7}, headers=tenant.reader)
    assert problem(beyond, 422, "invalid_input")["errors"][0]["field"] == "query.to"
    bad_other = await queries.get(
        f"/v1/sessions/{sid}/diff", params={"from": 1, "other": "no such id"}, headers=tenant.reader
    )
    assert problem(bad_other, 422, "invalid_input")["errors"][0]["field"] == "query.other"
    unknown_other = await queries.get(
        f"/v1/sessions/{sid}/diff", params={"from": 1, "other": new_session_id()}, headers=tenant.reader
    )
    problem(unknown_other, 404, "session_not_found")


async def test_fork_over_http_then_diff_against_the_source_and_list_forks(http, queries, tenant, pool) -> None:
    sid = await start(http, tenant, agents=["billing"])
    await patch(http, tenant, sid, "billing", "billing", {"refund": "re_7"})
    fork_id = new_session_id()
    forked = await http.post(
        f"/v1/sessions/{sid}/fork", json={"at_version": 1, "new_session_id": fork_id}, headers=tenant.writer
    )
    assert forked.status_code == 201, forked.text
    assert (forked.json()["session_id"], forked.json()["version"]) == (fork_id, 1)
    assert forked.headers["etag"] == '"1"'
    await patch(http, tenant, fork_id, "billing", "billing", {"refund": "re_9"})

    result = await queries.get(f"/v1/sessions/{sid}/diff", params={"from": 2, "other": fork_id}, headers=tenant.reader)
    body = result.json()
    assert body["common_steps"] == 1 and body["right"] == {"session_id": fork_id, "version": 2}
    assert body["state"]["changed"][0] == {"path": "/sections/billing/refund", "from": "re_7", "to": "re_9"}

    again = await http.post(
        f"/v1/sessions/{sid}/fork", json={"at_version": 1, "new_session_id": fork_id}, headers=tenant.writer
    )
    problem(again, 409, "session_already_started")
    out_of_range = await http.post(f"/v1/sessions/{sid}/fork", json={"at_version": 5}, headers=tenant.writer)
    assert problem(out_of_range, 422, "invalid_input")["errors"][0]["field"] == "at_version"
    unknown = await http.post(f"/v1/sessions/{new_session_id()}/fork", json={"at_version": 1}, headers=tenant.writer)
    problem(unknown, 404, "session_not_found")
    reader = await http.post(f"/v1/sessions/{sid}/fork", json={"at_version": 1}, headers=tenant.reader)
    assert reader.status_code == 403

    # /forks lists what the summaries projected: project both sessions' events
    store = EventStore(pool)
    events = [*await store.read_stream(tenant.name, sid), *await store.read_stream(tenant.name, fork_id)]
    async with pool.acquire() as conn, conn.transaction():
        await BatchApplier(PROJECTIONS, GROUP, 1).apply(conn, events)
    listed = await queries.get(f"/v1/sessions/{sid}/forks", headers=tenant.reader)
    assert listed.status_code == 200, listed.text
    assert [(f["session_id"], f["forked_from_version"]) for f in listed.json()["items"]] == [(fork_id, 1)]
    fork = await queries.get(f"/v1/sessions/{fork_id}", headers=tenant.reader)
    assert (fork.json()["forked_from"], fork.json()["forked_from_version"]) == (sid, 1)


async def test_time_travel_is_tenant_scoped(http, queries, tenant, other_tenant) -> None:
    sid = new_session_id()
    await record_conversation(http, tenant.writer, sid)
    for path, params in [
        ("state", {"at_version": 1}),
        ("diff", {"from": 1}),
        ("blame", {}),
        ("model-calls", {}),
        ("context", {"call_id": "m1"}),
        ("forks", {}),
    ]:
        response = await queries.get(f"/v1/sessions/{sid}/{path}", params=params, headers=other_tenant.reader)
        problem(response, 404, "session_not_found")
    stolen = await http.post(f"/v1/sessions/{sid}/fork", json={"at_version": 1}, headers=other_tenant.writer)
    problem(stolen, 404, "session_not_found")
