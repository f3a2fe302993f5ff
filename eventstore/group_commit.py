"""Group commit of the command path's appends: appends that arrive while earlier ones are being
written go together, as one round trip and one transaction, when a lane frees up.

Why: one append in its own transaction costs its PostgreSQL backend about 0.29 ms of CPU (the
statement's start, the commit, the WAL flush, the wake-ups) and the command API about 0.15 ms of
client work; the same appends two to a transaction cost 0.18 and 0.09 ms each, four to one 0.13
and 0.05 ms (docs/benchmarks.md, stop 34). Batches form only under load, and grow with it: while
fewer than `lanes` writes are out, an append goes at once, alone, as before, so an idle or quiet
system waits for nothing. A burst is what makes appends wait, and it makes them cheaper.

How: a batch is `fetchmany` of the one-statement append (eventstore/store.py), whose statements
asyncpg sends with one Sync: PostgreSQL runs them in one implicit transaction, all or nothing.
- Each append keeps its own outcome. A stale version writes nothing for that append and answers
  the session's version (a ConcurrencyError for that command only), as alone.
- A statement error (a writer elsewhere took the version first: the unique version of events)
  rolls the whole batch back; its appends are then written one by one, each with its own answer.
  A connection error fails every append of the batch, as it fails an append alone.
- Per-session order in the log (eventstore/positions.py): rows of one transaction share its xid,
  taken by the batch's first statement. A later statement may append to a session whose previous
  version was committed by a transaction that took its xid after that one: its rows would sort
  before the version they follow. So the batch's statements (BATCHED_SQL) write only when the
  session's last event has a lower xid than theirs; when it has not, they write nothing, and that
  append is written alone afterwards, which takes a fresh xid.
- A caller cancelled while its append waits in the queue takes it out; once sent, the batch runs
  to its end for the others, and the append may be written though nobody waits for its answer
  (as when a client gives up on a request in flight).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from eventstore import db

log = logging.getLogger(__name__)

# The guard of a batched statement: the session's last event (its version $3) was written by a
# transaction with a lower xid than this one's.
_XID_GUARD = """
       AND NOT EXISTS (SELECT 1 FROM events e
                        WHERE e.tenant = $1 AND e.session_id = $2 AND e.version = $3
                          AND e.transaction_id > pg_current_xact_id())"""


def batched_sql(append_at_sql: str) -> str:
    """The one-statement append with the xid guard in its `at` step."""
    anchor = "FROM streams WHERE tenant = $1 AND session_id = $2 AND version = $3"
    if append_at_sql.count(anchor) != 1:
        raise ValueError("the one-statement append has no single `at` step to guard")
    return append_at_sql.replace(anchor, anchor + _XID_GUARD, 1)


def _is_statement_error(exc: BaseException) -> bool:
    """An error of one statement (not of the connection or the server): written alone, the other
    appends of its batch may succeed."""
    return isinstance(exc, asyncpg.PostgresError) and not db.is_infrastructure_error(exc)


class AppendBatcher:
    """Writes one-statement appends (their parameters, a list each) and answers each with its row."""

    def __init__(self, pool: asyncpg.Pool, single_sql: str, *, max_batch: int = 32, lanes: int = 2) -> None:
        if max_batch < 1 or lanes < 1:
            raise ValueError("max_batch and lanes must be at least 1")
        self._pool = pool
        self._single = single_sql
        self._batched = batched_sql(single_sql)
        self._max_batch, self._lanes = max_batch, lanes
        self._queue: list[tuple[Sequence[Any], asyncio.Future[asyncpg.Record]]] = []
        self._out = 0  # writes being written (alone or batches)
        self._tasks: set[asyncio.Task[None]] = set()
        # counters for /metrics: appends sent, and the transactions they were sent in
        self.writes = 0
        self.appends = 0

    async def append(self, params: Sequence[Any]) -> asyncpg.Record:
        if self._out < self._lanes and not self._queue:
            self._out += 1
            self.writes += 1
            self.appends += 1
            try:
                return await self._pool.fetchrow(self._single, *params)
            finally:
                self._out -= 1
                self._next()
        future: asyncio.Future[asyncpg.Record] = asyncio.get_running_loop().create_future()
        entry = (params, future)
        self._queue.append(entry)
        try:
            return await future
        except asyncio.CancelledError:
            if entry in self._queue:
                self._queue.remove(entry)
            raise

    def _next(self) -> None:
        """A lane is free: send what waits, up to max_batch appends."""
        while self._queue and self._out < self._lanes:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            batch = [entry for entry in batch if not entry[1].done()]
            if not batch:
                continue
            self._out += 1
            task = asyncio.get_running_loop().create_task(self._write(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write(self, batch: list[tuple[Sequence[Any], asyncio.Future[asyncpg.Record]]]) -> None:
        try:
            self.appends += len(batch)
            if len(batch) == 1:
                await self._alone(batch[0])
                return
            self.writes += 1
            try:
                async with self._pool.acquire() as conn:
                    rows = await conn.fetchmany(self._batched, [params for params, _ in batch])
            except Exception as exc:
                if not _is_statement_error(exc):
                    for _, future in batch:
                        _settle(future, exc=exc)
                    return
                log.debug("a batch of %d appends failed (%r); writing them one by one", len(batch), exc)
                for entry in batch:
                    await self._alone(entry)
                return
            for entry, row in zip(batch, rows, strict=True):
                params, future = entry
                if row["new_version"] is None and row["current_version"] == params[2]:
                    await self._alone(entry)  # held back by the xid guard: a fresh transaction
                else:
                    _settle(future, row)
        except BaseException as exc:  # cancelled (shutdown): nobody is left waiting
            for _, future in batch:
                _settle(future, exc=exc)
            raise
        finally:
            self._out -= 1
            self._next()

    async def _alone(self, entry: tuple[Sequence[Any], asyncio.Future[asyncpg.Record]]) -> None:
        params, future = entry
        self.writes += 1
        try:
            row = await self._pool.fetchrow(self._single, *params)
        except Exception as exc:
            _settle(future, exc=exc)
        else:
            _settle(future, row)

    async def aclose(self) -> None:
        """Waits for the batches being written."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _settle(future: asyncio.Future[Any], row: Any = None, *, exc: BaseException | None = None) -> None:
    if future.done():  # its caller was cancelled
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    elif exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(row)
