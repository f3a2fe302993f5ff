"""`agentlog projections rebuild NAME`: rebuild one projection from the log into shadow tables,
prove it against the live tables, and swap it in, while the projector and the query API go on.

Invariants:
- The live tables are read and written only by the projector and the query API until the swap
  (projections/rebuild/swap.py), one transaction that makes the shadow tables the live ones.
- The source (the store, or the Kafka topic: projections/rebuild/sources.py) is applied to the
  shadow batch by batch; each batch is one transaction that also moves the rebuild's cursor by
  compare-and-set: a crash or Ctrl-C loses at most the batch in flight, and a rerun resumes from
  the stored cursor with nothing doubled, as long as the handler code is the same.
- Before the swap the rebuilt rows are compared with the live rows at the same session versions
  (projections/rebuild/verify.py). A swap happens only when that drift report is clean or the
  caller accepts the drift; with `verify_only` it never happens. Either way nothing live changes
  unless the swap commits, and the shadow stays for a rerun to resume.
- A swap keeps the replaced tables as the retired version (projections/rebuild/retired.py) and
  records both in projection_versions, in the same transaction.
- Side effects are off: shadow batches send no NOTIFY and park into the shadow's own tables.
- One rebuild per projection at a time (projections/rebuild/lock.py); a second one is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from eventstore.errors import AgentlogError
from projections.projector.applier import BatchApplier
from projections.read_models.catalog import PROJECTIONS, READS
from projections.read_models.projection import Projection
from projections.rebuild import drift, retired, shadow, swap, verify, versions
from projections.rebuild.lock import RebuildRunningError, exclusive
from projections.rebuild.report import DriftReport, JsonLinesSink
from projections.rebuild.sources import Source, StoreSource
from projections.settings import DEFAULT_GROUP

__all__ = ["ProjectionRebuild", "RebuildProgress", "RebuildRunningError", "RebuildSummary", "resolve"]
log = logging.getLogger(__name__)
PhaseHook = Callable[[str], Awaitable[None] | None]


class UnknownProjectionError(AgentlogError):
    code = "unknown_projection"
    status = 404


@dataclass
class RebuildProgress:
    """What a progress display needs after each batch (also the final summary's counters)."""

    projection: str
    events_done: int = 0
    events_total: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    done_at_start: int = 0  # events a resumed rebuild had done before this run
    phase: str = "building"  # building | verifying | swapping

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.events_done - self.done_at_start) / elapsed if elapsed > 0 else 0.0


@dataclass
class RebuildSummary:
    projection: str
    tables: list[str]
    built_with: list[str]  # projections built in the shadow (the projection and what it reads)
    source: str
    status: str  # swapped | verified (verify only) | drift_refused | interrupted (resumable)
    resumed: bool
    events: int
    batches: int
    seconds: float = 0.0
    build_seconds: float = 0.0
    swap_seconds: float = 0.0
    caught_up_in_swap: int = 0
    brought_forward_live: int = 0
    filled_from_store: int = 0  # events the source skipped (version gaps), read from the store
    parked: int = 0
    version: int | None = None  # the projection's live version afterwards (swapped)
    versions: dict[str, int] = field(default_factory=dict)  # each swapped projection's new version
    retired_version: int | None = None  # kept for `agentlog projections rollback`
    handlers_changed: bool | None = None  # since the live version was built (None: not known)
    drift: DriftReport | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "drift"}
        out["drift"] = self.drift.as_dict() if self.drift is not None else None
        return out


class _NotSwapped(Exception):
    """Rolls the swap transaction back after the comparison (verify only, or refused drift)."""

    def __init__(self, status: str) -> None:
        self.status = status


ALL = "all"  # every projection in one rebuild: one read of the log, as the projector does


def resolve(name: str, catalog: Sequence[Projection] = PROJECTIONS) -> Projection:
    by_name = {p.name: p for p in catalog}
    if name not in by_name:
        raise UnknownProjectionError(f"unknown projection {name!r}; known: {', '.join(by_name)}", known=list(by_name))
    return by_name[name]


def targets_of(name: str, catalog: Sequence[Projection] = PROJECTIONS) -> tuple[Projection, ...]:
    """The projections a rebuild named `name` swaps in: one, or every one for `all`."""
    return tuple(catalog) if name == ALL else (resolve(name, catalog),)


def build_of(targets: Sequence[Projection], catalog: Sequence[Projection]) -> tuple[Projection, ...]:
    """What the shadow applies: the targets and the projections their handlers read, in catalog order."""
    wanted = {n for p in targets for n in (p.name, *READS.get(p.name, ()))}
    return tuple(p for p in catalog if p.name in wanted)


