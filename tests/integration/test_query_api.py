"""The query API over read models built by a real projector from real Kafka records."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest

from agentlog.edge.keys import create_key
from eventstore import db
from eventstore import events as ev
from eventstore.settings import Settings
from projections.api.app import create_app
from projections.settings import QueriesSettings
from tests.integration.projection_support import append, produce, running_projector, settings, support_case
from tests.waiting import wait_until


@pytest.fixture
async def world(fresh_database_url: str, kafka_bootstrap: str, topic: str):
    """A projector and the query API on one fresh database; keys of two tenants."""
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=6)
    s = settings()
    service = Settings(database_url=fresh_database_url, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic=topic)
    app = create_app(QueriesSettings(projector_group=s.group_id, poll_interval_ms=200), shared=service)
    keys = {"acme": await create_key(pool, "acme", "reader"), "other": await create_key(pool, "other", "writer")}
    async with app.router.lifespan_context(app), running_projector(pool, kafka_bootstrap, topic, s):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queries") as client:
            yield {
                "pool": pool,
                "client": client,
                "keys": keys,
                "bootstrap": kafka_bootstrap,
                "topic": topic,
                "waiter": app.state.reads.waiter,
                "service": service,
                "group": s.group_id,
            }
        assert app.state.reads.waiter.waiting == 0, "a read-your-writes wait outlived its request"
    await pool.close()


def _auth(world, tenant: str = "acme") -> dict:
    return {"Authorization": f"Bearer {world['keys'][tenant]}"}


async def _write(world, tenant: str = "acme", n_messages: int = 2, session_id: str | None = None):
    sid = session_id or "s-" + uuid.uuid4().hex[:8]
    recorded = await append(world["pool"], tenant, sid, support_case(n_messages))
    return sid, recorded


async def _published(world, recorded) -> None:
    await produce(world["bootstrap"], world["topic"], recorded)


async def test_query_api_read_after_write_with_min_version_sees_it(world) -> None:
    sid, recorded = await _write(world)
    client = world["client"]
    read = asyncio.create_task(
        client.get(
            f"/v1/sessions/{sid}", headers=_auth(world), params={"min_version": recorded[-1].version, "wait_ms": 20000}
        )
    )
    await _published(world, recorded)
    response = await read
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["session_id"], body["status"], body["version"]) == (sid, "completed", recorded[-1].version)
    assert body["counts"] == {"messages": 3, "tool_calls": 2, "tool_failures": 1, "errors": 0}


@asynccontextmanager
async def _queries_without_polling(world):
    """A second query API on the world's database whose waits are woken by NOTIFY only."""
    app = create_app(QueriesSettings(projector_group=world["group"], poll_interval_ms=600_000), shared=world["service"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queries") as client:
            yield client, app.state.reads.waiter


async def test_query_api_200_concurrent_reads_on_50_sessions_all_answered_after_the_projector(world) -> None:
    written = [await _write(world, n_messages=0) for _ in range(50)]
    notified = []
    listener = await db.connect(world["service"].dsn())
    await listener.add_listener("agentlog_projected", lambda *args: notified.append(args))
    try:
        async with _queries_without_polling(world) as (client, waiter):
            reads = [
                asyncio.create_task(
                    client.get(
                        f"/v1/sessions/{sid}", headers=_auth(world), params={"min_version": version, "wait_ms": 20000}
                    )
                )
                for sid, recorded in written
                for version in (1, 5, 10, recorded[-1].version)
            ]
            await wait_until(lambda: waiter.waiting == 200, timeout=30, message="200 reads waiting")
            await _published(world, [r for _, recorded in written for r in recorded])
            answers = await asyncio.gather(*reads)
            metrics = (await client.get("/metrics")).text
    finally:
        await listener.close()
    assert [a.status_code for a in answers] == [200] * 200
    assert {a.json()["session_id"] for a in answers} == {sid for sid, _ in written}
    refreshes = float(metrics.split("\nagentlog_queries_wait_refreshes_total ")[1].split()[0])
    # One version query per projector batch commit at most, however many reads wait on it.
    assert 1 <= refreshes <= len(notified)
    assert "\nagentlog_queries_waiting_reads 0.0" in metrics


async def test_query_api_read_cancelled_by_its_client_leaves_no_wait(world) -> None:
    sid, _recorded = await _write(world)
    read = asyncio.create_task(
        world["client"].get(f"/v1/sessions/{sid}", headers=_auth(world), params={"min_version": 1, "wait_ms": 20000})
    )
    await wait_until(lambda: world["waiter"].waiting == 1, timeout=30, message="the read is waiting")
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    assert world["waiter"].waiting == 0


async def test_query_api_min_position_waits_for_the_event_at_that_position(world) -> None:
    sid, recorded = await _write(world)
    read = asyncio.create_task(
        world["client"].get(
            "/v1/sessions", headers=_auth(world), params={"min_position": recorded[-1].position, "wait_ms": 20000}
        )
    )
    await _published(world, recorded)
    response = await read
    assert response.status_code == 200, response.text
    assert sid in [item["session_id"] for item in response.json()["items"]]


async def test_query_api_forks_list_waits_for_a_fork_just_made_with_min_position(world) -> None:
    """GET /forks lists the summaries' lineage: with the fork's position as min_position it waits
    until the projector passed it and lists the fork; without a bound it answers at once with what
    is projected; a bound never reached is a 504 problem, not an empty list."""
    source, recorded = await _write(world)
    await _published(world, recorded)
    fork_id = "f-" + uuid.uuid4().hex[:8]
    forked = await append(
        world["pool"], "acme", fork_id, [ev.SessionForked(source_session_id=source, source_version=3, state={})]
    )
    client, url = world["client"], f"/v1/sessions/{source}/forks"
    await wait_until(lambda: world["waiter"].waiting == 0, timeout=30, message="no read waiting yet")
    at_once = await client.get(url, headers=_auth(world), params={"min_version": recorded[-1].version})
    assert at_once.status_code == 200, at_once.text
    assert at_once.json()["items"] == []  # the fork is stored, not projected: no bound on it, not listed
    behind = await client.get(url, headers=_auth(world), params={"min_position": forked[-1].position, "wait_ms": 200})
    assert behind.status_code == 504, behind.text
    assert behind.json()["code"] == "projection_behind"

    read = asyncio.create_task(
        client.get(url, headers=_auth(world), params={"min_position": forked[-1].position, "wait_ms": 20000})
    )
    await wait_until(lambda: world["waiter"].waiting == 1, timeout=30, message="the forks read is waiting")
    await _published(world, forked)
    response = await read
    assert response.status_code == 200, response.text
    assert [(f["session_id"], f["forked_from_version"]) for f in response.json()["items"]] == [(fork_id, 3)]


async def test_query_api_answers_504_projection_behind_when_wait_runs_out(world) -> None:
    sid, recorded = await _write(world)
    await _published(world, recorded)
    response = await world["client"].get(
        f"/v1/sessions/{sid}/timeline", headers=_auth(world), params={"min_version": 99, "wait_ms": 300}
    )
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert (body["code"], body["wanted_version"]) == ("projection_behind", 99)
    assert body["current_version"] <= recorded[-1].version


async def test_query_api_never_shows_another_tenants_sessions(world) -> None:
    sid, recorded = await _write(world, tenant="acme")
    _same_id, theirs = await _write(world, tenant="other", session_id=sid)
    await _published(world, recorded + theirs)
    client = world["client"]
    mine = await client.get(f"/v1/sessions/{sid}", headers=_auth(world), params={"min_version": recorded[-1].version})
    assert mine.status_code == 200
    other_only = "s-" + uuid.uuid4().hex[:8]
    await _published(world, await append(world["pool"], "other", other_only, support_case()))
    await wait_until(lambda: _projected(world, "other", other_only), timeout=30)
    assert (await client.get(f"/v1/sessions/{other_only}", headers=_auth(world))).status_code == 404
    assert (await client.get(f"/v1/sessions/{other_only}/state", headers=_auth(world))).status_code == 404
    listed = (await client.get("/v1/sessions", headers=_auth(world), params={"limit": 200})).json()["items"]
    assert other_only not in {item["session_id"] for item in listed}
    approvals = (await client.get("/v1/approvals", headers=_auth(world, "other"))).json()["items"]
    assert {a["session_id"] for a in approvals} == {sid, other_only}  # their own `sid`, not acme's
    assert all(a["approval_id"] == "a1" for a in approvals) and len(approvals) == 2


async def _projected(world, tenant: str, sid: str) -> bool:
    return (
        await world["pool"].fetchval(
            "SELECT count(*) FROM session_summaries_v1 WHERE tenant = $1 AND session_id = $2", tenant, sid
        )
        == 1
    )


async def test_query_api_read_models_of_one_session(world) -> None:
    sid, recorded = await _write(world)
    await _published(world, recorded)
    client, auth, wait = world["client"], _auth(world), {"min_version": recorded[-1].version}
    state = (await client.get(f"/v1/sessions/{sid}/state", headers=auth, params=wait)).json()
    assert state["sections"]["billing"]["value"] == {"duplicate": True, "refunded": True}
    assert state["sections"]["account"]["owner"] == "account"
    calls = (await client.get(f"/v1/sessions/{sid}/tool-calls", headers=auth, params={"status": "failed"})).json()
    assert [(c["call_id"], c["error"]) for c in calls["items"]] == [("c2", "timeout")]
    audit = (await client.get(f"/v1/sessions/{sid}/audit", headers=auth, params={"section": "billing"})).json()
    assert [a["new_value"] for a in audit["items"]][-1] == {"duplicate": True, "refunded": True}
    stats = {s["tool"]: s for s in (await client.get("/v1/stats/tools", headers=auth)).json()["items"]}
    assert stats["unlock"]["failure_rate"] == 1.0 and stats["refund"]["avg_duration_ms"] >= 120
    approved = (await client.get("/v1/approvals", headers=auth, params={"status": "approved"})).json()
    assert sid in {a["session_id"] for a in approved["items"]}


async def test_query_api_cursor_pages_cover_everything_once(world) -> None:
    written = [await _write(world, n_messages=0) for _ in range(5)]
    await _published(world, [r for _, recorded in written for r in recorded])
    client, auth = world["client"], _auth(world)
    for sid, recorded in written:
        await client.get(f"/v1/sessions/{sid}", headers=auth, params={"min_version": recorded[-1].version})
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "workflow": "support-case", "agent": "billing", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/sessions", headers=auth, params=params)).json()
        seen += [item["session_id"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == sorted(set(seen)) and {sid for sid, _ in written} <= set(seen)
    sid, recorded = written[0]
    lines, cursor = [], None
    while True:
        page = (
            await client.get(
                f"/v1/sessions/{sid}/timeline",
                headers=auth,
                params={"limit": 4, **({"cursor": cursor} if cursor else {})},
            )
        ).json()
        lines += [item["version"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert lines == [r.version for r in recorded]


async def test_query_api_search_finds_sessions_by_id_or_title_of_its_tenant_only(world) -> None:
    tag = uuid.uuid4().hex[:6]
    mine, recorded = await _write(world, session_id=f"s-{tag}-Mine")
    theirs, their_events = await _write(world, tenant="other", session_id=f"s-{tag}-theirs")
    await _published(world, recorded + their_events)
    client, auth = world["client"], _auth(world)
    await client.get(f"/v1/sessions/{mine}", headers=auth, params={"min_version": recorded[-1].version})
    await wait_until(lambda: _projected(world, "other", theirs), timeout=30)

    async def found(q: str) -> list[str]:
        page = (await client.get("/v1/sessions", headers=auth, params={"q": q, "limit": 200})).json()
        return [item["session_id"] for item in page["items"]]

    assert await found(tag.upper()) == [mine]  # any case; another tenant's match is not shown
    assert await found(f"{tag}-mine") == [mine]
    title = (await client.get(f"/v1/sessions/{mine}", headers=auth)).json()["title"]
    if title:
        assert mine in await found(title[2:8].swapcase())
    assert await found(f"{tag}-nothing") == []
    assert await found("%") == []  # a substring, not a LIKE pattern


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/sessions", {"q": "x" * 201}, "query.q"),
        ("/v1/sessions/s1/events", {"after_version": -1}, "query.after_version"),
        ("/v1/sessions", {"limit": 0}, "query.limit"),
        ("/v1/sessions", {"limit": "many"}, "query.limit"),
        ("/v1/sessions", {"status": "sleeping"}, "query.status"),
        ("/v1/sessions", {"updated_since": "yesterday"}, "query.updated_since"),
        ("/v1/sessions", {"cursor": "not-a-cursor"}, "query.cursor"),
        ("/v1/sessions", {"min_position": 2**70}, "query.min_position"),
        ("/v1/sessions/s1/timeline", {"cursor": "WyJzZXNzaW9uczpkZXNjIiwieCIsInkiXQ"}, "query.cursor"),
        ("/v1/sessions/s1", {"min_version": -1}, "query.min_version"),
        ("/v1/sessions/s1", {"wait_ms": 999999}, "query.wait_ms"),
        ("/v1/sessions/bad%20id", {}, "path.session_id"),
        ("/v1/approvals", {"status": "maybe"}, "query.status"),
    ],
)
async def test_query_api_bad_parameters_are_422_with_field_and_reason(world, path, params, field) -> None:
    response = await world["client"].get(path, headers=_auth(world), params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert errors[0]["field"] == field and errors[0]["reason"]


async def test_query_api_min_position_of_another_tenant_is_422(world) -> None:
    _, theirs = await _write(world, tenant="other")
    response = await world["client"].get(
        "/v1/sessions", headers=_auth(world), params={"min_position": theirs[0].position}
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "query.min_position"


async def test_query_api_without_a_valid_key_is_401(world) -> None:
    client = world["client"]
    assert (await client.get("/v1/sessions")).status_code == 401
    bad = await client.get("/v1/sessions", headers={"Authorization": "Bearer al_nope_nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthenticated"


async def test_query_api_health_ready_metrics_openapi(world) -> None:
    client = world["client"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    await client.get("/v1/stats/tools", headers=_auth(world))
    metrics = (await client.get("/metrics")).text
    assert "agentlog_projection_lag_events" in metrics and "agentlog_queries_request_seconds" in metrics
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/v1/sessions", "/v1/sessions/{session_id}/timeline", "/v1/approvals", "/v1/stats/tools"} <= set(paths)
