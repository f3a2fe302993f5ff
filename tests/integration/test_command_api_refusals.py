"""Everything the command API refuses: domain rules, bad input, auth, other tenants. Each answer
is problem+json with a stable code (and field + reason for bad input), never a 500, and nothing
is written."""

from __future__ import annotations

import pytest

from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    counts,
    http,
    new_session_id,
    other_tenant,
    start,
    tenant,
)


async def _refused(http, tenant, sid, path, body, status, code, method="POST"):
    r = await http.request(method, f"/v1/sessions/{sid}/{path}", json=body, headers=tenant.writer)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code
    return r


async def test_command_api_refuses_every_domain_rule_and_writes_nothing(http, tenant, pool):
    sid = await start(http, tenant, agents=["billing"])
    w = tenant.writer
    for path, body in [
        ("tool-calls", {"call_id": "c1", "tool": "refund"}),
        ("tool-calls/c1/result", {"status": "failed", "error": "boom"}),
        ("approvals", {"approval_id": "a1", "action": "x", "requested_by": "p"}),
        ("approvals/a1/decision", {"decision": "approved", "reviewer": "r"}),
    ]:
        assert (await http.post(f"/v1/sessions/{sid}/{path}", json=body, headers=w)).status_code == 200
    assert (
        await http.patch(f"/v1/sessions/{sid}/state/billing?agent=billing", json={"a": 1}, headers=w)
    ).status_code == 200
    before = await counts(pool, tenant.name, sid)
    cases = [
        ("tool-calls/nope/result", {"status": "completed"}, 409, "tool_call_not_open"),
        ("tool-calls/c1/result", {"status": "completed", "result": 1}, 409, "tool_call_not_open"),
        ("tool-calls", {"call_id": "c1", "tool": "other"}, 409, "tool_call_id_in_use"),
        ("approvals/a1/decision", {"decision": "rejected", "reviewer": "r"}, 409, "approval_already_decided"),
        ("approvals/a9/decision", {"decision": "approved", "reviewer": "r"}, 404, "approval_not_found"),
        ("approvals", {"approval_id": "a1", "action": "x", "requested_by": "p"}, 409, "approval_already_decided"),
        ("approvals", {"action": "x", "requested_by": "p", "expires_at": "2000-01-01T00:00:00Z"}, 422, "invalid_input"),
    ]
    for path, body, status, code in cases:
        await _refused(http, tenant, sid, path, body, status, code)
    await _refused(
        http, tenant, sid, "state/billing?agent=account", {"b": 2}, 409, "section_owned_by_other_agent", method="PATCH"
    )
    r = await http.post("/v1/sessions", json={"session_id": sid}, headers=w)
    assert r.status_code == 409 and r.json()["code"] == "session_already_started"
    assert await counts(pool, tenant.name, sid) == before

    assert (await http.post(f"/v1/sessions/{sid}/cancel", headers=w)).status_code == 200
    closed = await counts(pool, tenant.name, sid)
    for path, body in [
        ("messages", {"role": "user", "content": "late"}),
        ("complete", {}),
        ("fail", {"reason": "x"}),
        ("errors", {"message": "m"}),
        ("checkpoints", {"name": "n"}),
    ]:
        r = await _refused(http, tenant, sid, path, body, 409, "session_closed")
        assert r.json()["session_status"] == "cancelled"
    assert await counts(pool, tenant.name, sid) == closed


async def test_command_api_unknown_session_is_404_and_writes_nothing(http, tenant, pool):
    sid = new_session_id()
    for path, body in [
        ("messages", {"role": "user", "content": "x"}),
        ("complete", {}),
        ("tool-calls", {"tool": "t"}),
        ("commands", {"commands": [{"type": "add_message", "role": "user", "content": "x"}]}),
    ]:
        await _refused(http, tenant, sid, path, body, 404, "session_not_found")
    assert await counts(pool, tenant.name, sid) == (0, 0, 0)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"role": "robot", "content": "x"}, "role"),
        ({"role": "user", "content": 5}, "content"),
        ({"role": "user"}, "content"),
        ({"role": "user", "content": "x", "colour": "red"}, "colour"),
        ({"role": "user", "content": "x", "agent": "has space"}, "agent"),
        ({"role": "user", "content": ""}, "content"),
        ([1, 2], "body"),
    ],
)
async def test_command_api_bad_body_is_422_with_field_and_reason(http, tenant, body, field):
    sid = await start(http, tenant)
    r = await _refused(http, tenant, sid, "messages", body, 422, "invalid_input")
    assert field in [e["field"] for e in r.json()["errors"]], r.json()
    assert all(e["reason"] for e in r.json()["errors"])


