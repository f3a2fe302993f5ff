"""Snapshots of the fold every K events: where time travel to version N starts, so its cost is
that of at most K events, not of N.

Invariant: a row (tenant, session_id, format, version) of fold_snapshots_v1 holds exactly what
folding the session's lineage (eventstore/lineage.py) up to `version` gives: the decision state
(SessionState.to_snapshot) and the blame tree (eventstore/blame.py BlameFold), and the part of what
the agents knew (eventstore/knowledge.py: transcript and context index) that changed since the
row before it; the parts of a chain of rows from the first add up to the whole. A reader uses only
rows of this code's FOLD_FORMAT, so a change of the fold (which bumps it) leaves older rows
unused, never wrong. Rows are written off the command path (by the projector:
projections/projector/snapshots.py) and may be missing or late: a reader then starts from the
nearest earlier row of its format (for knowledge: the end of the unbroken chain of parts), or
from version 1; the answer is the same, only slower. The
log stays the truth: any row can be dropped and written again from it. Every statement names the
tenant.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from eventstore.blame import BLAME_FORMAT, BlameFold
from eventstore.diff import state_of
from eventstore.envelope import EVENT_COLUMNS, RecordedEvent, recorded_from_row
from eventstore.errors import ReplaySourceIncompleteError, SessionNotFoundError
from eventstore.knowledge import KNOWLEDGE_FORMAT, Knowledge, chain
from eventstore.large_reads import gc_paused
from eventstore.lineage import Reader, read_lineage
from eventstore.registry import from_stored
from eventstore.replay import ordered, resolve_checkpoint, time_before_session
from eventstore.state import SNAPSHOT_FORMAT, SessionState, fold
from eventstore.store import EventStore

TABLE = "fold_snapshots_v1"
# Bump when evolve or the blame fold give another result for the same events (a handler added or
# changed) while the shapes stay the same; the shapes have their own numbers.
# 2: rows carry the knowledge part (migration 0012); rows of revision 1 have none and are unused.
FOLD_REVISION = 2
FOLD_FORMAT = f"state{SNAPSHOT_FORMAT}.blame{BLAME_FORMAT}.knowledge{KNOWLEDGE_FORMAT}.fold{FOLD_REVISION}"

_NEAREST_SQL = f"""
SELECT version, state, blame FROM {TABLE}
 WHERE tenant = $1 AND session_id = $2 AND format = $3 AND version <= $4
 ORDER BY version DESC
 LIMIT 1
"""
# a replay without blame reads the state alone (the blame tree is as large as the sections)
_NEAREST_STATE_SQL = f"""
SELECT version, state FROM {TABLE}
 WHERE tenant = $1 AND session_id = $2 AND format = $3 AND version <= $4
 ORDER BY version DESC
 LIMIT 1
"""
_AT_SQL = f"""
SELECT version, state, blame FROM {TABLE}
 WHERE tenant = $1 AND session_id = $2 AND format = $3 AND version = $4
"""
_PARTS_SQL = f"""
SELECT version, knowledge FROM {TABLE}
 WHERE tenant = $1 AND session_id = $2 AND format = $3 AND version <= $4
 ORDER BY version
"""
# a rewrite (after a broken chain of parts) replaces what is there: the log decides the content
_INSERT_SQL = f"""
INSERT INTO {TABLE} (tenant, session_id, format, version, state, blame, knowledge)
VALUES ($1, $2, $3, $4, $5::json, $6::json, $7::json)
ON CONFLICT (tenant, session_id, format, version)
DO UPDATE SET state = EXCLUDED.state, blame = EXCLUDED.blame, knowledge = EXCLUDED.knowledge
"""
# what the decision fold reads of an event: neither its id, time, position nor metadata
_FOLD_EVENTS_SQL = """
SELECT version, type, schema_version, data FROM events
 WHERE tenant = $1 AND session_id = $2 AND version >= $3 AND version <= $4
 ORDER BY version
