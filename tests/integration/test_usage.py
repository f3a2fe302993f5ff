"""Usage and budgets on the real stack: model calls written through the command API (with a price
table, then a price change), the events published to Kafka as the relay does, projected by a real
projector and read back through the query API: sums equal the recorded calls, a fork counts only
its own calls, a cost keeps the price of its time, budgets flag once, tenants see only theirs,
bad filters are 422 problems."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from commands.api.app import create_app as create_commands_app
from commands.api.settings import CommandsSettings
from eventstore import db
from eventstore.settings import Settings
from eventstore.store import EventStore
from projections.api.app import create_app as create_queries_app
from projections.settings import QueriesSettings
from tests.factories import random_id
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    Tenant,
    command_app,
    http,
    new_session_id,
    start,
    tenant,
)
from tests.integration.projection_support import produce, running_projector, settings

PROBLEM = "application/problem+json"
V1 = {
    "version": "v1",
    "effective_from": "2000-01-01T00:00:00Z",
    "models": {"m-a": {"input": 1.0, "output": 2.0, "cached": 0.5}, "m-b": {"input": 3.0, "output": 6.0}},
}


def _prices(tmp_path: Path, name: str, *versions: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"versions": list(versions)}))
    return str(path)


def _call(call_id: str, model: str, agent: str, tokens: tuple[int, int, int], *, error: str | None = None) -> dict:
    inp, out, cached = tokens
    return {
        "call_id": call_id,
        "agent": agent,
        "model": model,
        "request": {"messages": [{"role": "user", "content": "hi"}]},
        "response": {"error": error} if error else {"content": "ok"},
        "usage": {"input_tokens": inp, "output_tokens": out, "cached_tokens": cached},
        "latency_ms": 100 * tokens[1] // 10,
    }


class _Commands:
    """A command API on the world's database with a given price file."""

    def __init__(self, url: str, prices_file: str) -> None:
        self.app = create_commands_app(
            CommandsSettings(prices_file=prices_file), shared=Settings(database_url=SecretStr(url))
        )

    async def __aenter__(self) -> httpx.AsyncClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://commands")
        return self._client

    async def __aexit__(self, *exc) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(*exc)


async def _post(client: httpx.AsyncClient, key: str, path: str, body: dict) -> dict:
    response = await client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code in (200, 201), (path, response.text)
    return response.json()


