"""The drift report of `agentlog projections rebuild`: exact, refused without --accept-drift,
nothing live changed by --verify-only, and live traffic during the rebuild never counted as drift.
"""

from __future__ import annotations

import json

import orjson

from projections.projector.applier import BatchApplier
from projections.projector.gaps import read_versions_between
from projections.read_models.catalog import PROJECTIONS
from projections.rebuild.job import ProjectionRebuild
from tests.integration.projection_rebuild_support import (
    GROUP,
    RETIRED_SCHEMAS,
    SHADOW_SCHEMAS,
    SHOUTING,
    add_messages,
    fresh_pool,  # noqa: F401 - a fixture
    project_live,
    readable,
    seed,
)
from tests.integration.projection_support import READ_MODEL_TABLES, append, read_models, support_case


def rebuild(pool, name: str, **options) -> ProjectionRebuild:
    return ProjectionRebuild(pool, name, projector=GROUP, batch_size=20, max_retries=1, **options)


def table(summary, name: str):
    (found,) = [t for t in summary.drift.tables if t.table == name]
    return found


async def test_projection_rebuild_reports_a_corrupted_live_row_by_key_column_old_and_new(fresh_pool, tmp_path) -> None:
    recorded = await seed(fresh_pool, sessions=4)
    victim = recorded[0].session_id
    await fresh_pool.execute(
        "UPDATE session_summaries_v1 SET message_count = 99, title = 'edited' WHERE tenant = 't1' AND session_id = $1",
        victim,
    )
    before = await read_models(fresh_pool)

    summary = await rebuild(fresh_pool, "session_summaries", drift_report=tmp_path / "drift.jsonl").run()

    assert summary.status == "drift_refused"
    rows = table(summary, "session_summaries_v1")
    assert (rows.changed, rows.only_live, rows.only_rebuilt) == (1, 0, 0)
    assert rows.live_rows == rows.rebuilt_rows == 5
    (example,) = rows.examples
    assert example.key == {"tenant": "t1", "session_id": victim}
    assert example.columns == {
        "title": {"old": "edited", "new": "charged twice, cannot log in"},
        "message_count": {"old": 99, "new": 3},
    }
    assert summary.drift.differences == 1
    lines = (tmp_path / "drift.jsonl").read_text().splitlines()
    assert [orjson.loads(line) for line in lines] == [example.as_dict()]
    assert await read_models(fresh_pool) == before, "a refused swap leaves live untouched"
    assert await fresh_pool.fetchval("SELECT count(*) FROM projection_versions") == 0
    assert await fresh_pool.fetchval(RETIRED_SCHEMAS) == 0

    accepted = await rebuild(fresh_pool, "session_summaries", accept_drift=True).run()
    assert (accepted.status, accepted.resumed, accepted.version) == ("swapped", True, 2)
    assert table(accepted, "session_summaries_v1").changed == 1
    fixed = await fresh_pool.fetchrow(
        "SELECT message_count, title FROM session_summaries_v1 WHERE tenant = 't1' AND session_id = $1", victim
    )
    assert tuple(fixed) == (3, "charged twice, cannot log in")


async def test_projection_rebuild_reports_rows_only_on_one_side(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=2)
    session = recorded[0].session_id
    await fresh_pool.execute(
        "DELETE FROM session_timeline_v1 WHERE tenant = 't1' AND session_id = $1 AND version = 2", session
    )
    await fresh_pool.execute(
        "INSERT INTO session_timeline_v1 (tenant, session_id, version, position, type, summary, recorded_at) "
        "VALUES ('t1', $1, 99, 0, 'MessageAdded', 'invented', now())",
        session,
    )
    summary = await rebuild(fresh_pool, "session_timeline").run()
    rows = table(summary, "session_timeline_v1")
    assert (rows.changed, rows.only_live, rows.only_rebuilt) == (0, 1, 1)
    assert [(d.kind, d.key["version"]) for d in rows.examples] == [("only_rebuilt", 2), ("only_live", 99)]
    assert rows.examples[1].row["summary"] == "invented"
    assert summary.status == "drift_refused"


async def test_projection_rebuild_reports_a_changed_handler_as_drift_of_exactly_the_rows_it_affects(
    fresh_pool,
) -> None:
    await seed(fresh_pool, sessions=3)
    messages = {
        (r["tenant"], r["session_id"], r["version"]): r["summary"]
        for r in await fresh_pool.fetch("SELECT * FROM session_timeline_v1 WHERE type = 'MessageAdded'")
    }
    assert len(messages) == 4 * 3  # three per case; the poison message is parked, so it has no row

    summary = await rebuild(fresh_pool, "session_timeline", catalog=SHOUTING, examples=100).run()

    rows = table(summary, "session_timeline_v1")
    assert (rows.changed, rows.only_live, rows.only_rebuilt) == (len(messages), 0, 0)
    assert {(d.key["tenant"], d.key["session_id"], d.key["version"]): d.columns for d in rows.examples} == {
        key: {"summary": {"old": line, "new": line.upper()}} for key, line in messages.items()
    }
    assert summary.handlers_changed is None  # version 1 was built by the projector: unknown code
    assert summary.status == "drift_refused"


