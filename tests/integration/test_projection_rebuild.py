"""`agentlog projections rebuild`: shadow tables from the log, swapped in one transaction.

The live side is what the projector does per batch (BatchApplier in one transaction), or the real
Projector on Kafka where the interplay with a running projector is the point.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from eventstore import events as ev
from eventstore.positions import READ_ALL_SQL
from projections.read_models import summaries
from projections.read_models import timeline as timeline_model
from projections.read_models.catalog import PROJECTIONS
from projections.rebuild.job import ProjectionRebuild, RebuildRunningError
from tests.integration.projection_rebuild_support import (
    GROUP,
    RETIRED_SCHEMAS,
    SHADOW_SCHEMAS,
    damage,
    fresh_pool,  # noqa: F401 - a fixture
    project_live,
    readable,
    seed,
)
from tests.integration.projection_support import (
    append,
    applied_version,
    produce,
    read_models,
    running_projector,
    settings,
    support_case,
)
from tests.waiting import wait_until

INDEX_NAMES = "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"
# storage parameters (WITH (...)) of the live tables: CREATE TABLE ... LIKE copies none of them
STORAGE_PARAMETERS = """
SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.reloptions IS NOT NULL ORDER BY 1
"""


async def test_projection_rebuild_gives_the_live_projectors_rows_for_every_projection(fresh_pool) -> None:
    await seed(fresh_pool, sessions=6)
    await _framework_records(fresh_pool)  # so every projection has live rows that damage() can remove
    expected = await read_models(fresh_pool)
    indexes = await fresh_pool.fetch(INDEX_NAMES)
    parameters = await fresh_pool.fetch(STORAGE_PARAMETERS)
    assert "session_timeline_v1" in {row["relname"] for row in parameters}, "migration 0016 sets its autovacuum pace"
    assert expected["projection_parked_events"], "the poison event is parked somewhere"
    for projection in PROJECTIONS:
        await damage(fresh_pool, projection.name)
        summary = await ProjectionRebuild(
            fresh_pool, projection.name, projector=GROUP, batch_size=7, max_retries=1, accept_drift=True
        ).run()
        assert summary.status == "swapped" and summary.brought_forward_live == 0, summary
        assert summary.drift is not None and not summary.drift.clean, projection.name
        assert await read_models(fresh_pool) == expected, projection.name
    assert await fresh_pool.fetch(INDEX_NAMES) == indexes
    assert await fresh_pool.fetch(STORAGE_PARAMETERS) == parameters
    assert await fresh_pool.fetchval(SHADOW_SCHEMAS) == 0
    assert await fresh_pool.fetchval(RETIRED_SCHEMAS) == len(PROJECTIONS)  # kept for rollback


async def _framework_records(pool: asyncpg.Pool) -> None:
    """A LangGraph thread (checkpoints with a blob, a task's writes), an agent SDK conversation and
    a session's model calls over its budget, projected live like the support cases."""
    blob = ev.StoredValue(kind="bytes", type="msgpack", base64="gqFhAQ==")
    thread, chat = f"thread-{uuid.uuid4().hex[:6]}", f"chat-{uuid.uuid4().hex[:6]}"
    graph = [
        ev.GraphCheckpointPut(
            thread_id=thread,
            checkpoint_id=f"c{i}",
            parent_checkpoint_id=f"c{i - 1}" if i else None,
            checkpoint={"v": 4, "id": f"c{i}", "channel_values": {}, "channel_versions": {"x": str(i)}},
            blobs=[ev.GraphBlob(channel="x", version=str(i), value=blob)],
        )
        for i in range(3)
    ]
    graph.append(
        ev.GraphWritesPut(
            thread_id=thread,
            checkpoint_id="c2",
            task_id="t",
            writes=[ev.GraphWrite(idx=i, channel="x", value=ev.StoredValue(kind="json", value=i)) for i in range(6)],
        )
    )
    items = [{"role": "user", "content": f"item {i}"} for i in range(8)]
    # model calls of a session with a budget, for the usage read model
    calls = [
        ev.ModelCallRecorded(
            call_id=f"m{i}",
            model="gpt-4o",
            request=ev.ModelRequest(messages=[{"role": "user", "content": "hi"}]),
            usage=ev.ModelUsage(input_tokens=100, output_tokens=10),
            cost=ev.ModelCost(usd=0.00035, price_version="2024-01-01"),
        )
        for i in range(6)
    ]
    exceeded = ev.BudgetExceeded(call_id="m4", exceeded="tokens", tokens=550, cost_usd=0.00175, max_tokens=500)
    usage = [ev.SessionStarted(budget=ev.Budget(max_tokens=500)), *calls[:5], exceeded, calls[5]]
    recorded = await append(pool, "t1", thread, graph)
    recorded += await append(pool, "t1", chat, [ev.ConversationItemsAdded(first_index=0, items=items)])
    recorded += await append(pool, "t1", f"usage-{uuid.uuid4().hex[:6]}", usage)
    await project_live(pool, recorded)
    await readable(pool)


async def _query_loop(pool: asyncpg.Pool, tenant: str, session_id: str, stop: asyncio.Event) -> int:
    """What the query API reads, again and again; every answer must be complete."""
    rounds = 0
    while not stop.is_set() or rounds == 0:
        async with pool.acquire() as conn:
            listed = await summaries.list_sessions(conn, GROUP, tenant, limit=500)
            one = await summaries.get_session(conn, GROUP, tenant, session_id)
            timeline = await timeline_model.entries(conn, tenant, session_id, after=0, limit=100)
        assert len(listed) >= 10 and one is not None and one["message_count"] == 3
        assert len(timeline) == len(support_case())
        rounds += 1
    return rounds


async def test_projection_rebuild_keeps_queries_answering_while_it_runs_and_swaps(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=20, tenants=("t1",))
    expected = await read_models(fresh_pool)
    stop = asyncio.Event()
    loop = asyncio.create_task(_query_loop(fresh_pool, "t1", recorded[0].session_id, stop))
    try:
        for name in ("session_summaries", "session_timeline"):
            summary = await ProjectionRebuild(fresh_pool, name, projector=GROUP, batch_size=10, max_retries=1).run()
            assert summary.status == "swapped" and summary.batches >= 30
    finally:
        stop.set()
        rounds = await loop
    assert rounds >= 1
    assert await read_models(fresh_pool) == expected


async def test_projection_rebuild_resumes_after_an_interruption_without_doubling(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=8)
    expected = await read_models(fresh_pool)
    await fresh_pool.execute("UPDATE session_summaries_v1 SET message_count = 0")
    first = await ProjectionRebuild(
        fresh_pool, "session_summaries", projector=GROUP, batch_size=10, max_retries=1, max_batches=3
    ).run()
    assert (first.status, first.events, first.batches) == ("interrupted", 30, 3)
    assert await fresh_pool.fetchval("SELECT max(message_count) FROM session_summaries_v1") == 0

    second = await ProjectionRebuild(
        fresh_pool, "session_summaries", projector=GROUP, batch_size=10, max_retries=1, accept_drift=True
    ).run()
    assert (second.status, second.resumed) == ("swapped", True)
    assert second.events == len(recorded)  # the 30 of the first run are counted once
    assert await read_models(fresh_pool) == expected
    assert await fresh_pool.fetchval(SHADOW_SCHEMAS) == 0


async def test_projection_rebuild_resumes_after_being_cancelled_mid_run(fresh_pool) -> None:
    """Ctrl-C: the task is cancelled wherever it is; a rerun ends with the same rows."""
    await seed(fresh_pool, sessions=8)
    expected = await read_models(fresh_pool)
    await damage(fresh_pool, "session_state")
    tasks: list[asyncio.Task] = []

    def interrupt_after_two_batches(progress) -> None:
        if progress.batches == 2:
            tasks[0].cancel()  # lands at the rebuild's next await, as Ctrl-C does in asyncio.run

    first = ProjectionRebuild(
        fresh_pool,
        "session_state",
        projector=GROUP,
        batch_size=7,
        max_retries=1,
        on_progress=interrupt_after_two_batches,
    )
    tasks.append(asyncio.create_task(first.run()))
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert await fresh_pool.fetchval("SELECT events_done FROM agentlog_rebuild_session_state.rebuild_progress") == 14
    second = await ProjectionRebuild(
        fresh_pool, "session_state", projector=GROUP, batch_size=7, max_retries=1, accept_drift=True
    ).run()
    assert (second.status, second.resumed) == ("swapped", True)
    assert await read_models(fresh_pool) == expected


async def test_projection_rebuild_refuses_a_second_rebuild_of_the_same_projection(fresh_pool) -> None:
    await seed(fresh_pool, sessions=10)
    started = asyncio.Event()
    first = ProjectionRebuild(
        fresh_pool,
        "tool_stats",
        projector=GROUP,
        batch_size=5,
        max_retries=1,
        on_progress=lambda progress: started.set(),
    )
    task = asyncio.create_task(first.run())
    await wait_until(started.is_set, timeout=30, message="the first rebuild to apply a batch")
    with pytest.raises(RebuildRunningError):
        await ProjectionRebuild(fresh_pool, "tool_stats", projector=GROUP).run()
    assert (await task).status == "swapped"


async def _keep_appending(pool, bootstrap: str, topic: str, versions: dict, stop: asyncio.Event) -> int:
    """Append to the sessions and publish as the relay would, until told to stop."""
    appended = 0
    while not stop.is_set():
        for session_id in list(versions)[appended % 3 :: 3]:
            recorded = await append(
                pool,
                "t1",
                session_id,
                [ev.MessageAdded(role="user", content=f"more {appended}")],
                first_version=versions[session_id] + 1,
            )
            versions[session_id] += 1
            await produce(bootstrap, topic, recorded)
            appended += 1
    return appended


async def test_projection_rebuild_includes_events_appended_while_it_runs(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    s = settings(batch_size=50)
    versions = {}
    for i in range(12):
        session_id = f"live-{i}-{uuid.uuid4().hex[:4]}"
        await produce(kafka_bootstrap, topic, await append(fresh_pool, "t1", session_id, support_case()[:-1]))
        versions[session_id] = len(support_case()) - 1
    async with running_projector(fresh_pool, kafka_bootstrap, topic, s):
        await _projected(fresh_pool, s.group_id, versions)
        stop = asyncio.Event()
        appender = asyncio.create_task(_keep_appending(fresh_pool, kafka_bootstrap, topic, versions, stop))
        await wait_until(lambda: _appended(fresh_pool), timeout=30, message="appends to start")
        before = await fresh_pool.fetchval("SELECT count(*) FROM events")
        summary = await ProjectionRebuild(fresh_pool, "session_summaries", projector=s.group_id, batch_size=5).run()
        stop.set()
        await appender
        assert summary.status == "swapped"
        assert summary.events + summary.caught_up_in_swap > before  # appended while it ran
        await _projected(fresh_pool, s.group_id, versions)
    rows = await fresh_pool.fetch("SELECT session_id, message_count, last_version FROM session_summaries_v1")
    counts = {
        r["session_id"]: r["n"]
        for r in await fresh_pool.fetch(
            "SELECT session_id, count(*) AS n FROM events WHERE type = 'MessageAdded' GROUP BY session_id"
        )
    }
    assert {r["session_id"]: (r["message_count"], r["last_version"]) for r in rows} == {
        sid: (counts[sid], version) for sid, version in versions.items()
    }
    settled = await read_models(fresh_pool)
    again = await ProjectionRebuild(fresh_pool, "session_summaries", projector=s.group_id).run()
    assert again.status == "swapped" and await read_models(fresh_pool) == settled


async def _projected(pool, group: str, versions: dict) -> None:
    for session_id, version in versions.items():
        await wait_until(
            lambda session_id=session_id, version=version: _at(pool, group, session_id, version),
            timeout=30,
            message=f"the projector to reach {session_id} v{version}",
        )


async def _at(pool, group: str, session_id: str, version: int) -> bool:
    return await applied_version(pool, group, "t1", session_id) >= version


async def _appended(pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM events WHERE data->>'content' LIKE 'more %'") > 0


async def test_projection_rebuild_reads_the_log_by_its_index_not_by_sorting_it(fresh_pool) -> None:
    """Regression (found by bench/bench_rebuild.py at a million events): read_all's ORDER BY named the
    bigint output column `transaction_id`, so every page sorted the rest of the log."""
    async with fresh_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE read_all_page(bigint, bigint, int) AS {READ_ALL_SQL}")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN EXECUTE read_all_page(0, 0, 500)"))
        await conn.execute("DEALLOCATE read_all_page")
    assert "events_transaction_position_idx" in plan and "Sort" not in plan, plan
