"""The read models of agent frameworks' records on the real Postgres: what LangGraph reads back
(a deletion hides what came before it, a fork made before the deletion still sees it, pending
writes keep the first value but special channels the latest) and an SDK's conversation memory
(pops and clears); applied twice, or in reverse order (a parked event retried late), they give
the same rows as in order."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from eventstore import db
from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import decode
from projections.read_models import conversation_items, graph_checkpoints
from projections.read_models.projection import Projection
from projections.rebuild.job import ProjectionRebuild
from tests.integration.projection_rebuild_support import (
    GROUP,
    damage,
    fresh_pool,  # noqa: F401 - a fixture
    project_live,
    readable,
)
from tests.integration.projection_support import append


@pytest.fixture
async def conn(fresh_database_url: str):
    connection = await db.connect(fresh_database_url)
    yield connection
    await connection.close()


def json_value(value: Any) -> ev.StoredValue:
    return ev.StoredValue(kind="json", value=value)


def put(checkpoint_id: str, parent: str | None, step: int, **values: Any) -> ev.GraphCheckpointPut:
    # a version has a random part in LangGraph: here the checkpoint id makes it unique the same way
    versions = {channel: f"{step + 2:032}.{checkpoint_id}" for channel in values}
    return ev.GraphCheckpointPut(
        thread_id="t",
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent,
        checkpoint={"v": 4, "id": checkpoint_id, "channel_values": {}, "channel_versions": versions},
        metadata={"step": step, "source": "loop"},
        blobs=[ev.GraphBlob(channel=c, version=versions[c], value=json_value(v)) for c, v in values.items()],
    )


def writes(checkpoint_id: str, task: str, *pairs: tuple[int, str, Any]) -> ev.GraphWritesPut:
    return ev.GraphWritesPut(
        thread_id="t",
        checkpoint_id=checkpoint_id,
        task_id=task,
        writes=[ev.GraphWrite(idx=i, channel=c, value=json_value(v)) for i, c, v in pairs],
    )


THREAD = [
    ev.SessionStarted(workflow="langgraph"),
    put("c1", None, 0, plan=[1]),
    writes("c1", "k1", (0, "plan", "first")),
    writes("c1", "k1", (0, "plan", "second")),  # a retried task's write: the first one stays
    writes("c1", "k2", (-3, "__interrupt__", "asked")),
    writes("c1", "k2", (-3, "__interrupt__", "asked again")),  # special channels: the latest wins
    put("c2", "c1", 1, plan=[1, 2]),
    ev.GraphThreadDeleted(thread_id="t"),
    put("c3", None, 0, plan=["again"]),  # the thread used again after its deletion
]


async def _apply(conn: asyncpg.Connection, projection: Projection, recorded: list[RecordedEvent]) -> None:
    async with conn.transaction():
        for r in recorded:
            for write in projection.writes_for(r, decode(r)):
                await conn.execute(write.sql, *write.args)


async def _rows(conn: asyncpg.Connection, tables: tuple[str, ...], tenant: str) -> dict[str, list[dict]]:
    out = {}
    for table in tables:
        rows = await conn.fetch(f"SELECT * FROM {table} WHERE tenant = $1", tenant)
        out[table] = sorted(({k: v for k, v in r.items() if k != "tenant"} for r in rows), key=repr)
    return out


async def _visible(conn, tenant: str, session_id: str) -> list[tuple[str, list]]:
    rows = await graph_checkpoints.checkpoints(conn, tenant, session_id)
    return [
        (row["checkpoint_id"], [(w["task_id"], w["value"]["value"]) for w in row["pending_writes"] or []])
        for row in rows
    ]


async def test_graph_read_model_hides_deleted_checkpoints_and_keeps_lineage(conn) -> None:
    tenant, sid, fork = f"t-{uuid.uuid4().hex[:6]}", "thread-1", "thread-copy"
    recorded = await append(conn, tenant, sid, THREAD)
    # the copy was made before the deletion (at version 7, after c2)
    forked = ev.SessionForked(source_session_id=sid, source_version=7, state={})
    recorded_fork = await append(conn, tenant, fork, [forked])
    await _apply(conn, graph_checkpoints.PROJECTION, recorded + recorded_fork)

    assert await _visible(conn, tenant, sid) == [("c3", [])]
    assert await _visible(conn, tenant, fork) == [
        ("c2", []),
        ("c1", [("k1", "first"), ("k2", "asked again")]),
    ]
    (latest,) = await graph_checkpoints.checkpoints(conn, tenant, fork, limit=1)
    assert latest["blobs"] == {"plan": {"kind": "json", "value": [1, 2], "type": None, "base64": None}}
    assert (latest["root"], latest["session_id"], latest["version"]) == (fork, sid, 7)
    assert [(r["session_id"], r["upto"]) for r in await graph_checkpoints.ancestors(conn, tenant, fork)] == [(sid, 7)]
    assert [r["checkpoint_id"] for r in await graph_checkpoints.checkpoints(conn, tenant, None)] == ["c3", "c2", "c1"]


async def test_graph_read_model_is_the_same_applied_twice_or_in_reverse(conn) -> None:
    in_order, reversed_, twice = (f"t-{uuid.uuid4().hex[:6]}" for _ in range(3))
    tables = graph_checkpoints.PROJECTION.tables
    for tenant, order, times in ((in_order, 1, 1), (reversed_, -1, 1), (twice, 1, 2)):
        recorded = await append(conn, tenant, "thread-1", THREAD)
        for _ in range(times):
            await _apply(conn, graph_checkpoints.PROJECTION, recorded[::order])
    expected = _without_times(await _rows(conn, tables, in_order))
    assert _without_times(await _rows(conn, tables, reversed_)) == expected
    assert _without_times(await _rows(conn, tables, twice)) == expected


CONVERSATION = [
    ev.SessionStarted(workflow="openai-agents"),
    ev.ConversationItemsAdded(first_index=0, items=[{"role": "user", "content": f"m{i}"} for i in range(3)]),
    ev.ConversationItemPopped(index=2),
    ev.ConversationItemsAdded(first_index=3, items=[{"role": "assistant", "content": "m3"}]),
    ev.ConversationCleared(),
    ev.ConversationItemsAdded(first_index=4, items=[{"role": "user", "content": "m4"}]),
]


async def test_conversation_read_model_pops_and_clears_in_any_order(conn) -> None:
    in_order, reversed_ = f"t-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"
    for tenant, order in ((in_order, 1), (reversed_, -1)):
        recorded = await append(conn, tenant, "conv-1", CONVERSATION)
        await _apply(conn, conversation_items.PROJECTION, recorded[::order])
    live = await conversation_items.live_items(conn, in_order, "conv-1", None)
    assert [(r["idx"], r["item"]["content"]) for r in live] == [(4, "m4")]
    removed = await conn.fetch(
        "SELECT idx, removed_version FROM conversation_items_v1 WHERE tenant = $1 ORDER BY idx", in_order
    )
    assert [(r["idx"], r["removed_version"]) for r in removed] == [(0, 5), (1, 5), (2, 3), (3, 5), (4, None)]
    tables = conversation_items.PROJECTION.tables
    assert _without_times(await _rows(conn, tables, reversed_)) == _without_times(await _rows(conn, tables, in_order))


def _without_times(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {
        t: sorted(({k: v for k, v in r.items() if k != "recorded_at"} for r in rs), key=repr) for t, rs in rows.items()
    }


async def test_a_rebuild_of_the_framework_read_models_gives_the_live_rows(fresh_pool) -> None:
    """`agentlog projections rebuild`: both read models rebuilt from the log after live rows were
    lost (the lineage and hidden_from subqueries resolve to the shadow tables while building)."""
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    recorded = await append(fresh_pool, tenant, "thread-1", THREAD)
    forked = ev.SessionForked(source_session_id="thread-1", source_version=7, state={})
    recorded += await append(fresh_pool, tenant, "thread-copy", [forked])
    recorded += await append(fresh_pool, tenant, "conv-1", CONVERSATION)
    await project_live(fresh_pool, recorded)
    await readable(fresh_pool)
    models = (graph_checkpoints.PROJECTION, conversation_items.PROJECTION)
    async with fresh_pool.acquire() as conn:
        expected = {p.name: _without_times(await _rows(conn, p.tables, tenant)) for p in models}
        visible = await _visible(conn, tenant, "thread-copy")
    for projection in models:
        await damage(fresh_pool, projection.name)
        summary = await ProjectionRebuild(
            fresh_pool, projection.name, projector=GROUP, batch_size=5, max_retries=1, accept_drift=True
        ).run()
        assert summary.status == "swapped" and summary.drift is not None and not summary.drift.clean
        async with fresh_pool.acquire() as conn:
            assert _without_times(await _rows(conn, projection.tables, tenant)) == expected[projection.name]
    async with fresh_pool.acquire() as conn:
        assert await _visible(conn, tenant, "thread-copy") == visible