class ProjectionRebuild:
    """Owns one rebuild: its lock connection, its shadow schema, its cursor and its drift report."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        *,
        projector: str = DEFAULT_GROUP,
        batch_size: int = 500,
        max_retries: int = 3,
        on_progress: Callable[[RebuildProgress], Awaitable[None] | None] | None = None,
        max_batches: int | None = None,
        source: Source | None = None,
        verify_only: bool = False,
        accept_drift: bool = False,
        examples: int = 10,
        drift_report: str | Path | None = None,
        catalog: Sequence[Projection] = PROJECTIONS,
        on_phase: PhaseHook | None = None,
    ) -> None:
        self.catalog = tuple(catalog)
        self.name = name
        self.targets = targets_of(name, self.catalog)
        self.build = build_of(self.targets, self.catalog)
        self.fingerprint = versions.fingerprint(self.build)
        self._pool = pool
        self._source = source or StoreSource(pool)
        self._projector = projector
        self._batch_size = batch_size
        self._max_retries = max_retries
        self._on_progress = on_progress or (lambda progress: None)
        self._on_phase = on_phase
        self._max_batches = max_batches  # stop early (tests, or a rebuild in slices); resumable
        self._verify_only = verify_only
        self._accept_drift = accept_drift
        self._examples = examples
        self._drift_report = drift_report
        self._applier = BatchApplier(self.build, projector, max_retries, notify=False)

    @property
    def tables(self) -> tuple[str, ...]:
        """Every table the shadow builds (the targets' and those their handlers read)."""
        return tuple(t for p in self.build for t in p.tables)

    @property
    def target_tables(self) -> tuple[str, ...]:
        return tuple(t for p in self.targets for t in p.tables)

    async def run(self) -> RebuildSummary:
        started = time.monotonic()
        # The rebuild's own name, and each projection it swaps (a rebuild of `all` and one of a
        # single projection must not both move its tables).
        async with exclusive(self._pool, self.name, *(p.name for p in self.targets)) as conn:
            key = shadow.BuildKey(self._projector, self.tables, self._source.name, self.fingerprint)
            state = await shadow.prepare(conn, self.name, key)
            progress = RebuildProgress(
                self.name, state.events_done, done_at_start=state.events_done, batches=state.batches
            )
            summary = RebuildSummary(
                self.name,
                list(self.target_tables),
                [p.name for p in self.build],
                self._source.name,
                "interrupted",
                state.resumed,
                state.events_done,
                state.batches,
                filled_from_store=state.filled_from_store,
            )
            summary.handlers_changed = await self._handlers_changed(conn)
            await self._source.open(state.cursor)
            try:
                caught_up = await self._catch_up(state.cursor, progress, summary)
            finally:
                await self._source.close()
            summary.build_seconds = round(time.monotonic() - started, 3)
            if caught_up:
                await self._verify_and_swap(summary, progress)
                if summary.status == "swapped":
                    await shadow.drop(conn, self.name)
        summary.seconds = round(time.monotonic() - started, 3)
        return summary

    async def _handlers_changed(self, conn: asyncpg.Connection) -> bool | None:
        """Whether any target's handler code differs from what built its live version (None: not
        known, the projector built it)."""
        changed: list[bool] = []
        for target in self.targets:
            live = await versions.live_fingerprint(conn, self._projector, target.name)
            if live is not None:
                changed.append(live != versions.fingerprint(build_of((target,), self.catalog)))
        return any(changed) if changed else None

    async def _catch_up(self, cursor: shadow.Cursor, progress: RebuildProgress, summary: RebuildSummary) -> bool:
        """Apply the source to the shadow until it has caught up; False if stopped early. The next
        batch is read while the current one is applied (reading does not depend on applying)."""
        progress.events_total = max(await self._source.total(), progress.events_done)
        await shadow.set_phase(self._pool, self.name, "building", progress.events_total)
        runs = 0
        pending = asyncio.ensure_future(self._source.read(cursor, self._batch_size))
        try:
            while True:
                if self._max_batches is not None and runs >= self._max_batches:
                    return False
                # Shielded: a cancellation (Ctrl-C) must stop this task, not only the read in flight
                # (a task awaiting another hands its cancellation to it, which may swallow it).
                batch = await asyncio.shield(pending)
                if not batch.caught_up:
                    pending = asyncio.ensure_future(self._source.read(batch.cursor, self._batch_size))
                if batch.events or batch.cursor != cursor:
                    summary.filled_from_store += await self._apply(batch.events, cursor, batch.cursor)
                    cursor, runs = batch.cursor, runs + 1
                    progress.events_done += len(batch.events)
                    progress.batches += 1
                    summary.events, summary.batches = progress.events_done, progress.batches
                    if progress.events_done > progress.events_total:
                        progress.events_total = max(await self._source.total(), progress.events_done)
                    await self._report(progress)
                if batch.caught_up:
                    return True
        finally:
            if not pending.done():
                pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending  # a read that failed after the rebuild stopped is not an error of it

    async def _apply(self, events, before: shadow.Cursor, after: shadow.Cursor) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            await shadow.use_shadow(conn, self.name)
            result = await self._applier.apply(conn, events)
            await shadow.advance(conn, self.name, before, after, len(events), result.gap_filled)
        return result.gap_filled

    async def _report(self, progress: RebuildProgress) -> None:
        outcome = self._on_progress(progress)
        if inspect.isawaitable(outcome):  # a hook that looks at the database while the rebuild waits
            await outcome

    async def _phase(self, phase: str, progress: RebuildProgress) -> None:
        progress.phase = phase
        await shadow.set_phase(self._pool, self.name, phase)
        await self._report(progress)
        if self._on_phase is not None:
            outcome = self._on_phase(phase)
            if inspect.isawaitable(outcome):
                await outcome

    async def _verify_and_swap(self, summary: RebuildSummary, progress: RebuildProgress) -> None:
        sink = JsonLinesSink(self._drift_report) if self._drift_report is not None else None
        report = DriftReport(examples_per_table=self._examples, full_report=sink.path if sink else None)
        summary.drift = report
        comparison = drift.Comparison("public", shadow.schema_for(self.name), self._examples, sink)
        try:
            await self._phase("verifying", progress)
            async with self._pool.acquire() as conn:
                shapes = [
                    shape
                    for target in self.targets
                    for shape in await drift.shapes_for(conn, target.tables, self._projector, target.name)
                ]
                began = time.perf_counter()
                async with conn.transaction(isolation="repeatable_read"):
                    schema = shadow.schema_for(self.name)
                    report.add(await verify.compare_settled(conn, schema, self._projector, shapes, comparison))
                report.seconds += time.perf_counter() - began
            await self._phase("swapping", progress)
            began = time.perf_counter()
            try:
                await self._swap(summary, report, shapes, comparison)
            except _NotSwapped as stopped:
                summary.status = stopped.status
                await shadow.set_phase(self._pool, self.name, stopped.status)
            summary.swap_seconds = round(time.perf_counter() - began, 3)
        finally:
            if sink is not None:
                sink.close()

    async def _swap(self, summary: RebuildSummary, report: DriftReport, shapes, comparison) -> None:
        schema = shadow.schema_for(self.name)
        first = swap.SwapPlan(self.targets[0], self.build, self._projector, self._max_retries, self.catalog, schema)
        async with self._pool.acquire() as conn, conn.transaction():
            await swap.hold_projector(conn)
            result = await swap.reconcile(conn, first)
            began = time.perf_counter()
            found, report.sessions_rechecked = await verify.compare_moved(
                conn, schema, self._projector, shapes, comparison
            )
            report.add(found)
            report.set_totals(await verify.totals(conn, shapes, "public", schema))
            report.seconds += time.perf_counter() - began
            summary.caught_up_in_swap = result.caught_up_in_shadow
            summary.brought_forward_live = result.brought_forward_live
            if self._verify_only:
                raise _NotSwapped("verified")
            if not report.clean and not self._accept_drift:
                raise _NotSwapped("drift_refused")
            for target in self.targets:
                await self._swap_in(conn, target, summary, report)
            await shadow.mark_swapped(conn, self.name)
        summary.status = "swapped"
        log.info("rebuilt %s from %d events; swapped in as version %s", self.name, summary.events, summary.version)

    async def _swap_in(self, conn: asyncpg.Connection, target: Projection, summary: RebuildSummary, report) -> None:
        """One target's tables go live; the ones they replace are kept as its retired version."""
        schema, retired_schema = shadow.schema_for(self.name), shadow.retired_schema_for(target.name)
        plan = swap.SwapPlan(target, self.build, self._projector, self._max_retries, self.catalog, schema)
        # After reconciling: the live guard says exactly what the outgoing tables reflect.
        await retired.retire_into(conn, retired_schema, target, self._projector)
        await swap.move_tables(conn, target.tables, incoming=schema, outgoing=retired_schema)
        summary.parked += await swap.replace_parked(conn, plan)
        drift_counts = {
            t.table: t.differences
            for t in report.tables
            if t.differences and (t.table in target.tables or t.table.endswith(f"[{target.name}]"))
        }
        summary.version, summary.retired_version, _ = recorded = await versions.record_swap(
            conn,
            self._projector,
            target.name,
            source=self._source.name,
            fingerprint=versions.fingerprint(build_of((target,), self.catalog)),
            events=summary.events,
            drift=drift_counts or None,
        )
        summary.versions[target.name] = recorded[0]
