"""Group commit of appends (eventstore/group_commit.py) on the real Postgres: appends that wait for
a lane go together in one transaction, each keeps its own outcome, and the log keeps every
session's order."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from eventstore.errors import ConcurrencyError
from eventstore.group_commit import AppendBatcher, batched_sql
from eventstore.store import _APPEND_AT_SQL, NO_STREAM, EventStore, group_commit
from tests.factories import session_id, tenant_id
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    counts,
    http,
    start,
    tenant,
)


def _event(text: str) -> list[tuple[str, int, dict]]:
    return [("MessageAdded", 2, {"role": "user", "content": text, "agent": None})]


async def _started(store: EventStore, tenant: str, n: int) -> list[str]:
    sessions = [session_id() for _ in range(n)]
    for sid in sessions:
        await store.append(tenant, sid, _event("start"), expected_version=NO_STREAM)
    return sessions


async def _log_order_per_session(pool, tenant: str) -> dict[str, list[int]]:
    """Each session's versions in the order read-all delivers them (transaction id, position)."""
    rows = await pool.fetch(
        "SELECT session_id, version FROM events WHERE tenant = $1 ORDER BY transaction_id, position", tenant
    )
    order: dict[str, list[int]] = {}
    for row in rows:
        order.setdefault(row["session_id"], []).append(row["version"])
    return order


@pytest.fixture
def batcher(pool) -> AppendBatcher:
    return group_commit(pool, max_batch=16, lanes=1)


async def test_concurrent_appends_go_together_and_each_lands_once_in_order(pool, batcher) -> None:
    tenant = tenant_id()
    store = EventStore(pool, batcher=batcher)
    sessions = await _started(EventStore(pool), tenant, 12)

    async def writer(sid: str) -> list[int]:
        versions = []
        for i in range(10):
            result = await store.append(tenant, sid, _event(f"m{i}"), expected_version=1 + i)
            versions.append(result.version)
        return versions

    results = await asyncio.gather(*(writer(sid) for sid in sessions))

    assert results == [list(range(2, 12))] * 12
    assert batcher.appends == 120 and batcher.writes < 60  # most went several to a transaction
    for sid in sessions:
        assert await counts(pool, tenant, sid) == (11, 11, 11)
    assert await _log_order_per_session(pool, tenant) == {sid: list(range(1, 12)) for sid in sessions}


async def test_a_stale_version_in_a_batch_fails_only_its_own_append(pool, batcher) -> None:
    tenant = tenant_id()
    store = EventStore(pool, batcher=batcher)
    a, b, c = await _started(EventStore(pool), tenant, 3)
    # gather starts them in order: the first takes the one lane, the next three wait and go together
    blocker = store.append(tenant, a, _event("first"), expected_version=1)
    twins = [
        store.append(tenant, b, _event("b1"), expected_version=1),
        store.append(tenant, b, _event("b1 again"), expected_version=1),
        store.append(tenant, c, _event("c1"), expected_version=1),
    ]
    outcomes = await asyncio.gather(blocker, *twins, return_exceptions=True)

    assert [getattr(o, "version", None) for o in outcomes] == [2, 2, None, 2]
    assert isinstance(outcomes[2], ConcurrencyError) and outcomes[2].extra["current_version"] == 2
    assert await counts(pool, tenant, b) == (2, 2, 2)
    assert await counts(pool, tenant, c) == (2, 2, 2)


async def test_a_failing_statement_rolls_its_batch_back_and_the_others_are_written_alone(pool, batcher) -> None:
    tenant = tenant_id()
    store = EventStore(pool, batcher=batcher)
    a, b, c = await _started(EventStore(pool), tenant, 3)
    taken = (await store.read_stream(tenant, a))[0].event_id  # an event id already in the log
    blocker = store.append(tenant, a, _event("first"), expected_version=1)
    batch = [
        store.append(tenant, b, _event("b1"), expected_version=1),
        store.append(tenant, c, _event("reuses an id"), expected_version=1, event_ids=[taken]),
        store.append(tenant, a, _event("a2"), expected_version=2),
    ]
    outcomes = await asyncio.gather(blocker, *batch, return_exceptions=True)

    assert outcomes[0].version == 2 and outcomes[1].version == 2 and outcomes[3].version == 3
    assert isinstance(outcomes[2], ConcurrencyError)
    assert await counts(pool, tenant, b) == (2, 2, 2)
    assert await counts(pool, tenant, c) == (1, 1, 1)
    assert await counts(pool, tenant, a) == (3, 3, 3)


