"""Versions of a projection: a swap keeps the previous one; rollback brings it back with the events
applied since; drop-old drops it; `agentlog projections status` shows versions and a running rebuild.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from agentlog.cli.main import main
from eventstore.registry import decode
from projections.read_models import timeline
from projections.read_models.catalog import PROJECTIONS
from projections.rebuild import retired, status
from projections.rebuild.job import ProjectionRebuild, resolve
from projections.rebuild.retired import NothingToRollBackError, RetiredVersionOutdatedError
from projections.settings import DEFAULT_GROUP
from tests.integration.projection_rebuild_support import (
    GROUP,
    RETIRED_SCHEMAS,
    SHOUTING,
    add_messages,
    fresh_pool,  # noqa: F401 - a fixture
    project_live,
    seed,
)
from tests.integration.projection_support import append, read_models, support_case

TIMELINE = resolve("session_timeline")
SHOUTED = "SELECT count(*) FROM session_timeline_v1 WHERE type = 'MessageAdded' AND summary = upper(summary)"


async def versions_of(pool, name: str) -> dict:
    rows = await pool.fetch(
        "SELECT version, status FROM projection_versions WHERE projector = $1 AND projection = $2", GROUP, name
    )
    return {r["version"]: r["status"] for r in rows}


def without_timeline(models: dict) -> dict:
    return {k: v for k, v in models.items() if k != "session_timeline_v1"}


async def test_projection_rollback_restores_the_previous_rows_plus_the_events_since(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=3)
    first = await read_models(fresh_pool)
    swapped = await ProjectionRebuild(
        fresh_pool, "session_timeline", projector=GROUP, catalog=SHOUTING, accept_drift=True
    ).run()
    assert (swapped.status, swapped.version, swapped.retired_version) == ("swapped", 2, 1)
    assert await fresh_pool.fetchval(SHOUTED) == 12

    tenant, session = recorded[0].tenant, recorded[0].session_id
    since = await add_messages(fresh_pool, tenant, session, 2, live=True)  # the projector goes on
    await add_messages(fresh_pool, tenant, session, 1, live=False)  # ...and has not applied this yet
    before = await read_models(fresh_pool)

    back = await retired.rollback(fresh_pool, TIMELINE, PROJECTIONS, projector=GROUP)

    assert (back.status, back.live_version, back.retired_version, back.caught_up) == ("rolled_back", 1, 2, 2)
    assert await versions_of(fresh_pool, "session_timeline") == {1: "live", 2: "retired"}
    after = await read_models(fresh_pool)
    assert without_timeline(after) == without_timeline(before)
    restored = [dict(r) for r in after["session_timeline_v1"]]
    assert [r for r in restored if r["version"] <= 15 or r["session_id"] != session] == [
        dict(r) for r in first["session_timeline_v1"]
    ]
    assert [(r["version"], r["summary"]) for r in restored if r["session_id"] == session and r["version"] > 15] == [
        (e.version, timeline.summary_of(decode(e))) for e in since
    ]
    assert await fresh_pool.fetchval(SHOUTED) == 0

    forward = await retired.rollback(fresh_pool, TIMELINE, PROJECTIONS, projector=GROUP)
    assert (forward.live_version, forward.retired_version) == (2, 1)
    assert await fresh_pool.fetchval(SHOUTED) == 12
    assert await read_models(fresh_pool) == before

    dropped = await retired.drop_old(fresh_pool, TIMELINE, projector=GROUP)
    assert (dropped.status, dropped.live_version, dropped.retired_version) == ("dropped", 2, 1)
    assert await versions_of(fresh_pool, "session_timeline") == {1: "dropped", 2: "live"}
    assert await fresh_pool.fetchval(RETIRED_SCHEMAS) == 0
    with pytest.raises(NothingToRollBackError):
        await retired.rollback(fresh_pool, TIMELINE, PROJECTIONS, projector=GROUP)


async def test_projection_rebuild_keeps_one_previous_version(fresh_pool) -> None:
    await seed(fresh_pool, sessions=2)
    for _ in range(3):
        assert (await ProjectionRebuild(fresh_pool, "tool_stats", projector=GROUP).run()).status == "swapped"
    assert await versions_of(fresh_pool, "tool_stats") == {1: "dropped", 2: "dropped", 3: "retired", 4: "live"}
    again = await ProjectionRebuild(fresh_pool, "tool_stats", projector=GROUP).run()
    assert again.handlers_changed is False  # the same code built version 4
    before = await read_models(fresh_pool)
    await retired.rollback(fresh_pool, resolve("tool_stats"), PROJECTIONS, projector=GROUP)
    assert await read_models(fresh_pool) == before  # tool_stats reads the live tool_calls to catch up


async def test_projection_rebuild_shows_in_projections_status_while_it_runs(fresh_pool) -> None:
    await seed(fresh_pool, sessions=10)
    seen: dict = {}

    async def look(progress) -> None:  # awaited by the rebuild between two batches
        if progress.batches == 3:
            seen.update((await status.rebuilds(fresh_pool))["approvals"])

    summary = await ProjectionRebuild(
        fresh_pool, "approvals", projector=GROUP, batch_size=10, max_batches=6, on_progress=look
    ).run()
    assert summary.status == "interrupted"
    assert seen["running"] is True and seen["phase"] == "building" and seen["source"] == "store"
    assert seen["events_done"] == 30 and seen["eta_seconds"] is not None
    assert seen["events_total"] == await fresh_pool.fetchval("SELECT count(*) FROM events")
    stopped = (await status.rebuilds(fresh_pool))["approvals"]
    assert (stopped["running"], stopped["events_done"]) == (False, 60)


async def test_projection_rollback_and_drop_old_cli(fresh_database_url, monkeypatch, capsys) -> None:
    from eventstore import db

    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    try:
        await project_live(pool, await append(pool, "t1", "case-1", support_case()), DEFAULT_GROUP)
    finally:
        await pool.close()
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", fresh_database_url)

    def run(*argv: str) -> int:
        return main(["projections", *argv])

    assert await asyncio.to_thread(run, "rollback", "approvals") == 1
    assert "approvals has no previous version" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "rebuild", "approvals") == 0
    assert "version 1 kept for `agentlog projections rollback approvals`" in capsys.readouterr().out
    assert await asyncio.to_thread(run, "rollback", "approvals") == 0
    assert "approvals: version 1 is live again (0 events applied since the swap); version 2 kept" in (
        capsys.readouterr().out
    )
    assert await asyncio.to_thread(run, "status") == 0
    (approvals,) = [p for p in json.loads(capsys.readouterr().out) if p["projection"] == "approvals"]
    assert approvals["versions"]["live"] == 1 and approvals["versions"]["retired"] == 2
    assert approvals["rebuild"] is None
    assert await asyncio.to_thread(run, "drop-old", "approvals", "--json") == 0
    assert json.loads(capsys.readouterr().out)["retired_version"] == 2


async def test_projection_rebuild_and_rollback_refuse_tables_older_than_a_migration(fresh_pool) -> None:
    await seed(fresh_pool, sessions=2)
    assert (await ProjectionRebuild(fresh_pool, "approvals", projector=GROUP).run()).status == "swapped"
    stopped = await ProjectionRebuild(fresh_pool, "tool_calls", projector=GROUP, batch_size=5, max_batches=1).run()
    assert stopped.status == "interrupted"
    for table in ("approvals_v1", "tool_calls_v1"):  # what a later migration may do
        await fresh_pool.execute(f"ALTER TABLE {table} ADD COLUMN note text")

    with pytest.raises(RetiredVersionOutdatedError):
        await retired.rollback(fresh_pool, resolve("approvals"), PROJECTIONS, projector=GROUP)
    again = await ProjectionRebuild(fresh_pool, "tool_calls", projector=GROUP).run()
    assert (again.resumed, again.status) == (False, "swapped")  # the old shadow lacked the column
    assert await fresh_pool.fetchval("SELECT count(*) FROM tool_calls_v1 WHERE note IS NULL") == 6


async def test_projection_rebuild_of_all_swaps_every_projection_from_one_read_of_the_log(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=3)
    expected = await read_models(fresh_pool)
    await fresh_pool.execute("UPDATE approvals_v1 SET risk = 'none' WHERE session_id = $1", recorded[0].session_id)
    await fresh_pool.execute("DELETE FROM state_audit_v1 WHERE session_id = $1", recorded[0].session_id)
    damaged = await read_models(fresh_pool)

    refused = await ProjectionRebuild(fresh_pool, "all", projector=GROUP).run()
    assert refused.status == "drift_refused" and refused.built_with == [p.name for p in PROJECTIONS]
    assert {t.table: t.differences for t in refused.drift.tables if t.differences} == {
        "approvals_v1": 1,
        "state_audit_v1": 3,
    }
    assert await read_models(fresh_pool) == damaged

    swapped = await ProjectionRebuild(fresh_pool, "all", projector=GROUP, accept_drift=True).run()
    assert (swapped.status, swapped.resumed) == ("swapped", True)
    assert swapped.versions == {p.name: 2 for p in PROJECTIONS}
    assert await read_models(fresh_pool) == expected
    drift = await fresh_pool.fetch("SELECT projection, drift FROM projection_versions WHERE drift IS NOT NULL")
    assert {r["projection"]: r["drift"] for r in drift} == {
        "approvals": {"approvals_v1": 1},
        "state_audit": {"state_audit_v1": 3},
    }
    await retired.rollback(fresh_pool, resolve("approvals"), PROJECTIONS, projector=GROUP)
    assert await read_models(fresh_pool) == {**expected, "approvals_v1": damaged["approvals_v1"]}
