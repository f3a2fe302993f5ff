"""What the pipeline property test (test_pipeline_property.py) found, each kept as a test named
after it, on the real command API and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

from eventstore.state import fold
from eventstore.store import EventStore
from projections.projector.applier import BatchApplier
from projections.read_models.catalog import PROJECTIONS
from tests.factories import group_id
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    counts,
    http,
    start,
    tenant,
)


async def _project(pool, tenant: str, *session_ids: str) -> None:
    """Apply the sessions' stored events to every read model, as the projector does."""
    group = group_id("findings")
    store = EventStore(pool)
    async with pool.acquire() as conn, conn.transaction():
        for sid in session_ids:
            result = await BatchApplier(PROJECTIONS, group, 1).apply(conn, await store.read_stream(tenant, sid))
            assert result.parked == []


async def test_command_api_state_patch_true_over_1_is_stored_not_dropped_as_a_repeat(http, tenant, pool) -> None:
    """A section holding {"a": 1} patched with {"a": true} answered 200 with no event (Python's
    True == 1 made the decider take it for a repeat), so the section kept 1."""
    sid = await start(http, tenant, agents=["billing"])
    url = f"/v1/sessions/{sid}/state/sec?agent=billing"
    assert (await http.patch(url, json={"a": 1, "b": [0]}, headers=tenant.writer)).status_code == 200
    changed = await http.patch(url, json={"a": True, "b": [False]}, headers=tenant.writer)
    assert changed.status_code == 200, changed.text
    assert len(changed.json()["event_ids"]) == 1
    state = fold(await EventStore(pool).read_stream(tenant.name, sid))
    assert state.sections["sec"] == {"a": True, "b": [False]}
    assert [type(state.sections["sec"]["a"]), type(state.sections["sec"]["b"][0])] == [bool, bool]
    same_number = await http.patch(url, json={"a": True, "b": [False]}, headers=tenant.writer)
    assert same_number.json()["event_ids"] == []  # a real repeat is still recognised


async def test_command_api_idempotency_key_reused_names_the_header_field(http, tenant, pool) -> None:
    """A 422 names the field it refuses: `idempotency_key_reused` came without `errors`."""
    sid = await start(http, tenant)
    headers = {**tenant.writer, "Idempotency-Key": "reused-1"}
    url = f"/v1/sessions/{sid}/messages"
    assert (await http.post(url, json={"role": "user", "content": "a"}, headers=headers)).status_code == 200
    before = await counts(pool, tenant.name, sid)
    reused = await http.post(url, json={"role": "user", "content": "b"}, headers=headers)
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    problem = reused.json()
    assert problem["code"] == "idempotency_key_reused"
    assert [e["field"] for e in problem["errors"]] == ["header.Idempotency-Key"]
    assert problem["errors"][0]["reason"]
    assert await counts(pool, tenant.name, sid) == before


async def test_command_api_approval_expiring_at_the_last_microsecond_is_refused_not_stored_as_infinity(
    http, tenant, pool
) -> None:
    """asyncpg writes 9999-12-31T23:59:59.999999Z (and 0001-01-01T00:00:00Z) as timestamptz
    infinity and reads it back as a naive datetime: the approval was accepted and approvals_v1
    showed an expiry without offset, unequal to the event's."""
    sid = await start(http, tenant)
    url = f"/v1/sessions/{sid}/approvals"
    before = await counts(pool, tenant.name, sid)
    for edge in ("9999-12-31T23:59:59.999999Z", "9999-12-31T22:59:59.999999-01:00"):
        refused = await http.post(
            url, json={"action": "x", "requested_by": "p", "expires_at": edge}, headers=tenant.writer
        )
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["expires_at"]
    assert await counts(pool, tenant.name, sid) == before
    body = {"approval_id": "a1", "action": "x", "requested_by": "p", "expires_at": "9999-12-31T23:59:59.999998Z"}
    assert (await http.post(url, json=body, headers=tenant.writer)).status_code == 200
    await _project(pool, tenant.name, sid)
    stored = await pool.fetchval(
        "SELECT expires_at FROM approvals_v1 WHERE tenant = $1 AND session_id = $2 AND approval_id = 'a1'",
        tenant.name,
        sid,
    )
    assert stored == datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC) and stored.tzinfo is not None