async def test_usage_sums_equal_the_recorded_calls_with_a_fork_a_price_change_and_a_budget(
    fresh_database_url, kafka_bootstrap, topic, tmp_path
) -> None:
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    keys = {t: (await create_key(pool, t, "writer"), await create_key(pool, t, "reader")) for t in ("acme", "other")}
    (aw, ar), (ow, orr) = keys["acme"], keys["other"]
    case, fork, capped = "case-1", "case-1-fork", "capped-1"
    async with _Commands(fresh_database_url, _prices(tmp_path, "p1.json", V1)) as c:
        await _post(c, aw, "/v1/sessions", {"session_id": case, "agents": ["billing", "account"]})
        await _post(c, aw, f"/v1/sessions/{case}/model-calls", _call("c1", "m-a", "billing", (1000, 100, 400)))
        await _post(
            c, aw, f"/v1/sessions/{case}/model-calls", _call("c2", "m-b", "account", (200, 50, 0), error="rate limited")
        )
        v3 = await _post(c, aw, f"/v1/sessions/{case}/model-calls", _call("c3", "m-unknown", "billing", (10, 10, 0)))
        # the fork inherits c1..c3 in its state but must not count them
        await _post(c, aw, f"/v1/sessions/{case}/fork", {"at_version": v3["version"], "new_session_id": fork})
        await _post(c, aw, f"/v1/sessions/{fork}/model-calls", _call("f1", "m-a", "billing", (500, 50, 0)))
        # a budget of 1500 tokens: the second call crosses it, the third is recorded all the same
        await _post(c, aw, "/v1/sessions", {"session_id": capped, "budget": {"max_tokens": 1500}})
        for i in range(3):
            await _post(c, aw, f"/v1/sessions/{capped}/model-calls", _call(f"b{i}", "m-a", "billing", (900, 100, 0)))
        await _post(c, ow, "/v1/sessions", {"session_id": case})  # another tenant, same session id
        await _post(c, ow, f"/v1/sessions/{case}/model-calls", _call("c1", "m-a", "billing", (7, 7, 0)))
    # the price of m-a changes from now on: only calls after the change pay it
    v2 = {
        "version": "v2",
        "effective_from": (datetime.now(UTC) - timedelta(milliseconds=1)).isoformat(),
        "models": {"m-a": {"input": 10.0, "output": 20.0, "cached": 5.0}},
    }
    async with _Commands(fresh_database_url, _prices(tmp_path, "p2.json", V1, v2)) as c:
        await _post(c, aw, f"/v1/sessions/{case}/model-calls", _call("c4", "m-a", "billing", (100, 10, 0)))

    store = EventStore(pool)
    recorded = [
        r
        for tenant, sid in (("acme", case), ("acme", fork), ("acme", capped), ("other", case))
        for r in await store.read_stream(tenant, sid)
    ]
    budget_events = [r for r in recorded if r.type == "BudgetExceeded"]
    assert [(r.session_id, r.data["call_id"]) for r in budget_events] == [(capped, "b1")]
    s = settings()
    service = Settings(database_url=fresh_database_url, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic=topic)
    queries = create_queries_app(QueriesSettings(projector_group=s.group_id, poll_interval_ms=200), shared=service)
    async with queries.router.lifespan_context(queries), running_projector(pool, kafka_bootstrap, topic, s):
        await produce(kafka_bootstrap, topic, recorded)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=queries), base_url="http://q") as q:
            acme = {"Authorization": f"Bearer {ar}"}
            # wait for every session of acme to be projected up to its last version
            for sid in (case, fork, capped):
                version = max(r.version for r in recorded if r.session_id == sid and r.tenant == "acme")
                got = await q.get(
                    f"/v1/sessions/{sid}", headers=acme, params={"min_version": version, "wait_ms": 20000}
                )
                assert got.status_code == 200, got.text

            # c1: (1000-400)*1 + 400*0.5 + 100*2 = 1000 per million; c2: 200*3 + 50*6 = 900; c3 unpriced;
            # f1: 500 + 100 = 600; b0..b2: 900 + 200 = 1100 each; c4 at v2: 100*10 + 10*20 = 1200
            per_million = {"c1": 1000, "c2": 900, "f1": 600, "b": 1100, "c4": 1200}
            report = (await q.get("/v1/stats/usage", headers=acme, params={"group_by": "session"})).json()
            by_session = {g["key"]: g for g in report["groups"]}
            assert set(by_session) == {case, fork, capped}
            main = by_session[case]
            assert (main["model_calls"], main["input_tokens"], main["output_tokens"], main["cached_tokens"]) == (
                4,
                1000 + 200 + 10 + 100,
                100 + 50 + 10 + 10,
                400,
            )
            assert (
                Decimal(str(main["cost_usd"]))
                == Decimal(per_million["c1"] + per_million["c2"] + per_million["c4"]) / 10**6
            )
            assert (main["unpriced_calls"], main["errors"]) == (1, 1)
            assert by_session[fork]["model_calls"] == 1  # its own call only, not c1..c3
            assert Decimal(str(by_session[fork]["cost_usd"])) == Decimal("0.0006")
            assert Decimal(str(by_session[capped]["cost_usd"])) == Decimal("0.0033")
            totals = report["totals"]
            assert totals["model_calls"] == 4 + 1 + 3
            assert totals["input_tokens"] == sum(g["input_tokens"] for g in report["groups"])
            assert Decimal(str(totals["cost_usd"])) == Decimal("0.0031") + Decimal("0.0006") + Decimal("0.0033")

            # the price change: c4 paid v2, c1 still v1 (stored in its event, not re-priced)
            versions = dict(
                await pool.fetch(
                    "SELECT call_id, price_version FROM model_usage_v1 WHERE tenant = 'acme' AND session_id = $1", case
                )
            )
            assert versions == {"c1": "v1", "c2": "v1", "c3": None, "c4": "v2"}

            by_model = (
                await q.get("/v1/stats/usage", headers=acme, params={"group_by": "model", "session": case})
            ).json()
            assert [(g["key"], g["model_calls"]) for g in by_model["groups"]] == [
                ("m-a", 2),
                ("m-b", 1),
                ("m-unknown", 1),
            ]
            by_agent = (
                await q.get("/v1/stats/usage", headers=acme, params={"group_by": "agent", "agent": "account"})
            ).json()
            assert [(g["key"], g["model_calls"], g["errors"]) for g in by_agent["groups"]] == [("account", 1, 1)]
            today = datetime.now(UTC).date().isoformat()
            by_day = (await q.get("/v1/stats/usage", headers=acme, params={"group_by": "day"})).json()
            assert [g["model_calls"] for g in by_day["groups"]] == [8]
            assert by_day["groups"][0]["key"] in {today, (datetime.now(UTC) - timedelta(days=1)).date().isoformat()}
            future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            later = (await q.get("/v1/stats/usage", headers=acme, params={"since": future})).json()
            assert later["totals"]["model_calls"] == 0

            # the summaries: usage of the session's own calls, and the budget flag
            summary = (await q.get(f"/v1/sessions/{fork}", headers=acme)).json()
            assert summary["usage"]["model_calls"] == 1 and summary["budget"] is None
            capped_summary = (await q.get(f"/v1/sessions/{capped}", headers=acme)).json()
            assert capped_summary["budget"]["exceeded"] is True
            assert (capped_summary["budget"]["exceeded_by"], capped_summary["budget"]["exceeded_kind"]) == (
                "b1",
                "tokens",
            )
            assert capped_summary["usage"]["input_tokens"] == 2700
            listed = (await q.get("/v1/sessions", headers=acme)).json()["items"]
            assert {i["session_id"]: i["usage"]["model_calls"] for i in listed} == {case: 4, fork: 1, capped: 3}

            # tenant isolation: the other tenant's call under the same session id is not acme's
            theirs = {"Authorization": f"Bearer {orr}"}
            got = await wait_for_other(q, theirs, case)
            other = got["totals"]
            assert (other["model_calls"], other["input_tokens"]) == (1, 7)
            assert (await q.get("/v1/stats/usage", headers=theirs, params={"session": fork})).json()["totals"][
                "model_calls"
            ] == 0

            # bad filters: 422 problems naming the parameter
            for params, field in (
                ({"group_by": "tool"}, "query.group_by"),
                ({"since": "yesterday"}, "query.since"),
                ({"since": future, "until": datetime.now(UTC).isoformat()}, "query.until"),
                ({"until": "2026-01-01T00:00:00"}, "query.until"),
                ({"session": "bad id!"}, "query.session"),
                ({"limit": 0}, "query.limit"),
            ):
                bad = await q.get("/v1/stats/usage", headers=acme, params=params)
                assert bad.status_code == 422, (params, bad.text)
                assert bad.headers["content-type"].startswith(PROBLEM)
                assert field in [e["field"] for e in bad.json()["errors"]], (params, bad.json())
            assert (await q.get("/v1/stats/usage")).status_code == 401
    await pool.close()


