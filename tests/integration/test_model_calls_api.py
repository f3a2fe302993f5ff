"""POST /v1/sessions/{id}/model-calls and /compactions on the real command API and Postgres: the
stored events rebuild every request exactly, references that do not resolve are a 422 naming the
item, a repeat appends nothing, and every projection applies the new events without parking."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore.context import ContextIndex
from eventstore.store import EventStore
from projections.projector.applier import BatchApplier
from projections.read_models.catalog import PROJECTIONS
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    Tenant,
    command_app,
    counts,
    http,
    new_session_id,
    start,
    tenant,
)
from tests.integration.test_accepted_is_projected import _send, objects, wide_and_shallow
from tests.integration.timetravel_support import USER, model_call, record_conversation


async def test_model_calls_recorded_through_the_api_rebuild_every_request_exactly(http, tenant, pool) -> None:
    sid = new_session_id()
    full = await record_conversation(http, tenant.writer, sid)
    events = await EventStore(pool).read_stream(tenant.name, sid)
    assert [e.type for e in events].count("ModelCallRecorded") == 3
    assert "ContextCompacted" in [e.type for e in events]
    index = ContextIndex(events)
    for call_id, expected in full.items():
        assert index.context(call_id).request == expected, call_id
    # The log holds the conversation once: no call repeats the user's message.
    calls = [e.data for e in events if e.type == "ModelCallRecorded"]
    assert all(USER not in call["request"]["messages"] for call in calls)


async def test_model_call_with_a_reference_that_does_not_resolve_is_refused_and_writes_nothing(
    http, tenant, pool
) -> None:
    sid = await start(http, tenant)
    body = model_call("m1", [{"ref": "message", "index": 0}, {"ref": "call", "call_id": "m0"}], {"content": "x"})
    response = await http.post(f"/v1/sessions/{sid}/model-calls", json=body, headers=tenant.writer)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_input"
    assert [e["field"] for e in problem["errors"]] == ["request.messages.0", "request.messages.1"]
    assert (await counts(pool, tenant.name, sid))[0] == 1


async def test_model_call_repeated_appends_nothing_and_another_payload_is_a_conflict(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    body = model_call("m1", [USER], {"content": "hello"})
    first = await http.post(f"/v1/sessions/{sid}/model-calls", json=body, headers=tenant.writer)
    again = await http.post(f"/v1/sessions/{sid}/model-calls", json=body, headers=tenant.writer)
    assert first.status_code == again.status_code == 200
    assert again.json()["version"] == first.json()["version"] == 2 and again.json()["event_ids"] == []
    other = await http.post(f"/v1/sessions/{sid}/model-calls", json={**body, "latency_ms": 1}, headers=tenant.writer)
    assert other.status_code == 409 and other.json()["code"] == "model_call_id_in_use"


async def test_model_call_body_limits_are_a_422_naming_the_field(http, tenant) -> None:
    sid = await start(http, tenant)
    huge = {"role": "user", "content": "x" * (70 * 1024)}
    response = await http.post(
        f"/v1/sessions/{sid}/model-calls", json=model_call("m1", [huge], {}), headers=tenant.writer
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "request.messages.0"
    unknown_session = await http.post(
        f"/v1/sessions/{new_session_id()}/model-calls", json=model_call("m1", [USER], {}), headers=tenant.writer
    )
    assert unknown_session.status_code == 404


async def test_model_calls_in_a_command_batch_are_applied_atomically(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    batch = {
        "commands": [
            {"type": "add_message", "role": "user", "content": "hi"},
            {"type": "record_model_call", **model_call("m1", [{"ref": "message", "index": 0}], {"content": "yo"})},
            {"type": "compact_context", "compaction_id": "k1", "replaced": [{"ref": "call", "call_id": "m1"}]},
        ]
    }
    response = await http.post(f"/v1/sessions/{sid}/commands", json=batch, headers=tenant.writer)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 4


async def test_every_projection_applies_model_calls_and_compactions_without_parking(http, tenant, pool) -> None:
    sid = new_session_id()
    await record_conversation(http, tenant.writer, sid)
    events = await EventStore(pool).read_stream(tenant.name, sid)
    group = f"agentlog.test.model-calls.{uuid.uuid4().hex[:6]}"
    async with pool.acquire() as conn, conn.transaction():
        result = await BatchApplier(PROJECTIONS, group, 1).apply(conn, events)
    assert result.parked == [] and result.applied == len(events)
    rows = await pool.fetch(
        "SELECT type, summary, agent FROM session_timeline_v1 WHERE tenant = $1 AND session_id = $2 "
        "AND type IN ('ModelCallRecorded', 'ContextCompacted') ORDER BY version",
        tenant.name,
        sid,
    )
    assert [(r["type"], r["agent"]) for r in rows] == [
        ("ModelCallRecorded", "billing"),
        ("ModelCallRecorded", "billing"),
        ("ContextCompacted", "billing"),
        ("ModelCallRecorded", "billing"),
    ]
    assert rows[1]["summary"].startswith("model call m2: openai/gpt-4o, 3 message items (2 by reference)")


# The "accepted is projected" rule (tests/integration/test_accepted_is_projected.py) for the new
# endpoints: whatever hostile JSON a model call carries, it is a 4xx or events every projection applies.
model_call_requests = st.one_of(
    st.builds(
        lambda m, c, p: (
            "model-calls",
            "POST",
            model_call("m1", [{"role": "user", **m}], {"content": c}, parameters=p),
        ),
        objects.filter(lambda m: isinstance(m, dict)),  # spread into the message: a JSON object
        wide_and_shallow,
        objects,
    ),
    st.builds(
        lambda r: ("compactions", "POST", {"replaced": [{"role": "user", "content": "x"}], "replacement": [r]}),
        objects,
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=model_call_requests)
async def test_whatever_the_model_call_api_accepts_every_projection_applies(http, tenant, pool, request) -> None:
    path, method, body = request
    sid = new_session_id()
    status = await _send(http, tenant, sid, path, method, body)
    events = await EventStore(pool).read_stream(tenant.name, sid)
    assert len(events) == (1 if status >= 400 else 2)
    async with pool.acquire() as conn, conn.transaction():
        result = await BatchApplier(PROJECTIONS, f"agentlog.test.mc.{uuid.uuid4().hex[:6]}", 1).apply(conn, events)
    assert result.parked == [], (request, result.parked)
