"""The batch applier against the real Postgres: idempotent, gap-filling, parking."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from eventstore import db
from eventstore import events as ev
from projections.projector.applier import BatchApplier
from projections.read_models import tool_calls
from projections.read_models.catalog import PROJECTIONS
from tests.integration.projection_support import append, insert_raw, read_models, support_case

GROUP = "agentlog.test.apply.v1"


@pytest.fixture
async def conn(fresh_database_url: str):
    connection = await db.connect(fresh_database_url)
    yield connection
    await connection.close()


async def _apply(conn: asyncpg.Connection, records, max_retries: int = 2):
    async with conn.transaction():
        return await BatchApplier(PROJECTIONS, GROUP, max_retries).apply(conn, records)


async def test_projection_apply_twice_gives_identical_rows(conn) -> None:
    recorded = await append(conn, "t1", "s-" + uuid.uuid4().hex[:6], support_case())
    first = await _apply(conn, recorded)
    once = await read_models(conn)
    second = await _apply(conn, recorded + recorded)
    assert (first.applied, second.applied, second.duplicates) == (len(recorded), 0, 2 * len(recorded))
    assert await read_models(conn) == once


async def test_projection_apply_builds_every_read_model(conn) -> None:
    sid = "s-" + uuid.uuid4().hex[:6]
    await _apply(conn, await append(conn, "t1", sid, support_case(n_messages=3)))
    summary = await conn.fetchrow("SELECT * FROM session_summaries_v1 WHERE tenant='t1' AND session_id=$1", sid)
    assert (summary["status"], summary["workflow"], summary["outcome"]) == ("completed", "support-case", "resolved")
    assert (summary["message_count"], summary["tool_call_count"], summary["tool_failure_count"]) == (4, 2, 1)
    assert summary["agents"] == ["billing", "account", "response"]
    assert (summary["last_checkpoint"], summary["last_step"], summary["last_version"]) == ("refunded", 3, 16)
    state = {
        r["section"]: (r["value"], r["owner"])
        for r in await conn.fetch("SELECT * FROM session_state_v1 WHERE session_id=$1", sid)
    }
    assert state == {
        "billing": ({"duplicate": True, "refunded": True}, "billing"),
        "account": ({"locked": True}, "account"),
    }
    audit = await conn.fetch(
        "SELECT * FROM state_audit_v1 WHERE session_id=$1 AND section='billing' ORDER BY version", sid
    )
    assert [(a["old_value"], a["new_value"]) for a in audit] == [
        (None, {"duplicate": True, "amount": 42}),
        ({"duplicate": True, "amount": 42}, {"duplicate": True, "refunded": True}),
    ]
    calls = {
        r["call_id"]: (r["tool"], r["status"], r["duration_ms"], r["error"])
        for r in await conn.fetch("SELECT * FROM tool_calls_v1 WHERE session_id=$1", sid)
    }
    assert calls == {"c1": ("refund", "completed", 120, None), "c2": ("unlock", "failed", 3000, "timeout")}
    stats = {
        r["tool"]: (r["calls"], r["completed"], r["failures"], r["total_duration_ms"])
        for r in await conn.fetch("SELECT * FROM tool_stats_v1 WHERE tenant='t1'")
    }
    assert stats == {"refund": (1, 1, 0, 120), "unlock": (1, 0, 1, 3000)}
    approval = await conn.fetchrow("SELECT * FROM approvals_v1 WHERE session_id=$1", sid)
    assert (approval["status"], approval["reviewer"], approval["risk"]) == ("approved", "alice", "high")
    assert await conn.fetchval("SELECT count(*) FROM session_timeline_v1 WHERE session_id=$1", sid) == 16


async def test_projection_apply_fills_gap_from_store_when_versions_jump(conn) -> None:
    sid = "s-" + uuid.uuid4().hex[:6]
    recorded = await append(conn, "t1", sid, support_case())
    result = await _apply(conn, [recorded[0], recorded[5], recorded[-1]])
    assert (result.gap_filled, result.applied) == (len(recorded) - 3, len(recorded))
    reference = "s-" + uuid.uuid4().hex[:6]
    await _apply(conn, await append(conn, "t1", reference, support_case()))
    rows = await conn.fetch(
        "SELECT session_id, message_count, tool_call_count, status, last_version "
        "FROM session_summaries_v1 WHERE session_id = ANY($1) ORDER BY session_id = $2",
        [sid, reference],
        sid,
    )
    assert tuple(rows[0].values())[1:] == tuple(rows[1].values())[1:]


async def test_projection_apply_parks_poison_event_and_goes_on(conn) -> None:
    sid, other = "s-" + uuid.uuid4().hex[:6], "s-" + uuid.uuid4().hex[:6]
    head = await append(conn, "t1", sid, support_case()[:2])
    poison = await insert_raw(conn, "t1", sid, 3, "MessageAdded", 2, {"role": "robot", "content": 1})
    tail = await append(conn, "t1", sid, [support_case()[1]], first_version=4)
    healthy = await append(conn, "t1", other, support_case())
    result = await _apply(conn, [*head, poison, *tail, *healthy])
    assert {(name, version) for name, _, version in result.parked} == {
        (p.name, 3) for p in PROJECTIONS if p.handles("MessageAdded")
    }
    summary = await conn.fetchrow("SELECT * FROM session_summaries_v1 WHERE session_id=$1", sid)
    assert (summary["message_count"], summary["last_version"], summary["has_parked_events"]) == (2, 4, True)
    assert await conn.fetchval("SELECT has_parked_events FROM session_summaries_v1 WHERE session_id=$1", other) is False
    assert await conn.fetchval("SELECT count(*) FROM session_timeline_v1 WHERE session_id=$1", other) == 15


async def test_late_tool_call_request_keeps_the_finished_status(conn) -> None:
    """A request delivered after its call finished (Kafka redelivery) must not move it back to requested."""
    sid = "s-" + uuid.uuid4().hex[:6]
    requested, completed = ev.ToolCallRequested(call_id="c", tool="t"), ev.ToolCallCompleted(call_id="c", duration_ms=7)
    rec_requested, rec_completed = await append(conn, "t1", sid, [requested, completed])
    for write in tool_calls.on_completed(rec_completed, completed) + tool_calls.on_requested(rec_requested, requested):
        await conn.execute(write.sql, *write.args)
    row = await conn.fetchrow(
        "SELECT tool, status, duration_ms FROM tool_calls_v1 WHERE session_id=$1 AND call_id='c'", sid
    )
    assert (row["tool"], row["status"], row["duration_ms"]) == ("t", "completed", 7)
