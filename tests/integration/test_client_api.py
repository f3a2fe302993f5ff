"""Every method of both clients against the real command and query APIs (with the real relay and
projector between them): the support case written and read back, paging, batches, the typed
errors of 401/403/404/409/422, idempotent repeats stored once, and read-your-writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from agentlog.client import (
    AuthenticationError,
    ConcurrencyConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RuleViolationError,
)
from agentlog.client import commands as cmd
from tests.integration.client_support import Either, Keys, make_client


def new_id(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def stored_events(pool, tenant: str, session_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT type FROM events WHERE tenant = $1 AND session_id = $2 ORDER BY version", tenant, session_id
    )
    return [row["type"] for row in rows]


async def test_client_writes_the_support_case_and_reads_every_view_of_it(
    either: Either, keys: Keys, stack_pool
) -> None:
    c, sid = either, new_id()
    started = await c.start_session(sid, workflow="support-case", title="charged twice", agents=["billing", "account"])
    assert (started.session_id, started.version, len(started.event_ids)) == (sid, 1, 1)
    await c.add_message(sid, "user", "I was charged twice, and I can't log in")
    await c.update_state(sid, "billing", {"duplicate": True, "amount": 42}, agent="billing")
    await c.update_state(sid, "account", {"locked": True}, agent="account")
    await c.request_tool_call(sid, "refund", {"amount": 42}, call_id="c1", agent="billing")
    await c.complete_tool_call(sid, "c1", {"ok": True}, duration_ms=120)
    await c.request_tool_call(sid, "unlock", call_id="c2", agent="account")
    await c.fail_tool_call(sid, "c2", "timeout", duration_ms=3000, retriable=True)
    expires = datetime.now(UTC) + timedelta(days=1)
    await c.request_approval(
        sid, "refund 42 EUR", requested_by="policy", risk="high", approval_id="a1", expires_at=expires
    )
    await c.decide_approval(sid, "a1", "approved", reviewer="alice", comment="ok")
    await c.update_state(sid, "billing", {"amount": None, "refunded": True}, agent="billing")
    await c.save_checkpoint(sid, "refunded", step=3)
    await c.record_error(sid, "unlock timed out", agent="account", kind="tool")
    await c.record_compensation(sid, "unlock", reason="retried by hand")
    done = await c.complete_session(sid, outcome="resolved", summary="refunded, unlocked")
    assert done.version == 15

    session = await c.get_session(sid)  # read-your-writes: waits for version 15, no polling here
    assert (session.status, session.version, session.outcome, session.last_checkpoint) == (
        "completed",
        15,
        "resolved",
        "refunded",
    )
    assert session.counts.model_dump() == {"messages": 1, "tool_calls": 2, "tool_failures": 1, "errors": 1}
    state = await c.get_state(sid)
    assert state.sections["billing"].value == {"duplicate": True, "refunded": True}
    assert (state.sections["billing"].owner, state.sections["account"].value) == ("billing", {"locked": True})
    timeline = await c.timeline(sid, limit=4)  # 4 pages, followed to the end
    assert [e.version for e in timeline] == list(range(1, 16))
    assert [e.type for e in timeline][:2] == ["SessionStarted", "MessageAdded"]
    calls = await c.tool_calls(sid)
    assert [(t.call_id, t.tool, t.status, t.duration_ms) for t in calls] == [
        ("c1", "refund", "completed", 120),
        ("c2", "unlock", "failed", 3000),
    ]
    assert [t.call_id for t in await c.tool_calls(sid, status="failed")] == ["c2"]
    audit = await c.audit(sid, section="billing")
    assert [(a.version, a.old_value, a.new_value) for a in audit] == [
        (3, None, {"duplicate": True, "amount": 42}),
        (11, {"duplicate": True, "amount": 42}, {"duplicate": True, "refunded": True}),
    ]
    approvals = await c.approvals(status="approved")
    assert [(a.session_id, a.approval_id, a.reviewer, a.risk) for a in approvals] == [(sid, "a1", "alice", "high")]
    stats = {s.tool: s for s in await c.tool_stats()}
    assert (stats["refund"].calls, stats["unlock"].failures, stats["unlock"].failure_rate) == (1, 1, 1.0)
    assert len(await stored_events(stack_pool, keys.tenant, sid)) == 15


async def test_client_pages_session_lists_and_starts_sessions_with_the_ids_the_api_makes(either: Either) -> None:
    workflow = new_id("wf")
    made = [(await either.start_session(workflow=workflow, agents=["pager"])).session_id for _ in range(5)]
    assert all(sid.startswith("s-") for sid in made) and len(set(made)) == 5
    await either.cancel_session(made[0], reason="duplicate", by="ops")
    await either.fail_session(made[1], "no agent available")
    listed = await either.list_sessions(workflow=workflow, limit=2)  # the last write is visible (min_position)
    assert sorted(s.session_id for s in listed) == sorted(made)
    first = await either.list_sessions_page(workflow=workflow, limit=2, order="asc")
    assert len(first.items) == 2 and first.next_cursor is not None
    statuses = {s.session_id: s.status for s in listed}
    assert (statuses[made[0]], statuses[made[1]], statuses[made[2]]) == ("cancelled", "failed", "open")
    assert [s.session_id for s in await either.list_sessions(workflow=workflow, status="cancelled")] == [made[0]]


async def test_client_runs_a_batch_as_one_version_or_not_at_all(either: Either, keys: Keys, stack_pool) -> None:
    sid = new_id()
    await either.start_session(sid, agents=["billing"])
    batch = [
        cmd.AddMessage(role="user", content="refund please"),
        cmd.RequestToolCall(tool="refund", call_id="c1", arguments={"amount": 5}),
        cmd.CompleteToolCall(call_id="c1", result={"ok": True}),
        cmd.UpdateStateSection(agent="billing", section="billing", changes={"refunded": True}),
    ]
    result = await either.run_commands(sid, batch, expected_version=1)
    assert (result.version, len(result.event_ids)) == (5, 4)
    with pytest.raises(RuleViolationError) as refused:
        await either.run_commands(
            sid, [cmd.AddMessage(role="user", content="x"), cmd.FailToolCall(call_id="nope", error="e")]
        )
    assert refused.value.code == "tool_call_not_open" and refused.value.status == 409
    assert len(await stored_events(stack_pool, keys.tenant, sid)) == 5
    assert (await either.get_state(sid)).sections["billing"].value == {"refunded": True}


async def test_client_stale_expected_version_is_a_conflict_carrying_the_current_version(either: Either) -> None:
    sid = new_id()
    await either.start_session(sid)
    await either.add_message(sid, "user", "one", expected_version=1)
    with pytest.raises(ConcurrencyConflictError) as conflict:
        await either.add_message(sid, "user", "two", expected_version=1)
    assert (conflict.value.status, conflict.value.code, conflict.value.current_version) == (409, "version_conflict", 2)
    retried = await either.add_message(sid, "user", "two", expected_version=conflict.value.current_version)
    assert retried.version == 3


async def test_client_unknown_session_is_not_found(either: Either) -> None:
    with pytest.raises(NotFoundError) as unknown:
        await either.get_session(new_id())
    assert (unknown.value.status, unknown.value.code) == (404, "session_not_found")
    with pytest.raises(NotFoundError):
        await either.add_message(new_id(), "user", "hello")


async def test_client_invalid_input_is_422_with_the_fields_named(either: Either) -> None:
    sid = new_id()
    await either.start_session(sid)
    with pytest.raises(InvalidRequestError) as invalid:
        await either.add_message(sid, "robot", "")
    assert (invalid.value.status, invalid.value.code) == (422, "invalid_input")
    assert {e.field for e in invalid.value.errors} == {"role", "content"}
    with pytest.raises(InvalidRequestError) as bad_agent:
        await either.update_state(sid, "billing", {"a": 1}, agent="not an id")
    assert [e.field for e in bad_agent.value.errors] == ["query.agent"]


async def test_client_rule_broken_by_the_sessions_state_is_a_rule_violation(either: Either) -> None:
    sid = new_id()
    await either.start_session(sid)
    await either.complete_session(sid)
    with pytest.raises(RuleViolationError) as closed:
        await either.add_message(sid, "user", "too late")
    assert (closed.value.status, closed.value.code) == (409, "session_closed")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_client_bad_or_underprivileged_keys_are_typed_auth_errors(kind: str, client_stack, keys: Keys) -> None:
    stranger = Either(make_client(kind, client_stack, "not-a-key"))
    with pytest.raises(AuthenticationError) as unknown:
        await stranger.start_session()
    assert unknown.value.status == 401
    reader = Either(make_client(kind, client_stack, keys.reader))
    with pytest.raises(PermissionDeniedError) as denied:
        await reader.start_session()
    assert (denied.value.status, denied.value.code) == (403, "forbidden")


async def test_client_repeated_idempotency_key_is_stored_once_and_answered_as_first(
    either: Either, keys: Keys, stack_pool
) -> None:
    sid = new_id()
    await either.start_session(sid, idempotency_key=f"start-{sid}")
    again = await either.start_session(sid, idempotency_key=f"start-{sid}")
    first = await either.add_message(sid, "user", "once", idempotency_key=f"msg-{sid}")
    repeat = await either.add_message(sid, "user", "once", idempotency_key=f"msg-{sid}")
    assert (again.replayed, first.replayed, repeat.replayed) == (True, False, True)
    assert (repeat.version, repeat.position, repeat.event_ids) == (first.version, first.position, first.event_ids)
    assert await stored_events(stack_pool, keys.tenant, sid) == ["SessionStarted", "MessageAdded"]
    with pytest.raises(InvalidRequestError) as reused:
        await either.add_message(sid, "user", "another text", idempotency_key=f"msg-{sid}")
    assert reused.value.code == "idempotency_key_reused"


async def test_client_reads_its_own_writes_at_once(either: Either) -> None:
    sid = new_id()
    await either.start_session(sid, agents=["counter"])
    for n in range(1, 11):
        written = await either.update_state(sid, "count", {"n": n}, agent="counter")
        state = await either.get_state(sid)
        assert (state.version, state.sections["count"].value) == (written.version, {"n": n})


async def test_client_forks_a_session_at_a_version(either: Either) -> None:
    sid, fork = new_id(), new_id("fork")
    await either.start_session(sid)
    await either.add_message(sid, "user", "one")
    await either.add_message(sid, "user", "two")
    forked = await either.fork_session(sid, at_version=2, new_session_id=fork)
    assert (forked.session_id, forked.version) == (fork, 1)
    session = await either.get_session(fork)  # read-your-writes: the fork's version 1 is projected
    # a fork's summary holds what its fold holds: the source's counts at the fork point (one message)
    assert (session.forked_from, session.forked_from_version, session.counts.messages) == (sid, 2, 1)
    inherited = await either.state_at(fork, 1)
    assert [(m.session_id, m.version, m.content) for m in inherited.conversation] == [(sid, 2, "one")]
