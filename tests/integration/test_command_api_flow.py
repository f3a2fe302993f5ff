"""The command API end to end on the real database: the demo support case, concurrency and
idempotency. Outcomes are asserted on HTTP answers and on rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    counts,
    http,
    new_session_id,
    start,
    tenant,
)


async def test_command_api_support_case_runs_end_to_end(http, tenant, pool) -> None:
    sid = new_session_id()
    w = tenant.writer
    r = await http.post(
        "/v1/sessions",
        headers=w,
        json={
            "session_id": sid,
            "workflow": "support-case",
            "title": "charged twice, cannot log in",
            "agents": ["billing", "account", "policy", "response"],
        },
    )
    assert r.status_code == 201 and r.headers["etag"] == '"1"'
    assert r.json()["session_id"] == sid and r.json()["version"] == 1
    steps = [
        ("post", "messages", {"role": "user", "content": "I was charged twice"}),
        ("patch", "state/billing?agent=billing", {"duplicate_charge": True}),
        ("patch", "state/account?agent=account", {"locked": True}),
        (
            "post",
            "tool-calls",
            {"call_id": "refund-1", "tool": "refund", "agent": "billing", "arguments": {"amount": "42.00"}},
        ),
        ("post", "tool-calls/refund-1/result", {"status": "completed", "result": {"id": "r1"}, "duration_ms": 120}),
        (
            "post",
            "approvals",
            {"approval_id": "a1", "action": "refund 42.00 EUR", "risk": "high", "requested_by": "policy"},
        ),
        ("post", "approvals/a1/decision", {"decision": "approved", "reviewer": "alice"}),
        ("post", "checkpoints", {"name": "refund-approved", "step": 3}),
        ("post", "errors", {"message": "slow CRM", "kind": "timeout"}),
        ("post", "messages", {"role": "assistant", "content": "Refunded.", "agent": "response"}),
        ("post", "complete", {"outcome": "resolved"}),
    ]
    for version, (method, path, body) in enumerate(steps, start=2):
        r = await http.request(method.upper(), f"/v1/sessions/{sid}/{path}", json=body, headers=w)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["version"] == version and r.headers["etag"] == f'"{version}"'
        assert len(r.json()["event_ids"]) == 1 and r.json()["position"] > 0
    assert await counts(pool, tenant.name, sid) == (12, 12, 12)
    snapshot = await pool.fetchval("SELECT state FROM streams WHERE tenant = $1 AND session_id = $2", tenant.name, sid)
    assert snapshot["status"] == "completed" and snapshot["sections"]["billing"] == {"duplicate_charge": True}


async def test_command_api_start_generates_an_id_when_none_is_given(http, tenant) -> None:
    r = await http.post("/v1/sessions", headers=tenant.writer, json={})
    assert r.status_code == 201 and r.json()["session_id"].startswith("s-")


async def test_command_api_merge_patch_media_type_is_accepted(http, tenant) -> None:
    sid = await start(http, tenant)
    r = await http.patch(
        f"/v1/sessions/{sid}/state/notes?agent=a1",
        content=b'{"x": {"y": 1}}',
        headers={**tenant.writer, "content-type": "application/merge-patch+json"},
    )
    assert r.status_code == 200 and r.json()["version"] == 2


async def test_command_api_batch_applies_all_commands_in_one_append(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    r = await http.post(
        f"/v1/sessions/{sid}/commands",
        headers=tenant.writer,
        json={
            "commands": [
                {"type": "request_tool_call", "call_id": "c1", "tool": "search"},
                {"type": "complete_tool_call", "call_id": "c1", "result": [1, 2]},
                {"type": "add_message", "role": "assistant", "content": "found 2"},
            ]
        },
    )
    assert r.status_code == 200 and r.json()["version"] == 4 and len(r.json()["event_ids"]) == 3
    ids = await pool.fetch(
        "SELECT DISTINCT transaction_id::text FROM events WHERE tenant = $1 AND session_id = $2 AND version > 1",
        tenant.name,
        sid,
    )
    assert len(ids) == 1


async def test_command_api_batch_refused_midway_writes_nothing(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    r = await http.post(
        f"/v1/sessions/{sid}/commands",
        headers=tenant.writer,
        json={
            "commands": [
                {"type": "add_message", "role": "user", "content": "hi"},
                {"type": "complete_tool_call", "call_id": "never-requested"},
            ]
        },
    )
    assert r.status_code == 409 and r.json()["code"] == "tool_call_not_open"
    assert await counts(pool, tenant.name, sid) == (1, 1, 1)


async def test_command_api_if_match_losers_get_409_with_current_version(http, tenant, pool):
    sid = await start(http, tenant)
    answers = await asyncio.gather(
        *(
            http.post(
                f"/v1/sessions/{sid}/messages",
                json={"role": "user", "content": f"m{i}"},
                headers={**tenant.writer, "If-Match": '"1"' if i % 2 else "1"},
            )
            for i in range(8)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 7
    for loser in (a for a in answers if a.status_code == 409):
        assert loser.json()["code"] == "version_conflict"
        assert loser.json()["current_version"] == 2
    assert await counts(pool, tenant.name, sid) == (2, 2, 2)


async def test_command_api_concurrent_writers_without_if_match_lose_nothing(http, tenant, pool):
    sid = await start(http, tenant)
    answers = await asyncio.gather(
        *(
            http.post(f"/v1/sessions/{sid}/messages", json={"role": "user", "content": f"m{i}"}, headers=tenant.writer)
            for i in range(12)
        )
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["version"] for a in answers) == list(range(2, 14))
    versions = await pool.fetch(
        "SELECT version FROM events WHERE tenant = $1 AND session_id = $2 ORDER BY version", tenant.name, sid
    )
    assert [r["version"] for r in versions] == list(range(1, 14))


async def test_command_api_idempotent_repeat_returns_first_answer_and_appends_nothing(
    http,
    tenant,
    pool,
) -> None:
    sid = await start(http, tenant)
    headers = {**tenant.writer, "Idempotency-Key": "msg-1"}
    body = {"role": "user", "content": "hello"}
    first = await http.post(f"/v1/sessions/{sid}/messages", json=body, headers=headers)
    again = await http.post(f"/v1/sessions/{sid}/messages", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await counts(pool, tenant.name, sid) == (2, 2, 2)
    reused = await http.post(
        f"/v1/sessions/{sid}/messages", headers=headers, json={"role": "user", "content": "something else"}
    )
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert await counts(pool, tenant.name, sid) == (2, 2, 2)


async def test_command_api_idempotent_start_repeat_returns_the_generated_id(http, tenant) -> None:
    headers = {**tenant.writer, "Idempotency-Key": "start-1"}
    first = await http.post("/v1/sessions", json={"workflow": "w"}, headers=headers)
    again = await http.post("/v1/sessions", json={"workflow": "w"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()


async def test_command_api_idempotent_requests_at_once_append_once(http, tenant, pool) -> None:
    sid = await start(http, tenant)
    for if_match in (None, '"1"'):
        headers = {**tenant.writer, "Idempotency-Key": f"race-{if_match}"}
        if if_match:
            headers["If-Match"] = f'"{(await counts(pool, tenant.name, sid))[2]}"'
        answers = await asyncio.gather(
            *(
                http.post(f"/v1/sessions/{sid}/messages", headers=headers, json={"role": "user", "content": "once"})
                for _ in range(6)
            )
        )
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
        bodies = [a.json() for a in answers]
        assert all(body == bodies[0] for body in bodies) and len(bodies[0]["event_ids"]) == 1
    assert await counts(pool, tenant.name, sid) == (3, 3, 3)


async def test_command_api_approval_decided_after_expiry_is_refused(
    command_app,
    http,
    tenant,
    pool,
) -> None:
    sid = await start(http, tenant)
    expires = datetime.now(UTC) + timedelta(hours=1)
    r = await http.post(
        f"/v1/sessions/{sid}/approvals",
        headers=tenant.writer,
        json={"approval_id": "a1", "action": "refund", "requested_by": "policy", "expires_at": expires.isoformat()},
    )
    assert r.status_code == 200
    handler = command_app.state.runner.handler
    real_clock = handler._clock
    handler._clock = lambda: expires + timedelta(seconds=1)
    try:
        r = await http.post(
            f"/v1/sessions/{sid}/approvals/a1/decision",
            headers=tenant.writer,
            json={"decision": "approved", "reviewer": "alice"},
        )
    finally:
        handler._clock = real_clock
    assert r.status_code == 409 and r.json()["code"] == "approval_expired"
    assert await counts(pool, tenant.name, sid) == (2, 2, 2)
