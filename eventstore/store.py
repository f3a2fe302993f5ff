"""The Postgres event store: append, load a session's snapshot, read a stream, read all.

Invariant: one append is one transaction and one round trip (one statement at an exact version
of an existing stream without an Idempotency-Key, the command path's append; otherwise a call of
`agentlog_append`, migration 0001) that writes the events, one outbox row per event, the stream
row (version, status, state snapshot, last position) and the idempotency row, or nothing at all. What a write is
decided on and the answer recorded under its Idempotency-Key are read in one statement too
(`load_for_write`), so a keyed write costs the same two round trips as any other. Versions of a
stream are contiguous from 1; a stale expected version is a ConcurrencyError carrying the current
version, never a database error. Every read and write is scoped to one tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from eventstore.envelope import EVENT_COLUMNS, RecordedEvent, recorded_from_row
from eventstore.errors import (
    ConcurrencyError,
    IdempotencyKeyTakenError,
    SnapshotIncompatibleError,
    StreamAlreadyExistsError,
)
from eventstore.group_commit import AppendBatcher
from eventstore.outbox_wake import OutboxWake
from eventstore.positions import ANY, NO_STREAM, READ_ALL_SQL, START, ExpectedState, LogCursor, expected_code
from eventstore.state import SessionState, fold

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "AppendResult",
    "EventStore",
    "IdempotencyRecord",
    "LoadedStream",
    "LogCursor",
    "NewEvent",
    "StoredAnswer",
    "WriteBasis",
]

NewEvent = tuple[str, int, dict[str, Any]]
"""(type, schema version, data) as eventstore.registry.to_stored returns it."""

_APPEND_SQL = "SELECT new_version, last_position FROM agentlog_append(" + ", ".join(f"${i}" for i in range(1, 15)) + ")"
# The common append (an existing stream at an exact version, no Idempotency-Key) as one statement
# instead of the plpgsql function: a fifth less of the backend's CPU per append. Nothing is written
# unless the stream is at $3 in the statement's snapshot (`at`); the xid is taken there, before
# the events draw their positions, so a later version of a session still has a higher xid
# (eventstore/positions.py). Two appends at the same version both pass `at`: the unique
# (tenant, session_id, version) of events lets one insert and fails the other's whole statement
# (UniqueViolation, a version conflict). So the UPDATE always finds the row at $3: every version
# change of a stream comes with events at the next version, which would have failed this
# statement's insert first. A stale $3 writes nothing and answers the current version.
_APPEND_AT_SQL = """
WITH at AS (
    SELECT pg_current_xact_id() AS xid
      FROM streams WHERE tenant = $1 AND session_id = $2 AND version = $3
), ins AS (
    INSERT INTO events (tenant, session_id, version, event_id, type, schema_version, data, metadata, transaction_id)
    SELECT $1, $2, $3 + e.ord, e.event_id, e.type, e.sv, d.value, $8, at.xid
      FROM at,
           unnest($4::uuid[], $5::text[], $6::integer[]) WITH ORDINALITY AS e(event_id, type, sv, ord)
      JOIN jsonb_array_elements($7::jsonb) WITH ORDINALITY AS d(value, ord) USING (ord)
     ORDER BY e.ord
    RETURNING position
), box AS (
    INSERT INTO outbox (position, tenant, session_id, traceparent)
    SELECT position, $1, $2, $11 FROM ins ORDER BY position
    RETURNING position
), moved AS (
    UPDATE streams s
       SET version = $3 + cardinality($4::uuid[]), status = $10, state = $9,
           last_position = (SELECT max(position) FROM box), updated_at = now()
     WHERE s.tenant = $1 AND s.session_id = $2 AND s.version = $3 AND EXISTS (SELECT 1 FROM box)
    RETURNING s.version, s.last_position
)
SELECT m.version AS new_version, m.last_position,
       (SELECT version FROM streams WHERE tenant = $1 AND session_id = $2) AS current_version
  FROM (SELECT 1) AS one LEFT JOIN moved AS m ON true
"""
_LOAD_SQL = """
SELECT state, version, status, last_position FROM streams WHERE tenant = $1 AND session_id = $2
"""
# What a command is decided on, and the answer recorded under its Idempotency-Key if any, in one
# statement: the key costs a keyed write no round trip of its own. Always one row (no stream: a
# NULL version; no key or no record: a NULL request_hash).
_LOAD_FOR_WRITE_SQL = """
SELECT s.state, s.version, s.status, s.last_position, k.request_hash, k.status_code, k.response
  FROM (SELECT 1) AS one
  LEFT JOIN streams s ON s.tenant = $1 AND s.session_id = $2
  LEFT JOIN idempotency_keys k ON k.tenant = $1 AND k.key = $3
"""
_READ_STREAM_SQL = f"""
SELECT {EVENT_COLUMNS}
  FROM events
 WHERE tenant = $1 AND session_id = $2 AND version >= $3 AND version <= $4
 ORDER BY version
 LIMIT $5