"""
_LATEST_SQL = f"""
SELECT max(version) FROM {TABLE} WHERE tenant = $1 AND session_id = $2 AND format = $3 AND version <= $4
"""
_VERSION_AT_SQL = """
SELECT version FROM events
 WHERE tenant = $1 AND session_id = $2 AND recorded_at <= $3
 ORDER BY recorded_at DESC, version DESC
 LIMIT 1
"""
_CHECKPOINTS_SQL = f"""
SELECT {EVENT_COLUMNS} FROM events
 WHERE tenant = $1 AND session_id = $2 AND type = 'CheckpointSaved'
 ORDER BY version
"""
_FIRST_RECORDED_SQL = """
SELECT recorded_at FROM events WHERE tenant = $1 AND session_id = $2 ORDER BY version LIMIT 1
"""


@dataclass(slots=True)
class FoldPoint:
    """The fold of a session's lineage up to its own `version`: the state, its blame and, when
    asked for, what the agents knew (whose next part starts after version `part_after`).

    Without `blamed` (a replay that does not ask for it) the blame is left empty and is not
    carried on. The blame and the knowledge are changed in place by `after`: a point is carried
    on, not kept."""

    version: int
    state: SessionState
    blame: BlameFold
    knowledge: Knowledge | None = None
    part_after: int = 0
    blamed: bool = True

    def after(self, events: Sequence[RecordedEvent]) -> FoldPoint:
        """This point carried on with the session's own events after it (in version order)."""
        version = events[-1].version if events else self.version
        knowledge = self.knowledge.add_all(events) if self.knowledge is not None else None
        blame = self.blame.apply_all(events, first=False) if self.blamed else self.blame
        state = fold(events, self.state, owned=True)
        return FoldPoint(version, state, blame, knowledge, self.part_after, self.blamed)

    def row(self, tenant: str, session_id: str, fold_format: str = FOLD_FORMAT) -> tuple[Any, ...]:
        """The row of this point; its knowledge part is what changed since `part_after`, and the
        next part starts after this version."""
        assert self.blamed, "a snapshot row carries the blame"
        part = self.knowledge.part(self.part_after) if self.knowledge is not None else None
        self.part_after = self.version
        snapshot = self.state.to_snapshot(compact=True)
        return (tenant, session_id, fold_format, self.version, snapshot, self.blame.to_json(), part)


def store_reader(store: EventStore, tenant: str) -> Reader:
    """A lineage Reader on the event store, for one tenant."""

    async def read(session_id: str, upto: int | None) -> list[RecordedEvent]:
        return ordered(await store.read_stream(tenant, session_id, to_version=upto), session_id=session_id)

    return read


async def nearest(
    pool: asyncpg.Pool,
    tenant: str,
    session_id: str,
    version: int,
    *,
    with_knowledge: bool = False,
    with_blame: bool = True,
) -> FoldPoint | None:
    """The snapshot of this fold's format at or before `version`, if any was written; with
    `with_knowledge`, the last one of the unbroken chain of parts from the first, with the
    knowledge they add up to; without `with_blame` (and knowledge), its state alone."""
    if not with_knowledge:
        if not with_blame:
            row = await pool.fetchrow(_NEAREST_STATE_SQL, tenant, session_id, FOLD_FORMAT, version)
            return None if row is None else FoldPoint(row["version"], _state(row), BlameFold(), blamed=False)
        row = await pool.fetchrow(_NEAREST_SQL, tenant, session_id, FOLD_FORMAT, version)
        return None if row is None else _point(row)
    rows = await pool.fetch(_PARTS_SQL, tenant, session_id, FOLD_FORMAT, version)
    parts = chain([(row["version"], row["knowledge"]) for row in rows])
    if not parts:
        return None
    last = rows[len(parts) - 1]["version"]
    row = await pool.fetchrow(_AT_SQL, tenant, session_id, FOLD_FORMAT, last)
    if row is None:  # dropped between the two reads
        return None
    point = _point(row)
    point.knowledge, point.part_after = Knowledge.from_parts(parts), last
    return point


def _state(row: asyncpg.Record) -> SessionState:
    # the row was decoded for this reader alone: the state may keep its sections
    return SessionState.from_snapshot(row["state"], share=True)