async def test_a_queued_append_whose_caller_gives_up_is_not_written(pool, batcher) -> None:
    tenant = tenant_id()
    store = EventStore(pool, batcher=batcher)
    a, b, c = await _started(EventStore(pool), tenant, 3)
    blocker = asyncio.ensure_future(store.append(tenant, a, _event("first"), expected_version=1))
    dropped = asyncio.ensure_future(store.append(tenant, b, _event("dropped"), expected_version=1))
    kept = asyncio.ensure_future(store.append(tenant, c, _event("kept"), expected_version=1))
    # runs after the three tasks' first steps: the blocker has the lane, the others wait for it
    asyncio.get_running_loop().call_soon(dropped.cancel)
    outcomes = await asyncio.gather(blocker, dropped, kept, return_exceptions=True)

    assert outcomes[0].version == 2 and outcomes[2].version == 2
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert await counts(pool, tenant, b) == (1, 1, 1)


async def test_a_batched_statement_holds_back_an_append_after_a_younger_transaction(pool) -> None:
    """The xid guard: a batch's transaction took its xid before another transaction wrote the
    session's version it appends after; written anyway, the new version would sort before it."""
    tenant = tenant_id()
    store = EventStore(pool)
    (sid,) = await _started(store, tenant, 1)
    batched = batched_sql(_APPEND_AT_SQL)
    async with pool.acquire() as older, older.transaction():
        await older.fetchval("SELECT pg_current_xact_id()")  # the batch's first statement
        await store.append(tenant, sid, _event("younger"), expected_version=1)  # a later xid
        args = [tenant, sid, 2, [uuid.uuid4()], ["MessageAdded"], [2]]
        args += [[{"role": "user", "content": "held back", "agent": None}], {}, {}, "open", None]
        row = await older.fetchrow(batched, *args)
        assert row["new_version"] is None and row["current_version"] == 2
    assert await _log_order_per_session(pool, tenant) == {sid: [1, 2]}


async def test_the_batcher_writes_a_held_back_append_alone(pool) -> None:
    """End to end through the batcher: with the guard forced to hold every batched statement back
    (a guard that never passes), each append still lands, written alone."""
    tenant = tenant_id()
    sessions = await _started(EventStore(pool), tenant, 4)
    batcher = group_commit(pool, max_batch=16, lanes=1)
    batcher._batched = batcher._batched.replace("e.transaction_id > pg_current_xact_id()", "true")
    store = EventStore(pool, batcher=batcher)
    results = await asyncio.gather(*(store.append(tenant, s, _event("x"), expected_version=1) for s in sessions))
    assert [r.version for r in results] == [2, 2, 2, 2]
    assert batcher.writes == 5  # the first alone, the other three as a batch, held back, then each alone
    for sid in sessions:
        assert await counts(pool, tenant, sid) == (2, 2, 2)


def test_the_guard_needs_the_one_statement_append() -> None:
    with pytest.raises(ValueError):
        batched_sql("SELECT 1")
    assert "pg_current_xact_id()" in batched_sql(_APPEND_AT_SQL).split("), ins AS")[0]


def _group_commit_counters(text: str) -> tuple[float, float]:
    found = dict(re.findall(r"^agentlog_commands_group_commit_(appends|transactions)_total (\S+)$", text, re.M))
    return float(found["appends"]), float(found["transactions"])


async def test_the_command_api_groups_a_burst_and_answers_each_command(http, tenant, pool) -> None:
    sessions = [await start(http, tenant) for _ in range(8)]
    before = _group_commit_counters((await http.get("/metrics")).text)

    async def say(sid: str, i: int) -> httpx.Response:
        return await http.post(
            f"/v1/sessions/{sid}/messages", headers=tenant.writer, json={"role": "user", "content": f"m{i}"}
        )

    answers = []
    for i in range(5):  # rounds of one command per session, all at once
        answers += await asyncio.gather(*(say(sid, i) for sid in sessions))

    assert [a.status_code for a in answers] == [200] * 40, [a.text for a in answers if a.status_code != 200]
    assert sorted(a.json()["version"] for a in answers) == sorted(v for v in range(2, 7) for _ in sessions)
    for sid in sessions:
        assert await counts(pool, tenant.name, sid) == (6, 6, 6)
    appends, transactions = _group_commit_counters((await http.get("/metrics")).text)
    assert appends - before[0] == 40
    assert transactions - before[1] < 40  # some went together