"""
_FIND_IDEMPOTENT_SQL = """
SELECT request_hash, status_code, response FROM idempotency_keys WHERE tenant = $1 AND key = $2
"""
_VERSION_KEY = "events_tenant_session_id_version_key"  # unique (tenant, session_id, version), migration 0001
_ANY_ATTEMPTS = 20
_CURRENT_VERSION_SQL = "SELECT version FROM streams WHERE tenant = $1 AND session_id = $2"
_MAX_VERSION = 2**62


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a session stands after a write (or a no-op): the one source of the answer body."""

    session_id: str
    version: int
    position: int  # global position of the last event of the stream after this append
    event_ids: tuple[uuid.UUID | str, ...] = ()

    def body(self) -> dict[str, Any]:
        """The answer of the command API (and what an idempotency row stores)."""
        return {
            "session_id": self.session_id,
            "version": self.version,
            "position": self.position,
            "event_ids": [str(e) for e in self.event_ids],
        }

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> AppendResult:
        """Back from a stored body (an idempotency row), so a replay answers the same shape."""
        return cls(body["session_id"], body["version"], body["position"], tuple(body["event_ids"]))


@dataclass(frozen=True, slots=True)
class LoadedStream:
    state: dict[str, Any]  # the decision snapshot (SessionState.to_snapshot())
    version: int
    status: str
    position: int  # global position of the stream's last event