async def test_projection_rebuild_verify_only_changes_nothing_live(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=3)
    await fresh_pool.execute("UPDATE tool_calls_v1 SET duration_ms = 1 WHERE session_id = $1", recorded[0].session_id)
    await add_messages(fresh_pool, "t1", recorded[0].session_id, 2, live=False)  # the projector is behind
    await readable(fresh_pool)
    before = await read_models(fresh_pool)

    summary = await rebuild(fresh_pool, "tool_calls", verify_only=True).run()

    assert summary.status == "verified"
    assert table(summary, "tool_calls_v1").changed == 2
    assert summary.brought_forward_live == 2  # ...inside the comparison's transaction, rolled back
    assert await read_models(fresh_pool) == before
    assert await fresh_pool.fetchval("SELECT count(*) FROM projection_versions") == 0
    assert await fresh_pool.fetchval(RETIRED_SCHEMAS) == 0
    assert await fresh_pool.fetchval(SHADOW_SCHEMAS) == 1  # kept: a rerun resumes at the end


async def test_projection_rebuild_swaps_a_clean_rebuild_without_asking(fresh_pool) -> None:
    await seed(fresh_pool, sessions=3)
    before = await read_models(fresh_pool)
    summary = await rebuild(fresh_pool, "approvals").run()
    assert (summary.status, summary.drift.clean, summary.version, summary.retired_version) == ("swapped", True, 2, 1)
    assert table(summary, "approvals_v1").live_rows == 4
    assert await read_models(fresh_pool) == before
    assert await fresh_pool.fetchval(SHADOW_SCHEMAS) == 0


async def test_projection_rebuild_compares_sessions_written_during_it_at_the_same_version(fresh_pool) -> None:
    """Live traffic at every moment of a rebuild: none of it is drift, and each moved session is
    compared again at the swap, where a real difference in one of them is still found."""
    recorded = await seed(fresh_pool, sessions=6, tenants=("t1",))
    a, b, c, d, e = [recorded[i * len(support_case())].session_id for i in range(5)]
    await add_messages(fresh_pool, "t1", d, 2, live=False)  # the projector lags behind the store

    async def traffic(phase: str) -> None:
        if phase == "verifying":  # the shadow has caught up; the projector now moves ahead of it
            await add_messages(fresh_pool, "t1", a, 3, live=True)
            await add_messages(fresh_pool, "t1", b, 1, live=False)
        if phase == "swapping":  # after the first comparison, before the swap's
            await add_messages(fresh_pool, "t1", c, 2, live=True)
            await append(fresh_pool, "t1", "new-" + e, support_case()[:3])

    summary = await rebuild(fresh_pool, "session_summaries", on_phase=traffic).run()
    assert summary.status == "swapped", [t.examples for t in summary.drift.tables if t.differences]
    assert summary.drift.clean
    # a and c moved live after the rebuild had read them; d was ahead in the rebuild unless the
    # read-all high-water mark (the cluster's oldest open transaction) held its last append back.
    assert summary.drift.sessions_rechecked >= 2
    assert summary.caught_up_in_swap >= 5
    assert await read_models(fresh_pool) == await _projected_from_scratch(fresh_pool)

    async def corrupt_while_moving(phase: str) -> None:
        if phase == "swapping":
            await add_messages(fresh_pool, "t1", e, 1, live=True)
            await fresh_pool.execute(
                "UPDATE session_summaries_v1 SET error_count = 7 WHERE tenant = 't1' AND session_id = $1", e
            )

    again = await rebuild(fresh_pool, "session_summaries", on_phase=corrupt_while_moving).run()
    assert again.status == "drift_refused"
    (example,) = table(again, "session_summaries_v1").examples
    assert (example.key["session_id"], example.columns) == (e, {"error_count": {"old": 7, "new": 0}})
    assert again.drift.sessions_rechecked >= 1


async def _projected_from_scratch(pool) -> dict:
    """What the projector would have made of the whole log, up to each session's live version."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            versions = await conn.fetch(
                "SELECT tenant, session_id, version FROM projection_session_versions WHERE projector = $1", GROUP
            )
            for table in READ_MODEL_TABLES:
                await conn.execute(f"DELETE FROM {table}")
            events = []
            for row in versions:
                events += await read_versions_between(conn, row["tenant"], row["session_id"], 0, row["version"] + 1)
            await BatchApplier(PROJECTIONS, GROUP, max_retries=1).apply(conn, events)
            return await read_models(conn)
        finally:
            await tx.rollback()


async def test_projection_rebuild_cli_verify_only_exits_3_with_the_report_as_json(
    fresh_database_url, monkeypatch, capsys
) -> None:
    from agentlog.cli.main import main
    from eventstore import db
    from projections.settings import DEFAULT_GROUP

    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    try:
        recorded = await append(pool, "t1", "cli-1", support_case())
        await project_live(pool, recorded, DEFAULT_GROUP)
        await pool.execute("UPDATE approvals_v1 SET risk = 'low'")
    finally:
        await pool.close()
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", fresh_database_url)
    args = ["projections", "rebuild", "approvals", "--verify-only"]
    assert await _in_thread(main, [*args, "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "verified" and report["drift"]["differences"] == 1
    (approvals,) = [t for t in report["drift"]["tables"] if t["table"] == "approvals_v1"]
    assert approvals["examples"][0]["columns"] == {"risk": {"old": "low", "new": "high"}}

    assert await _in_thread(main, args) == 3
    out = capsys.readouterr().out
    assert "verified only, nothing changed" in out
    assert "changed tenant=t1 session_id=cli-1 approval_id=a1: risk: 'low' -> 'high'" in out
    assert await _in_thread(main, ["projections", "rebuild", "approvals", "--accept-drift"]) == 0
    assert "swapped in as version 2" in capsys.readouterr().out


async def _in_thread(main, argv) -> int:
    import asyncio

    return await asyncio.to_thread(main, argv)
