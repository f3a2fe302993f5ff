"""Replay at a flat cost (issue 11) on the real store: a replay that does not ask for blame reads
the snapshot's state and the few columns of the events after it, and answers what the fold from
version 1 answers at every version, with or without snapshots; the snapshot writer carries its
last point on instead of reading the chain of knowledge parts back, and writes exactly the rows a
fresh writer writes, falling back to the chain when its row is gone."""

from __future__ import annotations

import pytest

from eventstore import fold_snapshots
from eventstore.errors import ReplaySourceIncompleteError, SessionNotFoundError
from eventstore.fold_snapshots import fold_to, write_due
from eventstore.registry import to_stored
from eventstore.state import fold
from eventstore.store import EventStore
from tests.integration.command_api_fixtures import new_session_id, tenant  # noqa: F401  (fixtures)
from tests.integration.test_fold_snapshots import write
from tests.integration.test_knowledge_snapshots import chained_session

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