@dataclass(frozen=True, slots=True)
class WriteBasis:
    """What a write is decided on (EventStore.load_for_write): the session's state, version and
    position, and the answer recorded under the request's Idempotency-Key, if there is one."""

    state: SessionState
    version: int
    position: int
    earlier: StoredAnswer | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What an append records under an Idempotency-Key; the body is the AppendResult's.

    `tag` is an opaque integer the caller may record with it (stored in the status_code column
    of 0001); the store gives it no meaning. The command API does not rely on it: the request
    hash covers method and path, so the route that answered first answers a replay alike."""

    key: str
    request_hash: str
    tag: int = 0


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    request_hash: str
    tag: int
    result: AppendResult

    @property
    def body(self) -> dict[str, Any]:
        return self.result.body()


class EventStore:
    """The event log on one asyncpg pool (created with eventstore.db, so jsonb is a dict)."""

    def __init__(
        self, pool: asyncpg.Pool, *, wake: OutboxWake | None = None, batcher: AppendBatcher | None = None
    ) -> None:
        """`wake`: the pool was created with `outbox_wake.DEFERRED` (its transactions send no
        NOTIFY); each append wakes the relay through it once committed. `batcher`: one-statement
        appends go through it, several to a transaction under load (eventstore/group_commit.py);
        `group_commit(pool)` makes one for this store's statement."""
        self._pool = pool
        self._wake = wake
        self._batcher = batcher

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool it reads and writes with (fold snapshots share it: eventstore/fold_snapshots.py)."""
        return self._pool

    async def append(
        self,
        tenant: str,
        session_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | ExpectedState,
        event_ids: Sequence[uuid.UUID] | None = None,
        metadata: dict[str, Any] | None = None,
        new_state: dict[str, Any] | bytes | None = None,
        new_status: str = "open",
        idempotency: IdempotencyRecord | None = None,
        traceparent: str | None = None,
    ) -> AppendResult:
        """Append `events` at the end of the stream if it is at `expected_version`.

        `traceparent` (W3C, the appending request's trace) is stored in the outbox rows, so the
        relay continues that trace (migration 0010); it is not part of the events. `new_state` is
        the stream's decision snapshot after them, a dict or its JSON already encoded (bytes).

        Raises ConcurrencyError (StreamAlreadyExistsError for NO_STREAM) with `current_version`,
        or IdempotencyKeyTakenError when another request recorded `idempotency.key` first.
        """
        ids = list(event_ids) if event_ids is not None else [uuid.uuid4() for _ in events]
        if len(ids) != len(events):
            raise ValueError("event_ids must have one id per event")
        args = (
            tenant,
            session_id,
            expected_code(expected_version),
            ids,
            [e[0] for e in events],
            [e[1] for e in events],
            [e[2] for e in events],
            metadata or {},
            new_state or {},
            new_status,
            idempotency.key if idempotency else None,
            idempotency.request_hash if idempotency else None,
            idempotency.tag if idempotency else None,
            traceparent,
        )
        sql, params = _APPEND_SQL, list(args)
        if type(expected_version) is int and expected_version > 0 and idempotency is None and events:
            # the one-statement append takes the function's parameters but the idempotency ones
            sql, params = _APPEND_AT_SQL, [*args[:10], traceparent]
        for attempt in range(_ANY_ATTEMPTS + 1):
            try:
                if sql is _APPEND_AT_SQL and self._batcher is not None:
                    row = await self._batcher.append(params)
                else:
                    row = await self._pool.fetchrow(sql, *params)
                break
            except asyncpg.RaiseError as exc:
                raise _refusal(exc, session_id) from None
            except asyncpg.UniqueViolationError as exc:
                # A writer of the same version got there first (the one-statement append takes no
                # lock), or a caller reused an event id. ANY asked for the end, wherever it is: it
                # tries again on the new end; anything else reports where the stream is.
                if expected_version is ANY and exc.constraint_name == _VERSION_KEY and attempt < _ANY_ATTEMPTS:
                    continue
                current = await self._pool.fetchval(_CURRENT_VERSION_SQL, tenant, session_id)
                raise ConcurrencyError(
                    f"session {session_id!r} changed concurrently", current_version=current or 0
                ) from None
        if sql is _APPEND_AT_SQL and row["new_version"] is None:  # the stream was not at that version
            current = row["current_version"] or 0
            raise ConcurrencyError(f"session {session_id!r} is at version {current}", current_version=current)
        if self._wake is not None and events:
            self._wake.poke()
        return AppendResult(session_id, row["new_version"], row["last_position"], tuple(ids))

    async def load(self, tenant: str, session_id: str) -> LoadedStream | None:
        """The stream's snapshot in one indexed read; its cost does not grow with the stream."""
        row = await self._pool.fetchrow(_LOAD_SQL, tenant, session_id)
        if row is None:
            return None
        return LoadedStream(row["state"], row["version"], row["status"], row["last_position"])

    async def last_version(self, tenant: str, session_id: str) -> int:
        """The stream's version (0: no stream), without reading its snapshot: for readers that
        only check a version against it (time travel starts at a fold snapshot of its own)."""
        return int(await self._pool.fetchval(_CURRENT_VERSION_SQL, tenant, session_id) or 0)

    async def load_state(self, tenant: str, session_id: str) -> tuple[SessionState, int, int]:
        """(state, version, position) of a session to decide on: a new session at 0 if it has no
        stream; from the snapshot in one read, or, when the snapshot's format is not this code's,
        by folding the log up to the snapshot's version (the log is the truth)."""
        basis = await self.load_for_write(tenant, session_id)
        return basis.state, basis.version, basis.position

    async def load_for_write(self, tenant: str, session_id: str, idempotency_key: str | None = None) -> WriteBasis:
        """`load_state`'s (state, version, position) and, for a keyed write, the answer already
        recorded under `idempotency_key` (None if none), in one round trip."""
        row = await self._pool.fetchrow(_LOAD_FOR_WRITE_SQL, tenant, session_id, idempotency_key)
        earlier = None
        if row["request_hash"] is not None:
            result = AppendResult.from_body(row["response"])
            earlier = StoredAnswer(row["request_hash"], row["status_code"], result)
        if row["version"] is None:
            return WriteBasis(SessionState.new(session_id, tenant), 0, 0, earlier)
        try:
            # The snapshot was decoded for this call alone: the state may keep its sections.
            state = SessionState.from_snapshot(row["state"], share=True)
        except SnapshotIncompatibleError:
            events = await self.read_stream(tenant, session_id, to_version=row["version"])
            state = fold(events, SessionState.new(session_id, tenant))
        return WriteBasis(state, row["version"], row["last_position"], earlier)

    async def read_stream(
        self,
        tenant: str,
        session_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        rows = await self._pool.fetch(
            _READ_STREAM_SQL,
            tenant,
            session_id,
            from_version,
            _MAX_VERSION if to_version is None else to_version,
            limit,
        )
        return [recorded_from_row(row) for row in rows]

    async def read_all(
        self, after: LogCursor | None = None, limit: int = 1000
    ) -> tuple[list[RecordedEvent], LogCursor]:
        """Events of every tenant after the cursor `after` (None: from the start), in
        (transaction id, position) order, held back at the oldest open transaction
        (eventstore/positions.py); returns them and the cursor to pass next time, which never
        skips a late commit. An empty answer returns `after` unchanged."""
        cursor = after or START
        rows = await self._pool.fetch(READ_ALL_SQL, cursor.transaction_id, cursor.position, limit)
        if rows:
            cursor = LogCursor(rows[-1]["transaction_id"], rows[-1]["position"])
        return [recorded_from_row(row) for row in rows], cursor

    async def find_idempotent(self, tenant: str, key: str) -> StoredAnswer | None:
        row = await self._pool.fetchrow(_FIND_IDEMPOTENT_SQL, tenant, key)
        if row is None:
            return None
        return StoredAnswer(row["request_hash"], row["status_code"], AppendResult.from_body(row["response"]))


def group_commit(pool: asyncpg.Pool, *, max_batch: int = 32, lanes: int = 2) -> AppendBatcher:
    """A batcher of the one-statement append for EventStore(batcher=...) (eventstore/group_commit.py)."""
    return AppendBatcher(pool, _APPEND_AT_SQL, max_batch=max_batch, lanes=lanes)


def _refusal(exc: asyncpg.RaiseError, session_id: str) -> Exception:
    reason = (exc.hint or "").removeprefix("agentlog:")
    current = int(exc.detail or 0)
    if reason == "stream_exists":
        return StreamAlreadyExistsError(f"session {session_id!r} already exists", current_version=current)
    if reason == "version_conflict":
        return ConcurrencyError(f"session {session_id!r} is at version {current}", current_version=current)
    if reason == "idempotency_key_taken":
        return IdempotencyKeyTakenError("the idempotency key was recorded by another request")
    unknown: Exception = exc
    return unknown