async def test_command_api_malformed_json_is_400(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    for raw in (b'{"role": "user", ', b"not json", b'{"role": "user"}}'):
        r = await http.post(
            f"/v1/sessions/{sid}/messages", content=raw, headers={**tenant.writer, "content-type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["code"] == "malformed_json"
        assert r.json()["errors"][0]["field"] == "body"
    assert await counts(pool, tenant.name, sid) == (1, 1, 1)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sessions/has%20space/messages",
        "/v1/sessions/-leading-dash/messages",
        "/v1/sessions/" + "x" * 129 + "/messages",
    ],
)
async def test_command_api_bad_session_id_is_422(http, tenant, path) -> None:
    r = await http.post(path, json={"role": "user", "content": "x"}, headers=tenant.writer)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "path.session_id"


async def test_command_api_bad_ids_in_body_and_headers_are_422(http, tenant) -> None:
    r = await http.post("/v1/sessions", json={"session_id": "bad id"}, headers=tenant.writer)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "session_id"
    sid = await start(http, tenant)
    for header, value in [
        ("If-Match", 'W/"1"'),
        ("If-Match", "abc"),
        ("Idempotency-Key", "x" * 300),
        ("X-Correlation-Id", "a b"),
    ]:
        r = await http.post(
            f"/v1/sessions/{sid}/messages",
            json={"role": "user", "content": "x"},
            headers={**tenant.writer, header: value},
        )
        assert r.status_code == 422, (header, r.text)
        assert r.json()["errors"][0]["field"] == f"header.{header}"


async def test_command_api_oversized_body_is_413_before_parsing(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    big = {"role": "user", "content": "x" * (1024 * 1024 + 1)}  # over the 1 MiB default
    r = await http.post(f"/v1/sessions/{sid}/messages", json=big, headers=tenant.writer)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(129):  # 129 x 8 KiB: over the 1 MiB default
            yield b"x" * 8192

    r = await http.post(
        f"/v1/sessions/{sid}/messages", content=chunks(), headers={**tenant.writer, "content-type": "application/json"}
    )
    assert r.status_code == 413
    too_long = {"role": "user", "content": "x" * (70 * 1024)}  # under the body limit
    r = await _refused(http, tenant, sid, "messages", too_long, 422, "invalid_input")
    assert r.json()["errors"][0]["field"] == "content"
    assert await counts(pool, tenant.name, sid) == (1, 1, 1)


async def test_command_api_requires_a_writer_key(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    body = {"role": "user", "content": "x"}
    url = f"/v1/sessions/{sid}/messages"
    for headers, status, code in [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Bearer al_nope_nope"}, 401, "unauthenticated"),
        ({"Authorization": "Basic abc"}, 401, "unauthenticated"),
        (tenant.reader, 403, "forbidden"),
    ]:
        r = await http.post(url, json=body, headers=headers)
        assert (r.status_code, r.json()["code"]) == (status, code)
    r = await http.post(url, json={"bad": "body"}, headers={})
    assert r.status_code == 401  # a stranger learns nothing about the body's shape
    assert (await http.post(url, json=body, headers=tenant.admin)).status_code == 200
    assert await counts(pool, tenant.name, sid) == (2, 2, 2)


async def test_command_api_other_tenants_session_is_404(http, tenant, other_tenant, pool):
    sid = await start(http, tenant)
    r = await http.post(
        f"/v1/sessions/{sid}/messages", json={"role": "user", "content": "x"}, headers=other_tenant.writer
    )
    assert r.status_code == 404 and r.json()["code"] == "session_not_found"
    r = await http.post(f"/v1/sessions/{sid}/complete", headers=other_tenant.writer)
    assert r.status_code == 404
    # The same id is a different session in the other tenant.
    assert (await http.post("/v1/sessions", json={"session_id": sid}, headers=other_tenant.writer)).status_code == 201
    assert await counts(pool, tenant.name, sid) == (1, 1, 1)
    assert await counts(pool, other_tenant.name, sid) == (1, 1, 1)


async def test_command_api_idempotency_keys_are_per_tenant(http, tenant, other_tenant) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    a = await http.post("/v1/sessions", json={}, headers={**tenant.writer, **headers})
    b = await http.post("/v1/sessions", json={}, headers={**other_tenant.writer, **headers})
    assert a.status_code == b.status_code == 201
    assert a.json()["session_id"] != b.json()["session_id"]


async def test_command_api_health_ready_metrics_and_openapi(http, tenant) -> None:
    await start(http, tenant)
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ready"}
    text = (await http.get("/metrics")).text
    assert 'agentlog_commands_total{command="start_session",outcome="ok"}' in text
    assert "agentlog_commands_append_seconds_bucket" in text
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert "/v1/sessions/{session_id}/state/{section}" in paths
    r = await http.get("/v1/unknown")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_command_api_refuses_a_body_that_is_not_json_with_415(http, tenant, pool, content_type):
    # Regression: curl's -d sends a form body; it surfaced as a puzzling 422 "body: should be a
    # valid dictionary" instead of saying what is wrong.
    sid = await start(http, tenant)
    before = await counts(pool, tenant.name, sid)
    r = await http.post(
        f"/v1/sessions/{sid}/messages",
        content=b'{"role": "user", "content": "x"}',
        headers={**tenant.writer, "Content-Type": content_type},
    )
    assert r.status_code == 415, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "unsupported_media_type"
    assert r.json()["errors"][0]["field"] == "header.Content-Type"
    assert await counts(pool, tenant.name, sid) == before


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.agentlog+json", None])
async def test_command_api_accepts_json_media_types_and_a_missing_content_type(http, tenant, content_type):
    sid = await start(http, tenant)
    headers = {**tenant.writer, **({"Content-Type": content_type} if content_type else {})}
    r = await http.post(f"/v1/sessions/{sid}/messages", content=b'{"role": "user", "content": "x"}', headers=headers)
    assert r.status_code == 200, r.text
