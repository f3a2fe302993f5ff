"""Replay at a flat cost (issue 11) on the real store: a replay that does not ask for blame reads
the snapshot's state and the few columns of the events after it, and answers what the fold from
version 1 answers at every version, with or without snapshots; the snapshot writer carries its
last point on instead of reading the chain of knowledge parts back, and writes exactly the rows a
fresh writer writes, falling back to the chain when its row is gone."""

from __future__ import annotations

import gc
import json
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import events as ev
from eventstore import fold_snapshots
from eventstore import state as state_module
from eventstore.errors import ReplaySourceIncompleteError, SessionNotFoundError
from eventstore.fold_snapshots import fold_to, write_due
from eventstore.registry import to_stored
from eventstore.state import SessionState, evolve, fold
from eventstore.store import EventStore
from tests.integration.command_api_fixtures import new_session_id, tenant  # noqa: F401  (fixtures)
from tests.integration.replay_support import agentlog
from tests.integration.test_fold_snapshots import write
from tests.integration.test_knowledge_snapshots import chained_session
from tests.unit.test_fold_snapshots import sessions

EVERY = 4
_ROWS = """
SELECT format, version, state, blame, knowledge FROM fold_snapshots_v1
 WHERE tenant = $1 AND session_id = $2 ORDER BY version
"""
_DROP = "DELETE FROM fold_snapshots_v1 WHERE tenant = $1 AND session_id = $2 AND version >= $3"


async def test_a_replay_without_blame_equals_the_fold_from_version_1_at_every_version(pool, tenant) -> None:
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, chained_session(6))
    assert await write_due(store, tenant.name, sid, len(events), EVERY) == len(events) // EVERY
    for v in range(1, len(events) + 1):
        point = await fold_to(store, tenant.name, sid, v, with_blame=False)
        assert (point.version, point.state) == (v, fold(events[:v]))
        assert not point.blamed and point.blame.result().entries == []
    await pool.execute(_DROP, tenant.name, sid, 0)  # no snapshot: from version 1, as lean
    for v in (1, 13, len(events)):
        assert (await fold_to(store, tenant.name, sid, v, with_blame=False)).state == fold(events[:v])


async def test_a_replay_without_blame_of_an_unknown_session_or_version_is_an_error(pool, tenant) -> None:
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, chained_session(2))
    with pytest.raises(SessionNotFoundError):
        await fold_to(store, tenant.name, new_session_id(), 3, with_blame=False)
    with pytest.raises(ReplaySourceIncompleteError):
        await fold_to(store, tenant.name, sid, len(events) + 2, with_blame=False)
    with pytest.raises(SessionNotFoundError):  # another tenant's session is not there
        await fold_to(store, "another-tenant", sid, 3, with_blame=False)


async def test_the_writer_carries_its_point_on_and_writes_what_a_fresh_writer_writes(pool, tenant) -> None:
    store, sid = EventStore(pool), new_session_id()
    events = [to_stored(e) for e in chained_session(8)]  # 41 events
    version = 0
    for start in range(0, len(events), 3):  # appended in commands, written after each as a projector does
        chunk = events[start : start + 3]
        await store.append(tenant.name, sid, chunk, expected_version=version)
        version += len(chunk)
        await write_due(store, tenant.name, sid, version, EVERY)
        kept = fold_snapshots._kept_points(store).get((tenant.name, sid))
        assert kept is None if version < EVERY else kept.version == version // EVERY * EVERY
    carried = await pool.fetch(_ROWS, tenant.name, sid)
    assert [row["version"] for row in carried] == list(range(EVERY, len(events) + 1, EVERY))

    await pool.execute(_DROP, tenant.name, sid, 0)
    assert await write_due(EventStore(pool), tenant.name, sid, version, EVERY) == len(carried)
    assert await pool.fetch(_ROWS, tenant.name, sid) == carried

    # its row gone (dropped, or written again by another writer): it starts from the chain again
    await pool.execute(_DROP, tenant.name, sid, 32)
    assert await write_due(store, tenant.name, sid, version, EVERY) == 3
    assert await pool.fetch(_ROWS, tenant.name, sid) == carried


def with_checkpoints() -> list[ev.Event]:
    """The chained session (31 events) with a checkpoint "plan" at versions 10 and 21, "act" at 16."""
    events = chained_session(6)
    for version, name in ((10, "plan"), (16, "act"), (21, "plan")):
        events.insert(version - 1, ev.CheckpointSaved(name=name))
    return events


async def _mark_snapshot(pool, tenant: str, sid: str, version: int) -> None:
    """Tamper with one snapshot's state, so that an answer shows whether it started there."""
    await pool.execute(
        "UPDATE fold_snapshots_v1 SET state = jsonb_set(state::jsonb, '{workflow}', '\"from-the-snapshot\"')::json "
        "WHERE tenant = $1 AND session_id = $2 AND version = $3",
        tenant,
        sid,
        version,
    )


