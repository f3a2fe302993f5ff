"""The projector's fold snapshot writer folds from its own copies of the log's events (issue 10):
records as the projector decodes them from Kafka, duplicates and gaps included, give exactly the
snapshot rows that reading the events back from the store gives; copies that hold a snapshot's
span are what it is folded from (the store is not read back for it); a gap sends that span to the
store; what the writer keeps is trimmed to the events after the last snapshot written."""

from __future__ import annotations

import dataclasses

import orjson

from eventstore.envelope import RecordedEvent, from_envelope
from eventstore.fold_snapshots import covering, write_due
from eventstore.store import EventStore
from projections.projector.snapshots import SnapshotWriter
from tests.integration.command_api_fixtures import new_session_id, tenant  # noqa: F401  (fixtures)
from tests.integration.test_fold_snapshots import long_session, write
from tests.waiting import wait_until

EVERY = 5
ROWS = "SELECT version, state, blame, knowledge FROM fold_snapshots_v1 WHERE tenant = $1 AND session_id = $2"


def as_from_kafka(events: list[RecordedEvent]) -> list[RecordedEvent]:
    """The events as the projector has them: each record value decoded (projections/projector/runner.py)."""
    return [from_envelope(e.kafka_value()) for e in events]


async def rows(pool, tenant: str, session_id: str) -> list[tuple]:
    found = await pool.fetch(ROWS + " ORDER BY version", tenant, session_id)
    return [
        (r["version"], orjson.dumps(r["state"]), orjson.dumps(r["blame"]), orjson.dumps(r["knowledge"])) for r in found
    ]


async def from_the_store(pool, tenant: str, session_id: str, upto: int) -> list[tuple]:
    """The rows a writer that reads every event back from the store writes (a new EventStore:
    no point kept from another writer)."""
    await pool.execute("DELETE FROM fold_snapshots_v1 WHERE tenant = $1 AND session_id = $2", tenant, session_id)
    await write_due(EventStore(pool), tenant, session_id, upto, EVERY)
    return await rows(pool, tenant, session_id)


async def written_by_the_writer(pool, tenant: str, session_id: str, batches: list[list[RecordedEvent]]):
    writer = SnapshotWriter(pool, EVERY)
    for batch in batches:
        writer.after_batch(batch)
    expected = max(r.version for batch in batches for r in batch) // EVERY
    await wait_until(lambda: writer.written == expected, timeout=30, message="the snapshots written")
    await wait_until(lambda: writer.pending == 0, timeout=30, message="the writer done")
    return writer, await rows(pool, tenant, session_id)


async def test_copies_with_duplicates_and_a_gap_give_the_rows_the_store_gives(pool, tenant):
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, long_session(6, "copies"))  # 31 events
    copies = as_from_kafka(events)
    assert copies == events  # the round trip through the record value changes nothing
    # batches of 4 as Kafka delivers them, each with its first record again (a redelivery), and
    # version 12 missing (a record the guard fills from the store, not among the batch's records)
    batches = [[*copies[i : i + 4], copies[i]] for i in range(0, len(copies), 4)]
    batches = [[r for r in batch if r.version != 12] for batch in batches]

    writer, got = await written_by_the_writer(pool, tenant.name, sid, batches)

    assert [row[0] for row in got] == [5, 10, 15, 20, 25, 30]
    assert got == await from_the_store(pool, tenant.name, sid, len(events))
    assert writer.recent == 1  # version 31: the events after the last snapshot written


async def test_copies_that_hold_a_snapshots_span_are_what_it_is_folded_from(pool, tenant):
    store, sid = EventStore(pool), new_session_id()
    events = await write(store, tenant.name, sid, long_session(4, "store"))  # 21 events
    # copies that differ from the store from version 6 on: only a fold of the copies shows it
    copies = [
        dataclasses.replace(r, data={**r.data, "content": "from the copies"})
        if r.type == "MessageAdded" and r.version > EVERY
        else r
        for r in as_from_kafka(events)
    ]

    _, got = await written_by_the_writer(pool, tenant.name, sid, [copies])

    texts = {version: b"".join(parts) for version, *parts in got}
    assert b"from the copies" not in texts[5]  # the first snapshot: no point kept, read from the store
    assert all(b"from the copies" in texts[v] for v in (10, 15, 20))  # carried on with the copies
    # a gap in the span of 6..10 sends that span to the store
    await pool.execute("DELETE FROM fold_snapshots_v1 WHERE tenant = $1 AND session_id = $2", tenant.name, sid)
    _, got = await written_by_the_writer(pool, tenant.name, sid, [[r for r in copies if r.version != 8]])
    texts = {version: b"".join(parts) for version, *parts in got}
    assert b"from the copies" not in texts[10]
    assert b"from the copies" in texts[15]


def test_covering_takes_exactly_the_span_or_nothing():
    def ev(v: int) -> RecordedEvent:
        return RecordedEvent(
            position=v, session_id="s", version=v, event_id=None, type="T", schema_version=1, data={},
            tenant="t", recorded_at=None,
        )  # fmt: skip

    recent = [ev(v) for v in range(4, 11)]
    assert [r.version for r in covering(recent, 6, 9)] == [6, 7, 8, 9]
    assert [r.version for r in covering(recent, 4, 10)] == list(range(4, 11))
    assert covering(recent, 3, 6) is None  # starts before the copies
    assert covering(recent, 9, 11) is None  # ends after them
    assert covering([], 1, 1) is None
