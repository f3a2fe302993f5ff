"""`agentlog projections rebuild NAME`: rebuild one projection from the event log into shadow
tables, catch up with the live log, and swap it in, while the projector and the query API go on.

Invariants:
- The live tables are read and written only by the projector and the query API until the swap
  (projections/rebuild/swap.py), one transaction that makes the shadow tables the live ones.
- The log is read with the strict read-all (eventstore/positions.py: (transaction id, position)
  order, held back at the oldest open transaction), so no event is skipped or read twice; each
  batch is one transaction that applies the events to the shadow (rebuild_shadow.use_shadow) and
  moves the rebuild's cursor by compare-and-set: a crash or Ctrl-C loses at most the batch in
  flight, and a rerun resumes from the stored cursor with nothing doubled.
- Side effects are off: shadow batches send no NOTIFY and park into the shadow's own tables.
- One rebuild per projection at a time (a session advisory lock); a second one is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field

import asyncpg

from eventstore.errors import AgentlogError
from eventstore.positions import LogCursor
from eventstore.store import EventStore
from projections.projector.applier import BatchApplier
from projections.read_models.catalog import BY_NAME, PROJECTIONS, READS
from projections.read_models.projection import Projection
from projections.rebuild import shadow
from projections.rebuild.swap import SwapPlan, swap
from projections.settings import DEFAULT_GROUP

log = logging.getLogger(__name__)
_LOCK_KEY = "SELECT hashtextextended('agentlog.rebuild:' || $1, 0)"


class UnknownProjectionError(AgentlogError):
    code = "unknown_projection"
    status = 404


class RebuildRunningError(AgentlogError):
    code = "rebuild_running"
    status = 409


@dataclass
class RebuildProgress:
    """What a progress display needs after each batch (also the final summary's counters)."""

    projection: str
    events_done: int = 0
    events_total: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    done_at_start: int = 0  # events a resumed rebuild had done before this run

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.events_done - self.done_at_start) / elapsed if elapsed > 0 else 0.0


@dataclass
class RebuildSummary:
    projection: str
    tables: list[str]
    built_with: list[str]  # projections built in the shadow (the projection and what it reads)
    status: str  # "swapped" or "interrupted" (resumable: run it again)
    resumed: bool
    events: int
    batches: int
    seconds: float
    caught_up_in_swap: int = 0
    brought_forward_live: int = 0
    parked: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def resolve(name: str) -> Projection:
    if name not in BY_NAME:
        raise UnknownProjectionError(f"unknown projection {name!r}; known: {', '.join(BY_NAME)}", known=list(BY_NAME))
    return BY_NAME[name]


class ProjectionRebuild:
    """Owns one rebuild: its lock connection, its shadow schema and its cursor."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        *,
        projector: str = DEFAULT_GROUP,
        batch_size: int = 500,
        max_retries: int = 3,
        on_progress: Callable[[RebuildProgress], None] | None = None,
        max_batches: int | None = None,
    ) -> None:
        self.projection = resolve(name)
        wanted = {self.projection.name, *READS.get(self.projection.name, ())}
        self.build = tuple(p for p in PROJECTIONS if p.name in wanted)
        self._pool = pool
        self._store = EventStore(pool)
        self._projector = projector
        self._batch_size = batch_size
        self._max_retries = max_retries
        self._on_progress = on_progress or (lambda progress: None)
        self._max_batches = max_batches  # stop early (tests, or a rebuild in slices); resumable
        self._applier = BatchApplier(self.build, projector, max_retries, notify=False)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(t for p in self.build for t in p.tables)

    async def run(self) -> RebuildSummary:
        started = time.monotonic()
        async with self._exclusive() as conn:
            state = await shadow.prepare(conn, self.projection.name, self._projector, self.tables)
            progress = RebuildProgress(
                self.projection.name, state.events_done, done_at_start=state.events_done, batches=state.batches
            )
            caught_up = await self._catch_up(state.cursor, progress)
            summary = RebuildSummary(
                self.projection.name,
                list(self.projection.tables),
                [p.name for p in self.build],
                "interrupted",
                state.resumed,
                progress.events_done,
                progress.batches,
                0.0,
            )
            if caught_up:
                await self._swap(summary)
                await shadow.drop(conn, self.projection.name)
        summary.seconds = round(time.monotonic() - started, 3)
        return summary

    @asynccontextmanager
    async def _exclusive(self):
        async with self._pool.acquire() as conn:
            key = await conn.fetchval(_LOCK_KEY, self.projection.name)
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                raise RebuildRunningError(
                    f"a rebuild of {self.projection.name} is already running", projection=self.projection.name
                )
            try:
                yield conn
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)

    async def _catch_up(self, cursor: LogCursor, progress: RebuildProgress) -> bool:
        """Apply the log to the shadow until a batch comes back short; False if stopped early."""
        progress.events_total = await self._count_events()
        runs = 0
        while True:
            if self._max_batches is not None and runs >= self._max_batches:
                return False
            events, after = await self._store.read_all(cursor, self._batch_size)
            if events:
                await self._apply(events, cursor, after)
                cursor, runs = after, runs + 1
                progress.events_done += len(events)
                progress.batches += 1
                if progress.events_done > progress.events_total:
                    progress.events_total = await self._count_events()
                self._on_progress(progress)
            if len(events) < self._batch_size:
                return True

    async def _apply(self, events, before: LogCursor, after: LogCursor) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await shadow.advance(conn, self.projection.name, before, after, len(events))
            await shadow.use_shadow(conn, self.projection.name)
            await self._applier.apply(conn, events)

    async def _swap(self, summary: RebuildSummary) -> None:
        plan = SwapPlan(self.projection, self.build, self._projector, self._max_retries)
        async with self._pool.acquire() as conn, conn.transaction():
            result = await swap(conn, plan)
        summary.status = "swapped"
        summary.caught_up_in_swap = result.caught_up_in_shadow
        summary.brought_forward_live = result.brought_forward_live
        summary.parked = result.parked
        log.info("rebuilt %s from %d events; swapped in", self.projection.name, summary.events)

    async def _count_events(self) -> int:
        return await self._pool.fetchval("SELECT count(*) FROM events")