def _point(row: asyncpg.Record) -> FoldPoint:
    return FoldPoint(row["version"], _state(row), BlameFold.from_json(row["blame"]))


async def fold_to(
    store: EventStore,
    tenant: str,
    session_id: str,
    version: int,
    *,
    with_blame: bool = True,
    with_knowledge: bool = False,
) -> FoldPoint:
    """The fold of the session's lineage up to `version` (which the session has), from the
    nearest usable snapshot, or from version 1 when there is none. Without `with_blame` (a
    replay) the point's blame is left empty and only the session's own events are read, as
    little of each as the decision fold needs (unless `with_knowledge`, which needs the lineage:
    then the point has both).

    The cyclic garbage collector is paused meanwhile (eventstore/large_reads.py): a snapshot's
    state alone is thousands of fresh lists and dicts, and the young collections they start were
    a twentieth of a lean replay's time in the benchmark; nothing decoded or folded here forms
    reference cycles."""
    with gc_paused():
        lean = not (with_blame or with_knowledge)
        point = await nearest(
            store.pool, tenant, session_id, version, with_knowledge=with_knowledge, with_blame=with_blame
        )
        if point is not None:
            return await advance(store, tenant, session_id, point, version)
        if lean:
            start = FoldPoint(0, SessionState.new(session_id, tenant), BlameFold(), blamed=False)
            return await advance(store, tenant, session_id, start, version)
        lineage = await read_lineage(store_reader(store, tenant), session_id, version)
        knowledge = Knowledge.of(lineage) if with_knowledge else None
        return FoldPoint(version, state_of(lineage), BlameFold().apply_all(lineage), knowledge)


async def advance(
    store: EventStore,
    tenant: str,
    session_id: str,
    point: FoldPoint,
    version: int,
    *,
    recent: Sequence[RecordedEvent] = (),
) -> FoldPoint:
    """`point` carried on to `version` with the session's own events after it: those of `recent`
    (the session's latest events, contiguous in version order, as the log holds them: the
    projector's copies from Kafka) when they hold every one of them, else read from the store."""
    if point.version == version:
        return point
    if not point.blamed and point.knowledge is None:
        return await _advance_state(store.pool, tenant, session_id, point, version)
    events = covering(recent, point.version + 1, version)
    if events is None:
        events = await store.read_stream(tenant, session_id, from_version=point.version + 1, to_version=version)
    if len(events) != version - point.version or (events and events[0].version != point.version + 1):
        raise _incomplete(session_id, point.version, version)
    return point.after(events)


async def _advance_state(pool: asyncpg.Pool, tenant: str, session_id: str, point: FoldPoint, version: int) -> FoldPoint:
    """The decision state alone carried on: the fold of the decoded events, read with only the
    columns it needs (versions checked here: evolve numbers decoded events one after another)."""
    rows = await pool.fetch(_FOLD_EVENTS_SQL, tenant, session_id, point.version + 1, version)
    if not rows and point.version == 0:
        raise SessionNotFoundError(f"session {session_id!r} not found", session_id=session_id)
    if len(rows) != version - point.version or rows[0]["version"] != point.version + 1:
        raise _incomplete(session_id, point.version, version)
    events = [from_stored(row["type"], row["schema_version"], row["data"]) for row in rows]
    state = fold(events, point.state, owned=True)
    return FoldPoint(version, state, point.blame, None, point.part_after, blamed=False)


def covering(recent: Sequence[RecordedEvent], first: int, last: int) -> list[RecordedEvent] | None:
    """Versions `first`..`last` of `recent` (contiguous, in version order), or None when it does
    not hold every one of them."""
    if not recent or recent[0].version > first or recent[-1].version < last:
        return None
    start = first - recent[0].version
    part = list(recent[start : start + last - first + 1])
    if len(part) != last - first + 1 or part[0].version != first or part[-1].version != last:
        return None
    return part


def _incomplete(session_id: str, after: int, version: int) -> ReplaySourceIncompleteError:
    return ReplaySourceIncompleteError(
        f"session {session_id!r}: versions {after + 1} to {version} are not all in the store",
        session_id=session_id,
        version=after + 1,
    )


