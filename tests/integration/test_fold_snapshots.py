"""Fold snapshots on the real stack (issue 11, flat cost): the projector writes one every K events
of a session (K small here, through its settings), tenant-scoped and under this fold's format;
replay and blame (CLI and query API) start at them and answer exactly what a fold from version 1
answers; a snapshot of another fold format is ignored; `--at TIME` for blame and context."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import orjson
import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr

from eventstore import db
from eventstore import events as ev
from eventstore.blame import blame
from eventstore.fold_snapshots import FOLD_FORMAT, FoldPoint, fold_to, write_due, write_point
from eventstore.registry import to_stored
from eventstore.settings import Settings
from eventstore.state import SessionState, fold
from eventstore.store import EventStore
from projections.api.app import create_app
from projections.rebuild.job import ProjectionRebuild
from projections.settings import QueriesSettings
from tests.integration.command_api_fixtures import new_session_id, other_tenant, tenant  # noqa: F401  (fixtures)
from tests.integration.projection_rebuild_support import GROUP, fresh_pool, seed  # noqa: F401  (fixture)
from tests.integration.projection_support import produce, running_projector, settings
from tests.integration.replay_support import agentlog
from tests.waiting import wait_until

EVERY = 5


def long_session(turns: int, tag: str) -> list[ev.Event]:
    """Overlapping patches by two agents, tool and model calls, a checkpoint; 5 events a turn."""
    events: list[ev.Event] = [ev.SessionStarted(agents=["billing", "account"], allow_shared_sections=True)]
    for k in range(turns):
        agent = ("billing", "account")[k % 2]
        changes = {f"k{k % 3}": f"{tag}{k}", "who": agent, "gone": None if k % 4 == 3 else k}
        events += [
            ev.MessageAdded(role="user", content=f"{tag} turn {k}"),
            ev.StateSectionUpdated(agent=agent, section="case", changes=changes),
            ev.ToolCallRequested(call_id=f"t{k}", tool="search", arguments={"q": k}, agent=agent),
            ev.ToolCallCompleted(call_id=f"t{k}", result={"hits": k}),
            ev.ModelCallRecorded(
                call_id=f"m{k}", model="m", request=ev.ModelRequest(messages=[{"role": "user", "content": f"q{k}"}])
            ),
        ]
    return events


async def write(store: EventStore, tenant: str, session_id: str, events: list[ev.Event]):
    state = SessionState.new(session_id, tenant)
    for start in range(0, len(events), 4):  # several commands, as agents would append
        chunk = events[start : start + 4]
        after = fold(chunk, state)
        await store.append(
            tenant,
            session_id,
            [to_stored(e) for e in chunk],
            expected_version=state.version,
            metadata={"actor": f"key_{start % 3}"},
            new_state=after.to_snapshot(),
            new_status=after.status,
        )
        state = after
    return await store.read_stream(tenant, session_id)


async def snapshot_versions(pool, tenant: str, session_id: str) -> list[tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT format, version FROM fold_snapshots_v1 WHERE tenant = $1 AND session_id = $2 ORDER BY version",
        tenant,
        session_id,
    )
    return [(r["format"], r["version"]) for r in rows]


@pytest.fixture(scope="module")
async def queries(database_url: str):
    app = create_app(QueriesSettings(), shared=Settings(database_url=SecretStr(database_url)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queries") as client:
            yield client


@pytest.fixture
async def projected(pool, kafka_bootstrap: str, topic: str, tenant, other_tenant):
    """One session id in two tenants (36 and 16 events), projected with snapshots every 5 events."""
    store, sid = EventStore(pool), new_session_id()
    mine = await write(store, tenant.name, sid, long_session(7, "a"))
    theirs = await write(store, other_tenant.name, sid, long_session(3, "b"))
    async with running_projector(pool, kafka_bootstrap, topic, settings(snapshot_every=EVERY)) as projector:
        await produce(kafka_bootstrap, topic, mine + theirs)
        await wait_until(lambda: projector.snapshots.written >= 7 + 3, timeout=30, message="snapshots written")
    return store, sid, mine, theirs


async def test_snapshots_are_written_in_the_background_never_holding_back_the_read_models(
    pool, database_url: str, kafka_bootstrap: str, topic: str, tenant
) -> None:
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, long_session(4, "c"))  # 21 events: due at 5, 10, 15, 20
    blocker = await db.connect(database_url)
    try:
        held = blocker.transaction()
        await held.start()
        # Every snapshot read or write waits for this lock; the read models' tables are not touched.
        await blocker.execute("LOCK TABLE fold_snapshots_v1 IN ACCESS EXCLUSIVE MODE")
        async with running_projector(pool, kafka_bootstrap, topic, settings(snapshot_every=EVERY)) as projector:
            await produce(kafka_bootstrap, topic, events[:10])
            await wait_until(lambda: projector.totals.applied == 10, timeout=30, message="the first batch applied")
            await wait_until(lambda: projector.snapshots.pending == 0, timeout=30, message="its snapshot write waiting")
            # A batch after one whose snapshots are due: applied while they cannot be written.
            await produce(kafka_bootstrap, topic, events[10:])
            await wait_until(
                lambda: projector.totals.applied == len(events),
                timeout=30,
                message="the read models caught up while the snapshots wait",
            )
            assert projector.snapshots.written == 0
            # what /metrics tells an operator meanwhile: none written, the sessions' snapshots unwritten
            assert snapshot_metrics(projector) == (0, 1)
            await held.rollback()
            await wait_until(lambda: projector.snapshots.written == 4, timeout=30, message="the snapshots written")
            await wait_until(lambda: snapshot_metrics(projector) == (4, 0), timeout=30, message="the metrics")
        assert await snapshot_versions(pool, tenant.name, sid) == [(FOLD_FORMAT, v) for v in (5, 10, 15, 20)]
    finally:
        await blocker.close()


async def test_a_projector_stops_while_its_snapshots_wait(
    pool, database_url: str, kafka_bootstrap: str, topic: str, tenant
):
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, long_session(2, "d"))  # 11 events: due at 5, 10
    blocker = await db.connect(database_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE fold_snapshots_v1 IN ACCESS EXCLUSIVE MODE")
            async with running_projector(pool, kafka_bootstrap, topic, settings(snapshot_every=EVERY)) as projector:
                await produce(kafka_bootstrap, topic, events)
                await wait_until(lambda: projector.totals.applied == len(events), timeout=30, message="applied")
                await wait_until(lambda: projector.snapshots.pending == 0, timeout=30, message="the write under way")
            # Left the block: the projector stopped although its snapshot write was still waiting.
            assert projector.task.done() and projector.snapshots.written == 0
    finally:
        await blocker.close()
    assert await snapshot_versions(pool, tenant.name, sid) == []


def snapshot_metrics(projector) -> tuple[float, float]:
    """(fold snapshots written, sessions with snapshots unwritten) as the projector's /metrics say."""
    text = generate_latest(projector.metrics.registry).decode()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return (
        float(values["agentlog_projector_fold_snapshots_total"]),
        float(values["agentlog_projector_fold_snapshots_pending"]),
    )


