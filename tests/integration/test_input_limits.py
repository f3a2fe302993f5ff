"""Input limits of both APIs: what the command API would accept but a store or read model could
not keep, and what the query API cannot compare, is a 422 invalid_input naming the field, never a
500 and never accepted-then-parked (issue 9 items 2, 3, 4, 12). The command limits are checked
against the read-model column types, so a narrower column cannot slip in unnoticed."""

from __future__ import annotations

import base64
import json

import httpx
import orjson
import pytest

from agentlog.edge.keys import create_key
from commands import models as cmd
from eventstore import db
from eventstore.settings import Settings
from projections.api.app import create_app
from projections.settings import QueriesSettings
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    counts,
    http,
    new_session_id,
    start,
    tenant,
)

INT_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}


def _refusal(response: httpx.Response, field: str) -> dict:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_input"
    fields = [e["field"] for e in body["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), (field, body["errors"])
    return body


async def _column_range(pool, table: str, column: str) -> tuple[int, int]:
    kind = await pool.fetchval(
        "SELECT data_type FROM information_schema.columns WHERE table_name = $1 AND column_name = $2", table, column
    )
    return INT_RANGES[kind]


async def test_command_integer_limits_fit_the_read_model_columns(pool) -> None:
    """Derived from the schema: every integer a command may carry fits the column it lands in."""
    step_low, step_high = await _column_range(pool, "session_summaries_v1", "last_step")
    assert step_low <= 0 and step_high == cmd.MAX_STEP
    duration_low, duration_high = await _column_range(pool, "tool_calls_v1", "duration_ms")
    assert duration_low <= 0 and duration_high >= cmd.MAX_DURATION_MS
    _, total_high = await _column_range(pool, "tool_stats_v1", "total_duration_ms")
    assert total_high >= cmd.MAX_DURATION_MS * 2**31  # two billion calls of the longest duration


async def test_command_api_checkpoint_step_beyond_the_summary_column_is_refused(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    before = await counts(pool, tenant.name, sid)
    for step in (2**31, 2**63, 2**64, 10**30, -1):
        r = await http.post(f"/v1/sessions/{sid}/checkpoints", json={"name": "n", "step": step}, headers=tenant.writer)
        _refusal(r, "step")
    assert await counts(pool, tenant.name, sid) == before
    ok = await http.post(
        f"/v1/sessions/{sid}/checkpoints", json={"name": "n", "step": 2**31 - 1}, headers=tenant.writer
    )
    assert ok.status_code == 200, ok.text


async def test_command_api_approval_expiry_beyond_year_9999_in_utc_is_refused(http, tenant) -> None:
    sid = await start(http, tenant)
    for expires_at in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00"):
        r = await http.post(
            f"/v1/sessions/{sid}/approvals",
            headers=tenant.writer,
            json={"action": "x", "requested_by": "p", "expires_at": expires_at},
        )
        _refusal(r, "expires_at")
    ok = await http.post(
        f"/v1/sessions/{sid}/approvals",
        headers=tenant.writer,
        json={"action": "x", "requested_by": "p", "expires_at": "9999-12-31T23:59:59Z"},
    )
    assert ok.status_code == 200, ok.text


def _deep(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


NUL_BODIES = [
    ("sessions", "POST", {"metadata": {"k": "a\x00"}}, "metadata"),
    ("sessions", "POST", {"metadata": {"k\x00": 1}}, "metadata"),
    ("sessions", "POST", {"title": "a\x00b"}, "title"),
    ("messages", "POST", {"role": "user", "content": "a\x00"}, "content"),
    ("tool-calls", "POST", {"tool": "t", "arguments": {"x": ["\x00"]}}, "arguments"),
    ("errors", "POST", {"message": "m", "details": {"d": "\x00"}}, "details"),
    ("approvals", "POST", {"action": "x", "requested_by": "p", "details": {"\x00": 1}}, "details"),
    ("checkpoints", "POST", {"name": "n\x00"}, "name"),
    ("state/sec?agent=billing", "PATCH", {"k": "v\x00"}, "body"),
    ("state/sec?agent=billing", "PATCH", {"k\x00": 1}, "body"),
    (
        "commands",
        "POST",
        {
            "commands": [
                {"type": "add_message", "role": "user", "content": "ok"},
                {"type": "record_error", "message": "m", "details": {"x": "\x00"}},
            ]
        },
        "commands.1",
    ),
]


@pytest.mark.parametrize("path, method, body, field", NUL_BODIES)
async def test_command_api_nul_anywhere_is_refused_naming_the_field(
    http, tenant, pool, path, method, body, field
) -> None:
    sid = await start(http, tenant, agents=["billing"])
    before = await counts(pool, tenant.name, sid)
    if path == "sessions":
        r = await http.post("/v1/sessions", json={"session_id": new_session_id(), **body}, headers=tenant.writer)
    else:
        r = await http.request(method, f"/v1/sessions/{sid}/{path}", json=body, headers=tenant.writer)
    _refusal(r, field)
    assert await counts(pool, tenant.name, sid) == before


async def test_command_api_tool_result_with_nul_is_refused(http, tenant) -> None:
    sid = await start(http, tenant)
    assert (
        await http.post(f"/v1/sessions/{sid}/tool-calls", json={"call_id": "c1", "tool": "t"}, headers=tenant.writer)
    ).status_code == 200
    r = await http.post(
        f"/v1/sessions/{sid}/tool-calls/c1/result",
        headers=tenant.writer,
        json={"status": "completed", "result": {"out": "\x00"}},
    )
    _refusal(r, "completed.result")


@pytest.mark.parametrize("depth, idempotent", [(65, False), (252, True), (253, False), (254, False)])
async def test_command_api_state_patch_nested_too_deep_is_refused(http, tenant, depth, idempotent) -> None:
    sid = await start(http, tenant, agents=["billing"])
    headers = {**tenant.writer, **({"Idempotency-Key": f"deep-{depth}"} if idempotent else {})}
    r = await http.patch(
        f"/v1/sessions/{sid}/state/sec?agent=billing",
        headers=headers,
        content=json.dumps(_deep(depth)),
    )
    body = _refusal(r, "body")
    assert "nested deeper" in body["errors"][0]["reason"]
    ok = await http.patch(f"/v1/sessions/{sid}/state/sec?agent=billing", json=_deep(60), headers=tenant.writer)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_command_api_non_finite_numbers_are_refused_not_stored_as_null(http, tenant, pool, number) -> None:
    sid = await start(http, tenant, agents=["billing"])
    before = await counts(pool, tenant.name, sid)
    headers = {**tenant.writer, "Content-Type": "application/json"}
    r = await http.post(
        f"/v1/sessions/{sid}/errors", headers=headers, content=f'{{"message": "m", "details": {{"x": {number}}}}}'
    )
    assert "finite" in _refusal(r, "details")["errors"][0]["reason"]
    r = await http.patch(f"/v1/sessions/{sid}/state/sec?agent=billing", headers=headers, content=f'{{"x": [{number}]}}')
    _refusal(r, "body")
    assert await counts(pool, tenant.name, sid) == before


async def test_command_api_integers_beyond_64_bits_in_json_are_refused(http, tenant) -> None:
    sid = await start(http, tenant)
    r = await http.post(
        f"/v1/sessions/{sid}/tool-calls", headers=tenant.writer, json={"tool": "t", "arguments": {"n": 10**30}}
    )
    assert "64-bit" in _refusal(r, "arguments")["errors"][0]["reason"]


@pytest.fixture
async def queries(fresh_database_url: str, kafka_bootstrap: str, topic: str):
    """The query API on a fresh database (no projector: these requests are refused before any read)."""
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=2)
    key = await create_key(pool, "acme", "reader")
    service = Settings(database_url=fresh_database_url, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic=topic)
    app = create_app(QueriesSettings(projector_group="agentlog.test.limits.v1", poll_interval_ms=200), shared=service)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://queries",
            headers={"Authorization": f"Bearer {key}"},
        ) as client,
    ):
        yield client
    await pool.close()


NUL = "\x00"


def _cursor(*keys) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(keys))).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "url, field",
    [
        ("/v1/sessions?agent=a%00b", "query.agent"),
        ("/v1/sessions?workflow=%00", "query.workflow"),
        ("/v1/sessions/s1/audit?section=x%00", "query.section"),
        ("/v1/sessions?updated_since=9999-12-31T23:59:59-14:00", "query.updated_since"),
        ("/v1/sessions?updated_since=0001-01-01T00:00:00%2B01:00", "query.updated_since"),
        (f"/v1/sessions?cursor={_cursor('sessions:desc', 'not a date', 's1')}", "query.cursor"),
        (f"/v1/sessions?cursor={_cursor('sessions:desc', '9999-12-31T23:59:59-14:00', 's1')}", "query.cursor"),
        ("/v1/sessions?cursor=" + _cursor("sessions:desc", "2025-01-01T00:00:00+00:00", "s" + NUL), "query.cursor"),
        ("/v1/sessions?cursor=" + _cursor("sessions:desc", "x" + NUL, "s1"), "query.cursor"),
        (f"/v1/approvals?cursor={_cursor('approvals', True)}", "query.cursor"),
    ],
)
async def test_query_api_unstorable_parameters_are_refused_naming_the_field(queries, url, field) -> None:
    _refusal(await queries.get(url), field)


async def test_query_api_updated_since_at_the_edge_of_the_range_is_served(queries) -> None:
    r = await queries.get("/v1/sessions?updated_since=9999-12-31T23:59:59Z")
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