async def version_at(pool: asyncpg.Pool, tenant: str, session_id: str, moment: datetime) -> int:
    """The version of the last event recorded at or before `moment` (`agentlog replay --at`),
    by the recorded_at index; the same error as a replay for a time before the session."""
    version = await pool.fetchval(_VERSION_AT_SQL, tenant, session_id, moment)
    if version is not None:
        return int(version)
    first = await pool.fetchval(_FIRST_RECORDED_SQL, tenant, session_id)
    if first is None:
        raise SessionNotFoundError(f"session {session_id!r} not found", session_id=session_id)
    raise time_before_session(moment, first)


async def checkpoint_at(pool: asyncpg.Pool, tenant: str, session_id: str, name: str) -> int:
    """The version of the session's last checkpoint named `name` (`agentlog replay
    --to-checkpoint`), from its CheckpointSaved events alone; the same error as a replay that
    folds from version 1 when there is none."""
    rows = await pool.fetch(_CHECKPOINTS_SQL, tenant, session_id)
    return resolve_checkpoint([recorded_from_row(row) for row in rows], name)


async def write_due(
    store: EventStore,
    tenant: str,
    session_id: str,
    upto: int,
    every: int,
    *,
    recent: Sequence[RecordedEvent] = (),
) -> int:
    """Write the snapshots at multiples of `every` up to version `upto` that come after the
    latest one already written (all of them for a session that has none); returns how many.
    `recent`: the session's latest events as the caller has them (see `advance`), which spare
    reading them back when they cover what a kept point is carried on with.

    Incremental: the point this writer (`store`) last wrote for the session is kept, with what the
    agents knew, for the next call, which carries it on while that row is still the session's
    latest, instead of reading the whole chain of parts back (a cost that grows with the session,
    paid every K events). Otherwise (another writer, a row dropped, an evicted session) it starts
    from the end of the unbroken chain, as readers do."""
    if every <= 0 or upto < every:
        return 0
    last_due = upto // every * every
    kept = _kept_points(store)
    point = kept.pop((tenant, session_id), None)  # taken out while it changes: a failure drops it
    if point is not None:
        latest = await store.pool.fetchval(_LATEST_SQL, tenant, session_id, FOLD_FORMAT, last_due)
        point = point if latest == point.version else None
    if point is None:
        point = await nearest(store.pool, tenant, session_id, last_due, with_knowledge=True)
    start = point.version if point else 0
    written = 0
    for target in range((start // every + 1) * every, last_due + 1, every):
        if point is None:
            point = await fold_to(store, tenant, session_id, target, with_knowledge=True)
        else:
            point = await advance(store, tenant, session_id, point, target, recent=recent)
        await store.pool.execute(_INSERT_SQL, *point.row(tenant, session_id))
        written += 1
    if point is not None and point.version == point.part_after:  # its last part is stored
        kept[(tenant, session_id)] = point
        while sum(p.version for p in kept.values()) > KEPT_EVENTS and len(kept) > 1:
            kept.popitem(last=False)
    return written


# The points a writer last wrote, per writer (the projector's one EventStore) and session, the
# most recently written last. Each holds what its agents knew, about 1 KiB per event of the
# session in the benchmark's shape, so they are bounded by the events they stand for: the least
# recently written go first, and the one just written is always kept (the writer held as much
# to write it). Short sessions, whose chain is cheap to read back, come and go.
KEPT_EVENTS = 100_000
_KEPT: weakref.WeakKeyDictionary[EventStore, OrderedDict[tuple[str, str], FoldPoint]] = weakref.WeakKeyDictionary()


def _kept_points(store: EventStore) -> OrderedDict[tuple[str, str], FoldPoint]:
    kept = _KEPT.get(store)
    if kept is None:
        kept = _KEPT[store] = OrderedDict()
    return kept


async def write_point(pool: asyncpg.Pool, tenant: str, session_id: str, point: FoldPoint, fold_format: str) -> None:
    """Store `point` under `fold_format` (tests store an old format's row this way)."""
    await pool.execute(_INSERT_SQL, *point.row(tenant, session_id, fold_format))
