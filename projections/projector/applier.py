"""Applies a batch of recorded events to every projection inside the caller's transaction.

Invariants:
- Exactly once per (projector, session, version): a per-session version guard
  (projection_session_versions) skips duplicates (version <= applied), and a gap (a version
  jumps) is filled from the events table before the later event is applied.
- Fast path: all writes of the batch run projection by projection, consecutive equal statements as
  one executemany, under one savepoint. If anything fails, that savepoint is rolled back and the
  batch is applied again event by event (careful path), each (projection, event) under its own savepoint, retried
  up to `max_retries` times and then parked in projection_parked_events; the session is flagged
  has_parked_events. Later events of that session are still applied (a parked event must not stop
  the session's other read models or make its timeline stall); handlers are written so a parked
  event retried later does not roll back what later events set.
- Without the savepoint (`savepoint=False`, the projector's batches: two round trips fewer per
  transaction), a failing fast path raises FastPathFailedError instead: the caller rolls its whole
  transaction back and applies the batch again with `careful=True`, so the result is the same.
- Infrastructure failures (connection lost, server shutting down) are never parked: they abort
  the batch, whose transaction the caller rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from eventstore.db import is_infrastructure_error
from eventstore.envelope import RecordedEvent
from projections.projector.gaps import read_versions_between
from projections.read_models import summaries
from projections.read_models.projection import BULK, MAX_ROUNDS, Bulk, Projection, Write, decode_or_error
from projections.settings import NOTIFY_CHANNEL

log = logging.getLogger(__name__)
Key = tuple[str, str]

READ_VERSIONS = """
SELECT v.tenant, v.session_id, v.version FROM projection_session_versions v
JOIN unnest($2::text[], $3::text[]) AS k(tenant, session_id) USING (tenant, session_id)
WHERE v.projector = $1
"""
WRITE_VERSIONS = """
INSERT INTO projection_session_versions AS v (projector, tenant, session_id, version, position)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[])
ON CONFLICT (projector, tenant, session_id) DO UPDATE SET
    version = GREATEST(v.version, EXCLUDED.version),
    position = GREATEST(v.position, EXCLUDED.position), updated_at = now()
