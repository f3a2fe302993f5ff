"""The projector as a Kafka consumer group: duplicates, gaps, crashes and rebalances never change
what the read models end up holding."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

import pytest

from eventstore import db
from eventstore import events as ev
from projections.projector import checkpoints
from tests.integration.projection_support import (
    append,
    insert_raw,
    produce,
    running_projector,
    settings,
    support_case,
)
from tests.waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
async def fresh_pool(fresh_database_url: str):
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=6)
    yield pool
    await pool.close()


async def _sessions(pool, n: int, tenant: str = "t1", n_messages: int = 2) -> list:
    recorded = []
    for _ in range(n):
        recorded += await append(pool, tenant, "s-" + uuid.uuid4().hex[:8], support_case(n_messages))
    return recorded


async def _timeline_rows(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM session_timeline_v1")


async def _assert_exact(pool, recorded) -> None:
    per_session = len(recorded) // len({r.session_id for r in recorded})
    rows = await pool.fetch(
        "SELECT message_count, tool_call_count, error_count, last_version, status FROM session_summaries_v1"
    )
    assert len(rows) == len({r.session_id for r in recorded})
    assert {tuple(r.values()) for r in rows} == {(1 + (per_session - 13), 2, 0, per_session, "completed")}
    stats = await pool.fetch("SELECT tool, calls, completed, failures FROM tool_stats_v1 ORDER BY tool")
    n = len(rows)
    assert [tuple(r.values()) for r in stats] == [("refund", n, n, 0), ("unlock", n, 0, n)]
    assert await _timeline_rows(pool) == len(recorded)


async def test_projector_applies_each_event_once_when_kafka_delivers_twice(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    recorded = await _sessions(fresh_pool, 4)
    await produce(kafka_bootstrap, topic, recorded + recorded)
    s = settings(batch_size=7)
    async with running_projector(fresh_pool, kafka_bootstrap, topic, s) as projector:
        await wait_until(
            lambda: projector.totals.applied + projector.totals.duplicates >= 2 * len(recorded),
            timeout=30,
            message="all records consumed",
        )
    assert (projector.totals.applied, projector.totals.duplicates) == (len(recorded), len(recorded))
    await _assert_exact(fresh_pool, recorded)
    stored = await fresh_pool.fetchval(
        "SELECT sum(next_offset) FROM projection_checkpoints WHERE group_id=$1", s.group_id
    )
    assert stored == 2 * len(recorded)


async def test_projector_fills_gap_from_store_when_a_record_is_missing_on_kafka(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    recorded = await _sessions(fresh_pool, 2)
    await produce(kafka_bootstrap, topic, [r for r in recorded if r.version not in (3, 4, 9)])
    async with running_projector(fresh_pool, kafka_bootstrap, topic, settings(batch_size=5)) as projector:
        await wait_until(lambda: _timeline_rows(fresh_pool), timeout=30)
        await wait_until(lambda: projector.totals.applied >= len(recorded), timeout=30, message="gap filled")
    assert projector.totals.gap_filled == 6
    await _assert_exact(fresh_pool, recorded)


async def test_projector_resumes_from_stored_positions_after_restart(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    s = settings(batch_size=10)
    first = await _sessions(fresh_pool, 2)
    await produce(kafka_bootstrap, topic, first)
    async with running_projector(fresh_pool, kafka_bootstrap, topic, s) as projector:
        await wait_until(lambda: projector.totals.applied >= len(first), timeout=30)
    second = await _sessions(fresh_pool, 2)
    await produce(kafka_bootstrap, topic, second)
    async with running_projector(fresh_pool, kafka_bootstrap, topic, s) as projector:
        await wait_until(lambda: projector.totals.applied >= len(second), timeout=30)
    assert projector.totals.duplicates == 0
    await _assert_exact(fresh_pool, first + second)


async def test_projector_two_instances_with_rebalance_give_exact_counts(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    # 36 sessions: each of the 3 partitions gets some with near certainty ((2/3)**36), so whichever
    # partitions `one` is assigned carry events. With 12, `one` could own an empty partition (~1%)
    # and apply nothing, which failed this test once.
    recorded = await _sessions(fresh_pool, 36, n_messages=5)
    ordered = sorted(recorded, key=lambda r: (r.version, r.session_id))  # sessions interleaved
    third = len(ordered) // 3
    parts = [ordered[:third], ordered[third : 2 * third], ordered[2 * third :]]
    s = settings(batch_size=20)

    async def applied(n: int) -> bool:
        return await _timeline_rows(fresh_pool) >= n

    await produce(kafka_bootstrap, topic, parts[0])
    async with running_projector(fresh_pool, kafka_bootstrap, topic, s) as two:
        async with running_projector(fresh_pool, kafka_bootstrap, topic, s) as one:
            await wait_until(lambda: one.assigned and two.assigned, timeout=30, message="both own partitions")
            await produce(kafka_bootstrap, topic, parts[1])
            await wait_until(lambda: applied(len(parts[0]) + len(parts[1])), timeout=30, message="two thirds")
        # `one` left: a second rebalance hands all partitions to `two`
        await produce(kafka_bootstrap, topic, parts[2])
        await wait_until(lambda: applied(len(recorded)), timeout=45, message="every event projected")
    assert one.totals.applied > 0 and two.totals.applied > 0
    assert one.totals.gap_filled + two.totals.gap_filled == 0
    await _assert_exact(fresh_pool, recorded)


async def test_projector_killed_mid_batch_restarts_with_exact_counts(
    fresh_database_url: str, fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    recorded = await _sessions(fresh_pool, 30, n_messages=20)
    await produce(kafka_bootstrap, topic, recorded)
    s = settings(batch_size=25)
    env = {
        **os.environ,
        "AGENTLOG_DATABASE_URL": fresh_database_url,
        "PYTHONPATH": ROOT,
        "AGENTLOG_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AGENTLOG_KAFKA_TOPIC": topic,
        "AGENTLOG_PROJECTOR_GROUP_ID": s.group_id,
        "AGENTLOG_PROJECTOR_BATCH_SIZE": "25",
        "AGENTLOG_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentlog", "project", env=env, cwd=ROOT)
    try:

        async def some_applied() -> bool:
            return await _timeline_rows(fresh_pool) > 0

        await wait_until(some_applied, timeout=60, message="the subprocess projected something")
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert await _timeline_rows(fresh_pool) < len(recorded), "killed too late to be mid-run"
    async with running_projector(fresh_pool, kafka_bootstrap, topic, s):

        async def all_applied() -> bool:
            return await _timeline_rows(fresh_pool) == len(recorded)

        await wait_until(all_applied, timeout=60, message="every event projected after restart")
    await _assert_exact(fresh_pool, recorded)
    positions = await checkpoints.load(fresh_pool, s.group_id, topic, [0, 1, 2], "test")
    assert sum(positions.values()) == len(recorded)


async def test_projector_parks_a_failing_event_and_applies_the_rest_of_its_batch(
    fresh_pool, kafka_bootstrap: str, topic: str, caplog
) -> None:
    # The projector's fast path has no savepoint: a failing batch rolls back whole and is applied
    # again event by event, in one batch here (batch_size covers all), the bad event parked.
    sid = "s-" + uuid.uuid4().hex[:8]
    good = await append(fresh_pool, "t1", sid, support_case(2))
    async with fresh_pool.acquire() as conn:
        bad = await insert_raw(conn, "t1", sid, len(good) + 1, "MessageAdded", 2, {"role": "user"})  # no content
    later = await append(fresh_pool, "t1", sid, [ev.MessageAdded(role="user", content="after")], len(good) + 2)
    recorded = [*good, bad, *later]
    await produce(kafka_bootstrap, topic, recorded)
    s = settings(batch_size=500)
    async with running_projector(fresh_pool, kafka_bootstrap, topic, s) as projector:
        await wait_until(lambda: projector.totals.applied >= len(recorded), timeout=30, message="all applied")
    assert "applying it again event by event" in caplog.text  # the savepoint-free path was taken
    parked = {(name, version) for name, _key, version in projector.totals.parked}
    assert ("session_timeline", bad.version) in parked and ("session_summaries", bad.version) in parked
    assert {version for _name, version in parked} == {bad.version}
    versions = await fresh_pool.fetch(
        "SELECT version FROM session_timeline_v1 WHERE session_id = $1 ORDER BY version", sid
    )
    assert [r["version"] for r in versions] == [r.version for r in recorded if r is not bad]
    assert await fresh_pool.fetchval("SELECT has_parked_events FROM session_summaries_v1 WHERE session_id = $1", sid)
