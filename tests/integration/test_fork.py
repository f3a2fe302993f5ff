"""`agentlog fork` against the real Postgres: the fork's state at version 1 is the source's state at
the version forked, it is appended with its outbox row like any command, and refusals write nothing."""

from __future__ import annotations

import json
import uuid

import pytest

from commands.decide import decide
from commands.fork import fork_session
from commands.models import AddMessage
from eventstore.errors import (
    SessionNotFoundError,
    StreamAlreadyExistsError,
    ValidationProblemError,
)
from eventstore.registry import to_stored
from eventstore.state import SessionState, fold
from eventstore.store import EventStore
from tests.integration.replay_support import agentlog, new_session_id, write_support_case


@pytest.fixture
async def case(pool):
    tenant, session_id = f"t-{uuid.uuid4().hex[:8]}", new_session_id()
    events = await write_support_case(EventStore(pool), tenant, session_id)
    return tenant, session_id, events


def expected_fork_state(source_events, version: int, fork_id: str, source_id: str) -> dict:
    snapshot = fold(source_events[:version]).to_snapshot()
    return {
        **snapshot,
        "session_id": fork_id,
        "version": 1,
        "status": "open",
        "forked_from": {"session_id": source_id, "version": version},
    }


async def outbox_positions(pool, tenant: str, session_id: str) -> list[int]:
    rows = await pool.fetch("SELECT position FROM outbox WHERE tenant = $1 AND session_id = $2", tenant, session_id)
    return [row["position"] for row in rows]


async def test_fork_cli_starts_a_session_from_the_source_state_at_the_version(database_url, pool, case):
    tenant, source_id, source_events = case
    done = await agentlog(
        "fork", source_id, "--tenant", tenant, "--at-version", "6", AGENTLOG_DATABASE_URL=database_url
    )
    assert done.returncode == 0, done.stderr
    fork_id = done.stdout.strip()
    store = EventStore(pool)
    (forked,) = await store.read_stream(tenant, fork_id)
    assert (forked.version, forked.type) == (1, "SessionForked")
    assert forked.data["source_session_id"] == source_id and forked.data["source_version"] == 6
    assert fold([forked]).to_snapshot() == expected_fork_state(source_events, 6, fork_id, source_id)
    assert fold([forked]).open_calls == {"refund-1": "payments.refund"}
    assert forked.metadata["actor"].startswith("cli")
    assert await outbox_positions(pool, tenant, fork_id) == [forked.position]
    loaded = await store.load(tenant, fork_id)
    assert (loaded.version, loaded.status) == (1, "open")
    assert SessionState.from_snapshot(loaded.state) == fold([forked])  # the stored shape


async def test_fork_of_a_completed_session_is_open_and_takes_new_commands(pool, case):
    tenant, source_id, source_events = case
    store = EventStore(pool)
    result = await fork_session(store, tenant, source_id, 12, new_session_id=new_session_id("fork"))
    loaded = await store.load(tenant, result.session_id)
    state = SessionState.from_snapshot(loaded.state)
    assert state.status == "open" and fold(source_events).status == "completed"
    events = decide(
        AddMessage(role="user", content="one more thing"), state, now=source_events[-1].recorded_at, new_id=lambda: "x"
    )
    appended = await store.append(
        tenant,
        result.session_id,
        [to_stored(e) for e in events],
        expected_version=1,
        new_state=fold(events, state).to_snapshot(),
    )
    assert appended.version == 2


async def test_fork_cli_json_answers_with_the_given_id_version_and_position(database_url, pool, case):
    tenant, source_id, _ = case
    fork_id = new_session_id("fork")
    done = await agentlog(
        "fork",
        source_id,
        "--tenant",
        tenant,
        "--at-version",
        "3",
        "--new-id",
        fork_id,
        "--json",
        AGENTLOG_DATABASE_URL=database_url,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["session_id"], out["version"], out["source_version"]) == (fork_id, 1, 3)
    assert await outbox_positions(pool, tenant, fork_id) == [out["position"]]


async def test_fork_cli_onto_an_existing_session_exits_1_and_writes_nothing(database_url, pool, case):
    tenant, source_id, _ = case
    done = await agentlog(
        "fork",
        source_id,
        "--tenant",
        tenant,
        "--at-version",
        "2",
        "--new-id",
        source_id,
        AGENTLOG_DATABASE_URL=database_url,
    )
    assert done.returncode == 1 and "already exists" in done.stderr
    assert len(await EventStore(pool).read_stream(tenant, source_id)) == 12


async def test_fork_twice_with_one_id_is_refused_the_second_time(pool, case):
    tenant, source_id, _ = case
    store, fork_id = EventStore(pool), new_session_id("fork")
    await fork_session(store, tenant, source_id, 4, new_session_id=fork_id)
    with pytest.raises(StreamAlreadyExistsError):
        await fork_session(store, tenant, source_id, 5, new_session_id=fork_id)
    assert [e.data["source_version"] for e in await store.read_stream(tenant, fork_id)] == [4]


async def test_fork_at_version_beyond_the_end_writes_nothing(database_url, pool, case):
    tenant, source_id, _ = case
    fork_id = new_session_id("fork")
    done = await agentlog(
        "fork",
        source_id,
        "--tenant",
        tenant,
        "--at-version",
        "13",
        "--new-id",
        fork_id,
        AGENTLOG_DATABASE_URL=database_url,
    )
    assert done.returncode == 1 and "versions 1 to 12" in done.stderr
    assert await EventStore(pool).load(tenant, fork_id) is None
    assert await outbox_positions(pool, tenant, fork_id) == []


async def test_fork_of_another_tenants_session_is_an_unknown_session(pool, case):
    _, source_id, _ = case
    with pytest.raises(SessionNotFoundError):
        await fork_session(EventStore(pool), "other-tenant", source_id, 2)


async def test_fork_with_an_invalid_new_id_is_refused_before_reading(pool, case):
    tenant, source_id, _ = case
    with pytest.raises(ValidationProblemError) as caught:
        await fork_session(EventStore(pool), tenant, source_id, 2, new_session_id="has space")
    assert caught.value.code == "invalid_input" and "new_id" in caught.value.detail
