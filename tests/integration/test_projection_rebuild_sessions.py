"""`agentlog projections rebuild NAME --session ID`: those sessions' rows rebuilt in place, one
transaction each, with the drift report; every other row left exactly as it was (not rewritten).
"""

from __future__ import annotations

import asyncio

import pytest

from agentlog.cli.main import main
from projections.rebuild.sessions import SessionRebuild, SessionRebuildUnsupportedError
from projections.settings import DEFAULT_GROUP
from tests.integration.projection_rebuild_support import (
    GROUP,
    add_messages,
    fresh_pool,  # noqa: F401 - a fixture
    project_live,
    seed,
)
from tests.integration.projection_support import append, read_models, support_case

# Where each row is stored and which transaction wrote it: unchanged only if nothing rewrote it.
PHYSICAL = "SELECT ctid::text, xmin::text, t::text FROM {table} t WHERE NOT (tenant = $1 AND session_id = ANY($2::text[])) ORDER BY 3"


def sessions_of(recorded) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.tenant, r.session_id) for r in recorded))


async def physical(pool, table: str, tenant: str, but: list[str]) -> list:
    return [tuple(r) for r in await pool.fetch(PHYSICAL.format(table=table), tenant, but)]


async def test_projection_rebuild_of_sessions_touches_only_those_sessions(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=6, tenants=("t1",))
    expected = await read_models(fresh_pool)
    (x_tenant, x), (_, y), (_, z), (_, clean) = sessions_of(recorded)[:4]
    for session in (x, y, z):
        await fresh_pool.execute(
            "DELETE FROM session_timeline_v1 WHERE tenant = 't1' AND session_id = $1 AND version = 2", session
        )
    await fresh_pool.execute(
        "UPDATE session_timeline_v1 SET agent = 'mallory' WHERE tenant = 't1' AND session_id = $1 AND version = 5", y
    )
    untouched = await physical(fresh_pool, "session_timeline_v1", "t1", [x, y])

    summary = await SessionRebuild(
        fresh_pool, "session_timeline", [(None, x), ("t1", y), ("t1", clean)], projector=GROUP, accept_drift=True
    ).run()

    assert [(s.session_id, s.status, s.version) for s in summary.sessions] == [
        (x, "rebuilt", 15),
        (y, "rebuilt", 15),
        (clean, "unchanged", 15),
    ]
    assert summary.status == "rebuilt" and summary.events == 45
    (timeline,) = [t for t in summary.drift.tables if t.table == "session_timeline_v1"]
    assert (timeline.only_rebuilt, timeline.changed, timeline.only_live) == (2, 1, 0)
    assert [(d.kind, d.key["session_id"], d.key["version"]) for d in timeline.examples] == sorted(
        [("only_rebuilt", x, 2), ("only_rebuilt", y, 2), ("changed", y, 5)], key=lambda k: (k[1], k[2])
    )
    assert await physical(fresh_pool, "session_timeline_v1", "t1", [x, y]) == untouched  # clean and z too
    after = await read_models(fresh_pool)
    assert [r for r in after["session_timeline_v1"] if dict(r)["session_id"] != z] == [
        r for r in expected["session_timeline_v1"] if dict(r)["session_id"] != z
    ]
    assert len([r for r in after["session_timeline_v1"] if dict(r)["session_id"] == z]) == 14  # still damaged
    assert {k: v for k, v in after.items() if k != "session_timeline_v1"} == {
        k: v for k, v in expected.items() if k != "session_timeline_v1"
    }
    assert x_tenant == "t1"


async def test_projection_rebuild_of_sessions_refuses_drift_and_verify_only_changes_nothing(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=2)
    (tenant, session), *_ = sessions_of(recorded)
    await fresh_pool.execute(
        "UPDATE session_summaries_v1 SET message_count = 0 WHERE tenant = $1 AND session_id = $2", tenant, session
    )
    before = await read_models(fresh_pool)
    for options, status in (({}, "drift_refused"), ({"verify_only": True}, "verified")):
        summary = await SessionRebuild(
            fresh_pool, "session_summaries", [(tenant, session)], projector=GROUP, **options
        ).run()
        assert (summary.status, summary.sessions[0].status, summary.sessions[0].differences) == (status, status, 1)
        (example,) = summary.drift.tables[0].examples
        assert example.columns == {"message_count": {"old": 0, "new": 3}}
        assert await read_models(fresh_pool) == before
    schemas = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'agentlog_sessions_%'"
    assert await fresh_pool.fetchval(schemas) == 0


async def test_projection_rebuild_of_a_session_with_a_parked_event_is_clean(fresh_pool) -> None:
    recorded = await seed(fresh_pool, sessions=1)
    sick = recorded[-1]
    before = await read_models(fresh_pool)
    summary = await SessionRebuild(
        fresh_pool, "session_summaries", [(sick.tenant, sick.session_id)], projector=GROUP, accept_drift=True
    ).run()
    assert summary.sessions[0].status == "unchanged" and summary.drift.clean
    assert await read_models(fresh_pool) == before


async def test_projection_rebuild_of_sessions_rebuilds_at_the_live_version(fresh_pool) -> None:
    """Events the projector has not applied yet stay for it: the rows match the other read models."""
    recorded = await seed(fresh_pool, sessions=1)
    tenant, session = sessions_of(recorded)[0]
    await add_messages(fresh_pool, tenant, session, 3, live=False)
    summary = await SessionRebuild(fresh_pool, "session_summaries", [(None, session)], projector=GROUP).run()
    assert (summary.sessions[0].version, summary.sessions[0].events, summary.sessions[0].status) == (
        15,
        15,
        "unchanged",
    )


async def test_projection_rebuild_of_sessions_names_unknown_sessions_and_refuses_unkeyed_tables(fresh_pool) -> None:
    summary = await SessionRebuild(fresh_pool, "approvals", [(None, "nobody")], projector=GROUP).run()
    assert [(s.tenant, s.session_id, s.status) for s in summary.sessions] == [(None, "nobody", "not_found")]
    with pytest.raises(SessionRebuildUnsupportedError):
        SessionRebuild(fresh_pool, "tool_stats", [(None, "x")], projector=GROUP)


async def test_projection_rebuild_cli_takes_sessions_from_a_file(fresh_database_url, monkeypatch, capsys, tmp_path):
    from eventstore import db

    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    try:
        for tenant in ("t1", "t2"):
            await project_live(pool, await append(pool, tenant, "case-1", support_case()), DEFAULT_GROUP)
        await project_live(pool, await append(pool, "t1", "case-2", support_case()), DEFAULT_GROUP)
        await pool.execute("UPDATE tool_calls_v1 SET error = 'edited'")
    finally:
        await pool.close()
    listing = tmp_path / "sessions.txt"
    listing.write_text("# sessions to repair\ncase-1\nt1 case-2\n")
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", fresh_database_url)
    argv = ["projections", "rebuild", "tool_calls", "--sessions-from", str(listing), "--json"]
    assert await asyncio.to_thread(main, argv) == 3
    out = capsys.readouterr().out
    import json

    report = json.loads(out)
    assert [(s["tenant"], s["session_id"], s["status"]) for s in report["sessions"]] == [
        ("t1", "case-1", "drift_refused"),
        ("t2", "case-1", "drift_refused"),
        ("t1", "case-2", "drift_refused"),
    ]
    assert report["drift"]["tables"][0]["changed"] == 6  # two calls per session, error edited on all
    assert await asyncio.to_thread(main, [*argv[:-1], "--accept-drift"]) == 0
    assert "t2/case-1: rebuilt (v15)" in capsys.readouterr().out