async def wait_for_other(q: httpx.AsyncClient, headers: dict, session_id: str) -> dict:
    got = await q.get(f"/v1/sessions/{session_id}", headers=headers, params={"min_version": 2, "wait_ms": 20000})
    assert got.status_code == 200, got.text
    return (await q.get("/v1/stats/usage", headers=headers)).json()


async def test_a_budget_crossed_by_concurrent_writers_yields_exactly_one_budget_exceeded(
    http, tenant: Tenant, pool
) -> None:
    sid = await start(http, tenant, budget={"max_tokens": 1000})
    path = f"/v1/sessions/{sid}/model-calls"
    writers = 12  # each call 300 tokens: the 4th recorded crosses 1000, whoever sends it
    answers = await asyncio.gather(
        *(
            http.post(path, json=_call(f"w{i}", "gpt-4o", "billing", (250, 50, 0)), headers=tenant.writer)
            for i in range(writers)
        )
    )
    assert [a.status_code for a in answers] == [200] * writers, [a.text for a in answers if a.status_code != 201]
    events = await EventStore(pool).read_stream(tenant.name, sid)
    calls = [e for e in events if e.type == "ModelCallRecorded"]
    exceeded = [e for e in events if e.type == "BudgetExceeded"]
    assert len(calls) == writers
    assert len(exceeded) == 1
    # appended with the call that crossed it, which is the 4th call recorded
    crossing = next(e for e in events if e.version == exceeded[0].version - 1)
    assert crossing.type == "ModelCallRecorded" and crossing.data["call_id"] == exceeded[0].data["call_id"]
    assert crossing.data["call_id"] == calls[3].data["call_id"]
    assert exceeded[0].data["tokens"] == 1200
    assert all(e.data["cost"]["price_version"] for e in calls)  # gpt-4o has a shipped default price


@pytest.mark.parametrize(
    "budget, field",
    [
        ({}, "budget"),
        ({"max_tokens": 0}, "budget.max_tokens"),
        ({"max_cost_usd": -1}, "budget.max_cost_usd"),
        ({"max_tokens": 10, "extra": 1}, "budget.extra"),
    ],
)
async def test_a_bad_budget_is_a_422_problem_and_starts_nothing(http, tenant: Tenant, pool, budget, field) -> None:
    sid = random_id("s", 16)
    response = await http.post("/v1/sessions", json={"session_id": sid, "budget": budget}, headers=tenant.writer)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert any(e["field"].startswith(field) for e in response.json()["errors"]), response.json()
    assert (
        await pool.fetchval("SELECT count(*) FROM events WHERE tenant = $1 AND session_id = $2", tenant.name, sid) == 0
    )


async def test_a_client_cannot_send_the_cost_of_a_call(http, tenant: Tenant, pool) -> None:
    sid = await start(http, tenant)
    body = {**_call("m1", "gpt-4o", "billing", (10, 10, 0)), "cost": {"usd": 0, "price_version": "free"}}
    response = await http.post(f"/v1/sessions/{sid}/model-calls", json=body, headers=tenant.writer)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert [e["field"] for e in response.json()["errors"]] == ["cost"]