async def test_replay_to_a_checkpoint_starts_at_the_nearest_snapshot(pool, tenant, database_url) -> None:
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, with_checkpoints())
    await write_due(store, tenant.name, sid, len(events), EVERY)

    async def replay(name: str):
        args = ("replay", sid, "--tenant", tenant.name, "--to-checkpoint", name, "--json")
        return await agentlog(*args, AGENTLOG_DATABASE_URL=database_url)

    done = await replay("plan")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["version"], out["state"]) == (21, fold(events[:21]).to_snapshot())
    assert out["last_event"]["type"] == "CheckpointSaved" and out["last_event"]["version"] == 21
    await _mark_snapshot(pool, tenant.name, sid, 20)
    assert json.loads((await replay("plan")).stdout)["state"]["workflow"] == "from-the-snapshot"
    assert json.loads((await replay("act")).stdout)["state"] == fold(events[:16]).to_snapshot()
    unknown = await replay("paid")
    assert unknown.returncode == 1
    assert "no checkpoint named 'paid' in this session (checkpoints: plan, act)" in unknown.stderr


async def test_step_from_a_version_starts_at_the_nearest_snapshot(pool, tenant, database_url) -> None:
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, with_checkpoints())
    await write_due(store, tenant.name, sid, len(events), EVERY)

    async def step(*target: str) -> list[dict]:
        args = ("replay", sid, "--tenant", tenant.name, "--step", "--json", *target)
        done = await agentlog(*args, AGENTLOG_DATABASE_URL=database_url)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    every_step = await step()  # from version 1: every event, folded from the start
    assert [line["version"] for line in every_step] == list(range(1, len(events) + 1))
    assert await step("--from-version", "14", "--to-version", "23") == every_step[13:23]
    assert await step("--from-version", "1", "--to-version", "3") == every_step[:3]
    assert await step("--from-version", "21", "--to-checkpoint", "plan") == every_step[20:21]
    assert await step("--from-version", "17", "--to-checkpoint", "plan") == every_step[16:21]
    await pool.execute(  # the state before 13 now says version 99: the step shows where it started
        "UPDATE fold_snapshots_v1 SET state = jsonb_set(state::jsonb, '{version}', '99')::json "
        "WHERE tenant = $1 AND session_id = $2 AND version = 12",
        tenant.name,
        sid,
    )
    (first,) = await step("--from-version", "13", "--to-version", "13")
    assert {"path": "/version", "from": 99, "to": 13} in first["diff"]["changed"]


async def test_step_from_a_version_after_the_target_or_without_step_is_refused(pool, tenant, database_url) -> None:
    store, sid = EventStore(pool), new_session_id()
    await write(store, tenant.name, sid, with_checkpoints())
    after = await agentlog(
        "replay", sid, "--tenant", tenant.name, "--step", "--from-version", "9", "--to-version", "8",
        AGENTLOG_DATABASE_URL=database_url,
    )  # fmt: skip
    assert after.returncode == 1
    assert after.stderr.strip() == "agentlog replay: --from-version 9 is after the target, version 8"
    alone = await agentlog(
        "replay", sid, "--tenant", tenant.name, "--from-version", "9", AGENTLOG_DATABASE_URL=database_url
    )
    assert alone.returncode == 2 and "--from-version goes with --step" in alone.stderr


async def test_the_writer_keeps_points_for_a_bounded_number_of_events(pool, tenant, monkeypatch) -> None:
    monkeypatch.setattr(fold_snapshots, "KEPT_EVENTS", 40)
    store, first, second = EventStore(pool), new_session_id(), new_session_id()
    for sid in (first, second):
        await write(store, tenant.name, sid, chained_session(6))  # 31 events: a point at 28
        await write_due(store, tenant.name, sid, 31, EVERY)
    assert list(fold_snapshots._kept_points(store)) == [(tenant.name, second)]  # 28 + 28 > 40
    monkeypatch.setattr(fold_snapshots, "KEPT_EVENTS", 10)
    await write_due(store, tenant.name, first, 31, EVERY)  # read back from its chain, kept alone
    assert list(fold_snapshots._kept_points(store)) == [(tenant.name, first)]


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(events=sessions, every=st.integers(1, 6), remembered=st.integers(1, 4))
async def test_a_lean_replay_equals_evolve_event_by_event_at_every_version_of_generated_sessions(
    pool, tenant, events, every, remembered
) -> None:
    """The reference is evolve one event at a time (no fold, nothing changed in place): the lean
    replay (snapshot state, decoded events, the fold carrying its state in place) gives the
    same state, memories in the same order (forgetting included), at every version."""
    store, sid = EventStore(pool), f"gen-{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state_module, "MAX_REMEMBERED", remembered)
        recorded = await write(store, tenant.name, sid, events)
        await write_due(store, tenant.name, sid, len(recorded), every)
        reference = SessionState()
        for v, event in enumerate(recorded, start=1):
            reference = evolve(reference, event)
            point = await fold_to(store, tenant.name, sid, v, with_blame=False)
            assert point.version == v and point.state == reference
            assert orjson.dumps(point.state.to_snapshot()) == orjson.dumps(reference.to_snapshot())


async def test_a_replay_leaves_the_garbage_collector_as_it_found_it(pool, tenant) -> None:
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, chained_session(2))
    await write_due(store, tenant.name, sid, len(events), EVERY)
    assert gc.isenabled()
    for blame in (False, True):
        await fold_to(store, tenant.name, sid, len(events), with_blame=blame)
        assert gc.isenabled()
    with pytest.raises(SessionNotFoundError):
        await fold_to(store, tenant.name, new_session_id(), 3, with_blame=False)
    assert gc.isenabled()
    gc.disable()
    try:  # a caller that paused it finds it paused
        await fold_to(store, tenant.name, sid, len(events), with_blame=False)
        assert not gc.isenabled()
    finally:
        gc.enable()