async def test_command_api_state_patch_repeated_with_a_float_past_2_53_appends_nothing(http, tenant, pool) -> None:
    """jsonb keeps a float's decimal digits, so 3.747113283042022e16 comes back from the stored
    state as the integer 37471132830420220, which Python's == holds unequal to the float: the
    repeat was taken for a change and appended a second event."""
    sid = await start(http, tenant, agents=["billing"])
    url = f"/v1/sessions/{sid}/state/sec?agent=billing"
    body = {"v": [3.747113283042022e16, 1e23, -9.007199254740993e15]}
    first = await http.patch(url, json=body, headers=tenant.writer)
    assert first.status_code == 200 and len(first.json()["event_ids"]) == 1, first.text
    again = await http.patch(url, json=body, headers=tenant.writer)
    assert again.status_code == 200 and again.json()["event_ids"] == [], again.text
    assert await counts(pool, tenant.name, sid) == (2, 2, 2)


async def test_command_api_fork_read_models_hold_the_source_counts_open_calls_and_pending_approvals(
    http, tenant, pool
) -> None:
    """A fork's summary started from zero, and the calls and approvals it inherited open were in no
    read model: no reviewer saw the pending approval, though the fork accepts a decision for it."""
    sid = await start(http, tenant, agents=["billing"])
    for path, body in [
        ("messages", {"role": "user", "content": "charged twice"}),
        ("tool-calls", {"call_id": "c1", "tool": "refund"}),
        ("approvals", {"approval_id": "a1", "action": "refund", "requested_by": "policy"}),
        ("checkpoints", {"name": "asked", "step": 3}),
    ]:
        assert (await http.post(f"/v1/sessions/{sid}/{path}", json=body, headers=tenant.writer)).status_code == 200
    forked = await http.post(f"/v1/sessions/{sid}/fork", json={"at_version": 5}, headers=tenant.writer)
    assert forked.status_code == 201, forked.text
    fork = forked.json()["session_id"]
    await _project(pool, tenant.name, sid, fork)
    summary = await pool.fetchrow(
        "SELECT message_count, tool_call_count, last_checkpoint, last_step FROM session_summaries_v1 "
        "WHERE tenant = $1 AND session_id = $2",
        tenant.name,
        fork,
    )
    assert tuple(summary) == (1, 1, "asked", 3)
    call = "SELECT tool, status FROM tool_calls_v1 WHERE tenant = $1 AND session_id = $2 AND call_id = 'c1'"
    approval = "SELECT status FROM approvals_v1 WHERE tenant = $1 AND session_id = $2 AND approval_id = 'a1'"
    assert tuple(await pool.fetchrow(call, tenant.name, fork)) == ("refund", "requested")
    assert await pool.fetchval(approval, tenant.name, fork) == "pending"

    result = {"status": "completed", "result": {"ok": True}}
    assert (await http.post(f"/v1/sessions/{fork}/tool-calls/c1/result", json=result, headers=tenant.writer)).is_success
    decision = {"decision": "approved", "reviewer": "alice"}
    assert (
        await http.post(f"/v1/sessions/{fork}/approvals/a1/decision", json=decision, headers=tenant.writer)
    ).is_success
    await _project(pool, tenant.name, fork)
    assert tuple(await pool.fetchrow(call, tenant.name, fork)) == ("refund", "completed")
    assert await pool.fetchval(approval, tenant.name, fork) == "approved"
    stats = "SELECT calls, completed FROM tool_stats_v1 WHERE tenant = $1 AND tool = 'refund'"
    assert tuple(await pool.fetchrow(stats, tenant.name)) == (1, 1)  # requested in the source, completed in the fork