def blame_json(events, section=None):
    return blame(events, section=section).to_json()


async def test_the_projector_writes_a_snapshot_every_k_events_per_tenant(projected, pool, tenant, other_tenant):
    store, sid, mine, theirs = projected
    assert await snapshot_versions(pool, tenant.name, sid) == [(FOLD_FORMAT, v) for v in range(5, 36, 5)]
    assert await snapshot_versions(pool, other_tenant.name, sid) == [(FOLD_FORMAT, v) for v in (5, 10, 15)]
    for events, who in ((mine, tenant.name), (theirs, other_tenant.name)):
        for v in range(1, len(events) + 1):
            point = await fold_to(store, who, sid, v)
            assert point.state == fold(events[:v]), v
            assert orjson.dumps(point.state.to_snapshot()) == orjson.dumps(fold(events[:v]).to_snapshot()), v
            assert point.blame.result().to_json() == blame_json(events[:v]), v


async def test_replay_and_blame_start_at_the_nearest_snapshot_and_equal_the_full_fold(
    projected,
    pool,
    queries,
    database_url,
    tenant,
) -> None:
    _store, sid, mine, _ = projected
    row = await pool.fetchrow(
        "SELECT state, blame FROM fold_snapshots_v1 WHERE tenant = $1 AND session_id = $2 AND version = 10",
        tenant.name,
        sid,
    )
    tampered_state = {**row["state"], "sections": {**row["state"]["sections"], "marker": {"from": "snapshot"}}}
    tampered_blame = {**row["blame"], "status": ["tampered", 0]}
    update = "UPDATE fold_snapshots_v1 SET state = $3::json, blame = $4::json WHERE tenant = $1 AND session_id = $2 AND version = 10"
    await pool.execute(update, tenant.name, sid, tampered_state, tampered_blame)
    replay = await agentlog(
        "replay", sid, "--tenant", tenant.name, "--to-version", "12", "--only", "sections", "--json",
        AGENTLOG_DATABASE_URL=database_url,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["sections"]["marker"] == {"from": "snapshot"}  # it started at version 10
    api = await queries.get(f"/v1/sessions/{sid}/blame", params={"at_version": 14}, headers=tenant.reader)
    assert api.json()["entries"][0]["value"] == "tampered"  # so did blame over HTTP

    await pool.execute(update, tenant.name, sid, row["state"], row["blame"])
    replay = await agentlog(
        "replay", sid, "--tenant", tenant.name, "--to-version", "12", "--only", "sections", "--json",
        AGENTLOG_DATABASE_URL=database_url,
    )  # fmt: skip
    assert json.loads(replay.stdout)["sections"] == fold(mine[:12]).sections
    full = await agentlog(
        "replay", sid, "--tenant", tenant.name, "--to-version", "12", "--json", AGENTLOG_DATABASE_URL=database_url
    )  # --json shows what the agents knew too: from the snapshot's knowledge parts
    assert json.loads(full.stdout)["state"] == fold(mine[:12]).to_snapshot()
    api = await queries.get(f"/v1/sessions/{sid}/blame", params={"at_version": 14}, headers=tenant.reader)
    assert api.json()["entries"] == blame_json(mine[:14])
    cli = await agentlog(
        "blame", sid, "--tenant", tenant.name, "--at-version", "33", "--section", "case", "--json",
        AGENTLOG_DATABASE_URL=database_url,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["entries"] == blame_json(mine[:33], "case")
    api = await queries.get(f"/v1/sessions/{sid}/blame", headers=tenant.reader)
    assert (api.json()["version"], api.json()["entries"]) == (len(mine), blame_json(mine))


async def test_a_snapshot_of_another_fold_format_is_ignored(projected, pool, tenant) -> None:
    store, sid, mine, _ = projected
    wrong = FoldPoint(36, fold(mine[:3]), (await fold_to(store, tenant.name, sid, 3)).blame)
    await write_point(pool, tenant.name, sid, wrong, "state0.blame0.fold0")
    point = await fold_to(store, tenant.name, sid, 36)
    assert point.state == fold(mine[:36])
    assert point.blame.result().to_json() == blame_json(mine[:36])


async def test_snapshots_of_one_tenant_never_answer_for_another(projected, pool, queries, tenant, other_tenant):
    store, sid, _mine, theirs = projected
    await pool.execute(
        "UPDATE fold_snapshots_v1 SET state = jsonb_set(state::jsonb, '{status}', '\"failed\"')::json "
        "WHERE tenant = $1 AND session_id = $2",
        tenant.name,
        sid,
    )
    assert (await fold_to(store, other_tenant.name, sid, 16)).state == fold(theirs)
    api = await queries.get(f"/v1/sessions/{sid}/blame", params={"at_version": 16}, headers=other_tenant.reader)
    assert api.json()["entries"] == blame_json(theirs)
    too_far = await queries.get(f"/v1/sessions/{sid}/blame", params={"at_version": 17}, headers=other_tenant.reader)
    assert too_far.status_code == 422  # its own session's length, not the other tenant's
    assert (await fold_to(store, tenant.name, sid, 36)).state.status == "failed"  # the tampered rows are its own


async def test_blame_and_context_at_a_time(projected, database_url, tenant) -> None:
    _, sid, mine, _ = projected
    at = mine[21].recorded_at.isoformat()  # version 22: after model call m3 (version 21)
    blamed = await agentlog(
        "blame", sid, "--tenant", tenant.name, "--at", at, "--json", AGENTLOG_DATABASE_URL=database_url
    )
    assert blamed.returncode == 0, blamed.stderr
    assert (json.loads(blamed.stdout)["version"], json.loads(blamed.stdout)["entries"]) == (22, blame_json(mine[:22]))
    context = await agentlog(
        "context", sid, "--tenant", tenant.name, "--at", at, "--json", AGENTLOG_DATABASE_URL=database_url
    )
    assert context.returncode == 0, context.stderr
    assert json.loads(context.stdout)["call_id"] == "m3"
    before = (mine[0].recorded_at - timedelta(seconds=1)).isoformat()
    for command in ("blame", "context"):
        early = await agentlog(
            command, sid, "--tenant", tenant.name, "--at", before, AGENTLOG_DATABASE_URL=database_url
        )
        assert early.returncode == 1
        assert early.stderr.strip() == (
            f"agentlog {command}: --at {before} is before the session's first event ({mine[0].recorded_at.isoformat()})"
        )


async def test_a_projection_rebuild_leaves_the_snapshots_usable(fresh_pool) -> None:
    """Snapshots are not a read model: a rebuild neither rebuilds nor swaps nor drops them."""
    store, sid = EventStore(fresh_pool), new_session_id()
    await seed(fresh_pool, sessions=2)
    events = await write(store, "t1", sid, long_session(3, "r"))
    assert await write_due(store, "t1", sid, len(events), EVERY) == 3
    before = await fresh_pool.fetch("SELECT * FROM fold_snapshots_v1 ORDER BY tenant, session_id, version")
    for name in ("session_state", "state_audit"):
        summary = await ProjectionRebuild(
            fresh_pool, name, projector=GROUP, batch_size=50, max_retries=1, accept_drift=True
        ).run()
        assert summary.status == "swapped", summary
    assert await fresh_pool.fetch("SELECT * FROM fold_snapshots_v1 ORDER BY tenant, session_id, version") == before
    point = await fold_to(store, "t1", sid, 14)
    assert point.state == fold(events[:14]) and point.blame.result().to_json() == blame_json(events[:14])