"""
# The versions write and the read-your-writes NOTIFY in one round trip (delivered at commit).
WRITE_VERSIONS_AND_NOTIFY = f"""
WITH written AS ({WRITE_VERSIONS.strip()})
SELECT pg_notify($6, $7)
"""
PARK = """
INSERT INTO projection_parked_events AS p (projector, projection, tenant, session_id, version,
    position, event, error, attempts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (projector, projection, tenant, session_id, version) DO UPDATE SET
    error = EXCLUDED.error, attempts = p.attempts + EXCLUDED.attempts, parked_at = now()
"""


class FastPathFailedError(Exception):
    """The fast path failed on an event (not the infrastructure) with no savepoint to roll back to:
    the transaction is aborted; roll it back and apply the batch again with `careful=True`."""


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    gap_filled: int = 0
    parked: list[tuple[str, Key, int]] = field(default_factory=list)
    max_position: int = 0


class BatchApplier:
    def __init__(
        self, projections: Sequence[Projection], projector: str, max_retries: int = 3, *, notify: bool = True
    ) -> None:
        self._projections = tuple(projections)
        self._projector = projector
        self._max_retries = max_retries
        self._notify = notify  # a rebuild's shadow batches wake no read-your-writes waiters

    async def apply(
        self,
        conn: asyncpg.Connection,
        records: Sequence[RecordedEvent],
        *,
        savepoint: bool = True,
        careful: bool = False,
    ) -> BatchResult:
        """Apply `records` (Kafka order) in the caller's open transaction; notify at its commit.

        `savepoint=False`: no savepoint around the fast path; if it fails, FastPathFailedError
        (roll the transaction back, then apply again with `careful=True`: event by event)."""
        result = BatchResult()
        todo, versions = await self._guard(conn, records, result)
        if todo:
            decoded = [decode_or_error(r) for r in todo]
            if careful:
                await self._careful(conn, todo, decoded, result)
            elif not savepoint:
                try:
                    await self._fast(conn, todo, decoded)
                except Exception as exc:
                    if is_infrastructure_error(exc):
                        raise
                    raise FastPathFailedError(f"batch of {len(todo)} events failed: {exc!r}") from exc
            else:
                try:
                    async with conn.transaction():
                        await self._fast(conn, todo, decoded)
                except Exception as exc:
                    if is_infrastructure_error(exc):
                        raise
                    log.warning("batch of %d events failed (%s); applying event by event", len(todo), exc)
                    await self._careful(conn, todo, decoded, result)
            result.applied = len(todo)
            result.max_position = max(r.position for r in todo)
            await self._write_versions(conn, versions, result.max_position if self._notify else None)
        return result

    async def _guard(
        self, conn: asyncpg.Connection, records: Sequence[RecordedEvent], result: BatchResult
    ) -> tuple[list[RecordedEvent], dict[Key, RecordedEvent]]:
        keys = list(dict.fromkeys((r.tenant, r.session_id) for r in records))
        rows = await conn.fetch(READ_VERSIONS, self._projector, [k[0] for k in keys], [k[1] for k in keys])
        applied: dict[Key, int] = {(row["tenant"], row["session_id"]): row["version"] for row in rows}
        todo: list[RecordedEvent] = []
        last: dict[Key, RecordedEvent] = {}
        for record in records:
            key = (record.tenant, record.session_id)
            seen = applied.get(key, 0)
            if record.version <= seen:
                result.duplicates += 1
                continue
            if record.version > seen + 1:
                missing = await read_versions_between(conn, *key, seen, record.version)
                if len(missing) != record.version - seen - 1:
                    log.error("gap in %s before version %d not fillable from the store", key, record.version)
                result.gap_filled += len(missing)
                todo.extend(missing)
            todo.append(record)
            applied[key] = record.version
            last[key] = record
        return todo, last

    async def _fast(self, conn: asyncpg.Connection, todo: list[RecordedEvent], decoded: list) -> None:
        for projection in self._projections:
            writes = [w for r, e in zip(todo, decoded, strict=False) for w in projection.writes_for(r, e)]
            await execute_grouped(conn, writes)

    async def _careful(
        self, conn: asyncpg.Connection, todo: list[RecordedEvent], decoded: list, result: BatchResult
    ) -> None:
        for projection in self._projections:
            for record, event in zip(todo, decoded, strict=False):
                if not projection.handles(record.type):
                    continue
                error = await self._attempt(conn, projection, record, event)
                if error is not None:
                    await self._park(conn, projection, record, error)
                    result.parked.append((projection.name, (record.tenant, record.session_id), record.version))

    async def _attempt(self, conn, projection: Projection, record: RecordedEvent, event) -> Exception | None:
        error: Exception | None = None
        for _ in range(self._max_retries):
            try:
                async with conn.transaction():
                    for write in projection.writes_for(record, event):
                        await conn.execute(write.sql, *write.args)
                return None
            except Exception as exc:
                if is_infrastructure_error(exc):
                    raise
                error = exc
        return error

    async def _park(self, conn, projection: Projection, record: RecordedEvent, error: Exception) -> None:
        log.error(
            "parked %s v%d of %s/%s in %s: %r",
            record.type,
            record.version,
            record.tenant,
            record.session_id,
            projection.name,
            error,
        )
        await conn.execute(
            PARK,
            self._projector,
            projection.name,
            record.tenant,
            record.session_id,
            record.version,
            record.position,
            record.envelope(),
            describe(error),
            self._max_retries,
        )
        mark = summaries.mark_parked(record.tenant, record.session_id, datetime.now(UTC))
        await conn.execute(mark.sql, *mark.args)

    async def _write_versions(
        self, conn: asyncpg.Connection, last: dict[Key, RecordedEvent], notify_position: int | None
    ) -> None:
        """Move the guard to each session's last version; with a position, also NOTIFY it."""
        items = list(last.values())
        args = [
            self._projector,
            [r.tenant for r in items],
            [r.session_id for r in items],
            [r.version for r in items],
            [r.position for r in items],
        ]
        if notify_position is None:
            await conn.execute(WRITE_VERSIONS, *args)
        else:
            await conn.execute(WRITE_VERSIONS_AND_NOTIFY, *args, NOTIFY_CHANNEL, str(notify_position))


def describe(error: Exception) -> str:
    """The error as stored with a parked event: type, message and, for typed errors, their details."""
    extra = getattr(error, "extra", None)
    text = f"{type(error).__name__}: {error}" + (f" {extra}" if extra else "")
    return text[:4000]


async def execute_grouped(conn: asyncpg.Connection, writes: Sequence[Write]) -> None:
    """Run writes in order; a run of the same statement goes as one executemany (one round trip),
    or as statements over unnest() of its columns when the statement has a BULK form."""
    start = 0
    while start < len(writes):
        end = start + 1
        while end < len(writes) and writes[end].sql == writes[start].sql:
            end += 1
        run = writes[start:end]
        if len(run) == 1:
            await conn.execute(run[0].sql, *run[0].args)
        elif (bulk := BULK.get(run[0].sql)) is not None and (rounds := bulk_rounds(bulk, run)) is not None:
            for group in rounds:
                await conn.execute(bulk.sql, *bulk_columns(bulk, group))
        else:
            await conn.executemany(run[0].sql, [w.args for w in run])
        start = end


def bulk_rounds(bulk: Bulk, run: Sequence[Write]) -> list[list[Write]] | None:
    """The run in rounds of at most one write per row of `bulk.key` (each row's writes in order),
    or None when that takes more than MAX_ROUNDS; without a key, one round."""
    if not bulk.key:
        return [list(run)]
    rounds: list[list[Write]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for write in run:
        row = tuple(write.args[i] for i in bulk.key)
        k = seen[row] = seen.get(row, -1) + 1
        if k == MAX_ROUNDS:
            return None
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(write)
    return rounds


def bulk_columns(bulk: Bulk, group: Sequence[Write]) -> list[list[Any]]:
    columns = [list(column) for column in zip(*(w.args for w in group), strict=True)]
    for i, adapt in (bulk.adapt or {}).items():
        columns[i] = adapt(columns[i])
    return columns
