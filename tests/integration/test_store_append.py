"""EventStore.append / load / read_stream on the real Postgres: one transaction writes events,
outbox rows, the stream snapshot and the idempotency row, or nothing."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from eventstore.errors import ConcurrencyError, IdempotencyKeyTakenError, StreamAlreadyExistsError
from eventstore.store import ANY, NO_STREAM, EventStore, IdempotencyRecord
from tests.factories import session_id, tenant_id
from tests.integration.command_api_fixtures import counts


def _ids() -> tuple[str, str]:
    return tenant_id(), session_id()


def _events(n: int, start: int = 0) -> list[tuple[str, int, dict]]:
    return [("MessageAdded", 2, {"role": "user", "content": f"m{start + i}", "agent": None}) for i in range(n)]


@pytest.fixture
def store(pool) -> EventStore:
    return EventStore(pool)


async def test_append_writes_events_outbox_stream_and_idempotency_row(store, pool) -> None:
    tenant, sid = _ids()
    result = await store.append(
        tenant,
        sid,
        _events(3),
        expected_version=NO_STREAM,
        metadata={"actor": "k1"},
        new_state={"snap": 1},
        new_status="open",
        idempotency=IdempotencyRecord("key-1", "h", 201),
    )
    assert result.version == 3 and len(result.event_ids) == 3
    assert await counts(pool, tenant, sid) == (3, 3, 3)
    outbox = await pool.fetch(
        "SELECT o.position FROM outbox o JOIN events e USING (position) "
        "WHERE e.tenant = $1 AND e.session_id = $2 ORDER BY o.id",
        tenant,
        sid,
    )
    events = await store.read_stream(tenant, sid)
    assert [r["position"] for r in outbox] == [e.position for e in events]
    assert [e.version for e in events] == [1, 2, 3]
    assert [e.event_id for e in events] == list(result.event_ids)
    assert events[-1].position == result.position and events[0].metadata == {"actor": "k1"}
    loaded = await store.load(tenant, sid)
    assert (loaded.state, loaded.version, loaded.status, loaded.position) == ({"snap": 1}, 3, "open", result.position)
    stored = await store.find_idempotent(tenant, "key-1")
    assert stored.tag == 201 and stored.body == result.body()


async def test_append_refuses_stale_version_with_current_version_and_writes_nothing(store, pool):
    tenant, sid = _ids()
    await store.append(tenant, sid, _events(2), expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyError) as caught:
        await store.append(tenant, sid, _events(1), expected_version=1)
    assert caught.value.extra["current_version"] == 2
    with pytest.raises(StreamAlreadyExistsError) as caught:
        await store.append(tenant, sid, _events(1), expected_version=NO_STREAM)
    assert caught.value.extra["current_version"] == 2
    with pytest.raises(ConcurrencyError):
        await store.append(tenant, f"{sid}-new", _events(1), expected_version=3)
    assert await counts(pool, tenant, sid) == (2, 2, 2)
    assert await counts(pool, tenant, f"{sid}-new") == (0, 0, 0)


async def test_append_any_appends_at_the_end(store) -> None:
    tenant, sid = _ids()
    await store.append(tenant, sid, _events(2), expected_version=ANY)
    result = await store.append(tenant, sid, _events(1), expected_version=ANY)
    assert result.version == 3


async def test_append_reused_event_id_is_a_concurrency_error_not_a_database_error(store, pool):
    tenant, sid = _ids()
    first = await store.append(tenant, sid, _events(1), expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyError) as caught:
        await store.append(tenant, sid, _events(1), expected_version=1, event_ids=[first.event_ids[0]])
    assert caught.value.extra["current_version"] == 1
    assert await counts(pool, tenant, sid) == (1, 1, 1)


async def test_append_taken_idempotency_key_writes_nothing(store, pool) -> None:
    tenant, sid = _ids()
    await store.append(
        tenant, sid, _events(1), expected_version=NO_STREAM, idempotency=IdempotencyRecord("k", "h1", 201)
    )
    with pytest.raises(IdempotencyKeyTakenError):
        await store.append(tenant, sid, _events(1), expected_version=1, idempotency=IdempotencyRecord("k", "h2", 200))
    assert await counts(pool, tenant, sid) == (1, 1, 1)


async def test_append_concurrent_writers_keep_versions_contiguous(store, pool) -> None:
    tenant, sid = _ids()
    await store.append(tenant, sid, _events(1), expected_version=NO_STREAM)
    outcomes = await asyncio.gather(
        *(store.append(tenant, sid, _events(1, i), expected_version=1) for i in range(10)), return_exceptions=True
    )
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, ConcurrencyError)]
    assert len(winners) == 1 and len(losers) == 9
    assert {loser.extra["current_version"] for loser in losers} == {2}
    await asyncio.gather(*(store.append(tenant, sid, _events(1, i), expected_version=ANY) for i in range(20)))
    versions = [e.version for e in await store.read_stream(tenant, sid)]
    assert versions == list(range(1, 23))
    assert await counts(pool, tenant, sid) == (22, 22, 22)


async def test_load_and_read_stream_are_scoped_to_the_tenant(store) -> None:
    tenant, sid = _ids()
    await store.append(tenant, sid, _events(5), expected_version=NO_STREAM)
    assert await store.load("another-tenant", sid) is None
    assert await store.read_stream("another-tenant", sid) == []
    assert await store.find_idempotent("another-tenant", "k") is None
    assert await store.load(tenant, "unknown") is None


async def test_read_stream_returns_a_version_range(store) -> None:
    tenant, sid = _ids()
    await store.append(tenant, sid, _events(6), expected_version=NO_STREAM)
    window = await store.read_stream(tenant, sid, from_version=2, to_version=5, limit=3)
    assert [e.version for e in window] == [2, 3, 4]
    assert window[0].data["content"] == "m1"


async def test_one_statement_appends_racing_lock_taking_ones_keep_the_log_and_the_stream_in_step(store, pool):
    """Appends at an exact version (one statement, no lock) race appends at ANY and keyed ones (the
    function, under the stream's lock): every ANY append lands, exact ones win or get a version
    conflict, and the log stays what readers rely on: versions contiguous, a later version always
    in a later transaction (read_all's order, eventstore/positions.py), the stream row at the last
    event."""
    tenant, sid = _ids()
    await store.append(tenant, sid, _events(1), expected_version=NO_STREAM)

    async def exact(i: int) -> bool:
        for _ in range(50):
            current = (await store.load(tenant, sid)).version
            try:
                await store.append(tenant, sid, _events(1, 100 + i), expected_version=current, new_state={"by": i})
                return True
            except ConcurrencyError as conflict:
                assert conflict.extra["current_version"] >= current
        return False

    async def keyed(i: int) -> None:
        current = (await store.load(tenant, sid)).version
        record = IdempotencyRecord(f"k-{sid}-{i}", "h")
        with contextlib.suppress(ConcurrencyError):  # lost to another writer: fine, it wrote nothing
            await store.append(tenant, sid, _events(1, 200 + i), expected_version=current, idempotency=record)

    anys = [store.append(tenant, sid, _events(1, i), expected_version=ANY) for i in range(15)]
    outcomes = await asyncio.gather(*anys, *(exact(i) for i in range(15)), *(keyed(i) for i in range(5)))
    landed_exact = sum(1 for o in outcomes[15:30] if o is True)
    rows = await pool.fetch(
        "SELECT version, position, transaction_id::text::bigint AS xid FROM events "
        "WHERE tenant = $1 AND session_id = $2 ORDER BY transaction_id, position",
        tenant,
        sid,
    )
    versions = [r["version"] for r in rows]
    assert versions == sorted(versions) == list(range(1, len(rows) + 1))
    assert len(rows) >= 1 + 15 + landed_exact
    stream = await pool.fetchrow(
        "SELECT version, last_position FROM streams WHERE tenant = $1 AND session_id = $2", tenant, sid
    )
    assert (stream["version"], stream["last_position"]) == (versions[-1], max(r["position"] for r in rows))
    assert await counts(pool, tenant, sid) == (len(rows), len(rows), len(rows))


async def test_a_stale_exact_version_on_a_missing_stream_writes_nothing(store, pool):
    tenant, sid = _ids()
    with pytest.raises(ConcurrencyError) as caught:
        await store.append(tenant, sid, _events(2), expected_version=4, new_state={"x": 1})
    assert caught.value.extra["current_version"] == 0
    assert await counts(pool, tenant, sid) == (0, 0, 0)
    assert await store.load(tenant, sid) is None
