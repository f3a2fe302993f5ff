"""`agentlog projections rebuild NAME --session ID`: rebuild some sessions' rows in place.

Invariants:
- The session's events are applied, by the projection's own handlers, to emptied scratch tables
  (schema agentlog_sessions_NAME, reached through search_path, side effects off): most of them in
  committed chunks first, then the rest up to the live guard's version in ONE transaction per
  session that holds the projector (projection_checkpoints EXCLUSIVE, as the swap does), so the
  session's live version stands still. In that transaction the scratch rows are compared with the
  session's live rows (the drift check of a full rebuild, projections/rebuild/drift.py), and only
  when they differ and the drift is accepted are the session's live rows (and its parked events of
  the projection) replaced by the scratch ones. A session without drift is not written at all;
  with --verify-only, or drift not accepted, its transaction is rolled back.
- No other session's rows are written: every statement on the live tables names the session.
  A projection whose tables are not keyed by session (tool_stats) cannot be rebuilt this way.
- The scratch tables are emptied before each session and the schema is dropped at the end; they
  are unlogged (nothing in them needs to survive a crash) and only the projection's one rebuild
  at a time (lock.py) writes them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from eventstore.errors import AgentlogError
from projections.projector.applier import BatchApplier
from projections.projector.gaps import read_versions_between
from projections.read_models.catalog import PROJECTIONS, READS
from projections.read_models.projection import Projection
from projections.rebuild import drift, shadow, swap
from projections.rebuild.job import resolve
from projections.rebuild.lock import exclusive
from projections.rebuild.report import DriftReport, JsonLinesSink
from projections.settings import DEFAULT_GROUP

SCRATCH_PREFIX = "agentlog_sessions_"
CHUNK = 500  # events per scratch transaction before the projector is held
TENANTS = """
SELECT tenant FROM streams WHERE session_id = $1
UNION SELECT tenant FROM projection_session_versions WHERE projector = $2 AND session_id = $1
ORDER BY 1
"""
LIVE_VERSION = """
SELECT version FROM public.projection_session_versions WHERE projector = $1 AND tenant = $2 AND session_id = $3
"""
SESSION_PARKED = "projector = $1 AND projection = $2 AND tenant = $3 AND session_id = $4"
UNIQUE_INDEXES = """
SELECT pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i
WHERE i.indrelid = to_regclass($1) AND i.indisunique
"""


class SessionRebuildUnsupportedError(AgentlogError):
    code = "session_rebuild_unsupported"
    status = 422


@dataclass
class SessionOutcome:
    tenant: str | None
    session_id: str
    status: str  # rebuilt | unchanged | drift_refused | verified | not_found
    version: int = 0  # the live version the rows were rebuilt at
    events: int = 0
    differences: int = 0
    seconds: float = 0.0


@dataclass
class SessionRebuildSummary:
    projection: str
    status: str  # rebuilt | verified | drift_refused
    sessions: list[SessionOutcome] = field(default_factory=list)
    drift: DriftReport | None = None
    events: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drift"] = self.drift.as_dict() if self.drift is not None else None
        return out


class _Discard(Exception):
    """Rolls a session's transaction back once its outcome is known (nothing to write)."""


class SessionRebuild:
    def __init__(
        self,
        pool: asyncpg.Pool,
        name: str,
        sessions: Sequence[tuple[str | None, str]],
        *,
        projector: str = DEFAULT_GROUP,
        max_retries: int = 3,
        verify_only: bool = False,
        accept_drift: bool = False,
        examples: int = 10,
        drift_report: str | Path | None = None,
        catalog: Sequence[Projection] = PROJECTIONS,
    ) -> None:
        self.projection = resolve(name, catalog)
        if READS.get(self.projection.name):
            raise SessionRebuildUnsupportedError(
                f"{name} reads other projections' tables; rebuild it whole", projection=name
            )
        self._pool = pool
        self._sessions = list(sessions)
        self._projector = projector
        self._verify_only = verify_only
        self._accept_drift = accept_drift
        self._examples = examples
        self._drift_report = drift_report
        self._applier = BatchApplier((self.projection,), projector, max_retries, notify=False)
        self.scratch = SCRATCH_PREFIX + self.projection.name

    async def run(self) -> SessionRebuildSummary:
        started = time.monotonic()
        sink = JsonLinesSink(self._drift_report) if self._drift_report is not None else None
        report = DriftReport(examples_per_table=self._examples, full_report=sink.path if sink else None)
        summary = SessionRebuildSummary(self.projection.name, "rebuilt", drift=report)
        comparison = drift.Comparison("public", self.scratch, self._examples, sink)
        try:
            async with exclusive(self._pool, self.projection.name) as conn:
                shapes = await drift.shapes_for(conn, self.projection.tables, self._projector, self.projection.name)
                unkeyed = [s.table for s in shapes if not s.per_session]
                if unkeyed:
                    raise SessionRebuildUnsupportedError(
                        f"{', '.join(unkeyed)} is not keyed by session; rebuild {self.projection.name} whole",
                        projection=self.projection.name,
                    )
                await self._create_scratch(conn)
                try:
                    for tenant, session_id in await self._keys(conn):
                        outcome = await self._one(tenant, session_id, shapes, comparison, report)
                        summary.sessions.append(outcome)
                        summary.events += outcome.events
                finally:
                    await conn.execute(f"DROP SCHEMA IF EXISTS {self.scratch} CASCADE")
        finally:
            if sink is not None:
                sink.close()
        statuses = {s.status for s in summary.sessions}
        summary.status = (
            "verified" if self._verify_only else "drift_refused" if "drift_refused" in statuses else "rebuilt"
        )
        summary.seconds = round(time.monotonic() - started, 3)
        return summary

    async def _create_scratch(self, conn: asyncpg.Connection) -> None:
        """Unlogged copies with only the unique indexes (the handlers' ON CONFLICT needs them): a
        session updates its summary row once per event, and every secondary index would take an
        entry per update, which a long session's own transaction cannot prune."""
        await conn.execute(f"DROP SCHEMA IF EXISTS {self.scratch} CASCADE")
        await conn.execute(f"CREATE SCHEMA {self.scratch}")
        for table in shadow.shadow_tables(self.projection.tables):
            await conn.execute(
                f"CREATE UNLOGGED TABLE {self.scratch}.{table} (LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES)"
            )
            for index in await conn.fetch(UNIQUE_INDEXES, f"public.{table}"):
                await conn.execute(index["definition"].replace(" ON public.", f" ON {self.scratch}.", 1))

    async def _keys(self, conn: asyncpg.Connection) -> list[tuple[str | None, str]]:
        """Each wanted (tenant, session); a session id without tenant means every tenant's."""
        keys: list[tuple[str | None, str]] = []
        for tenant, session_id in self._sessions:
            if tenant is not None:
                keys.append((tenant, session_id))
                continue
            tenants = [r["tenant"] for r in await conn.fetch(TENANTS, session_id, self._projector)]
            keys += [(t, session_id) for t in tenants] or [(None, session_id)]
        return list(dict.fromkeys(keys))

    async def _one(
        self, tenant: str | None, session_id: str, shapes, comparison: drift.Comparison, report: DriftReport
    ) -> SessionOutcome:
        started = time.monotonic()
        if tenant is None:
            return SessionOutcome(None, session_id, "not_found")
        outcome = SessionOutcome(tenant, session_id, "unchanged")
        async with self._pool.acquire() as conn:
            built = await self._prebuild(conn, tenant, session_id)
            try:
                async with conn.transaction():
                    await swap.hold_projector(conn)
                    outcome.version = await conn.fetchval(LIVE_VERSION, self._projector, tenant, session_id) or 0
                    rest = await read_versions_between(conn, tenant, session_id, built, outcome.version + 1)
                    outcome.events = built + len(rest)
                    await self._apply(conn, rest)
                    found = await comparison.tables(conn, shapes, drift.Scope.session(tenant, session_id))
                    report.add(found)
                    outcome.differences = sum(t.differences for t in found)
                    if self._verify_only or not outcome.differences or not self._accept_drift:
                        raise _Discard
                    await self._replace(conn, tenant, session_id, shapes)
                    outcome.status = "rebuilt"
            except _Discard:
                if self._verify_only:
                    outcome.status = "verified"
                elif outcome.differences:
                    outcome.status = "drift_refused"
        outcome.seconds = round(time.monotonic() - started, 3)
        return outcome

    async def _prebuild(self, conn: asyncpg.Connection, tenant: str, session_id: str) -> int:
        """Most of the session, applied to the (emptied) scratch in committed chunks before the
        projector is held: up to the live version seen now. Returns the last version applied."""
        await conn.execute(
            f"TRUNCATE {', '.join(f'{self.scratch}.{t}' for t in shadow.shadow_tables(self.projection.tables))}"
        )
        seen = await conn.fetchval(LIVE_VERSION, self._projector, tenant, session_id) or 0
        built = 0
        while built < seen:
            events = await read_versions_between(conn, tenant, session_id, built, min(built + CHUNK, seen) + 1)
            if not events:
                break
            async with conn.transaction():
                await self._apply(conn, events)
            built = events[-1].version
        return built

    async def _apply(self, conn: asyncpg.Connection, events) -> None:
        await conn.execute(f"SET LOCAL search_path = {self.scratch}, public")
        await self._applier.apply(conn, events)
        await conn.execute("SET LOCAL search_path TO DEFAULT")

    async def _replace(self, conn: asyncpg.Connection, tenant: str, session_id: str, shapes) -> None:
        """The session's live rows := the scratch rows; then the scratch is emptied."""
        for shape in shapes:
            if shape.table not in self.projection.tables:
                continue
            columns = ", ".join(shape.columns)
            await conn.execute(
                f"DELETE FROM public.{shape.table} WHERE tenant = $1 AND session_id = $2", tenant, session_id
            )
            await conn.execute(
                f"INSERT INTO public.{shape.table} ({columns}) SELECT {columns} FROM {self.scratch}.{shape.table} "
                "WHERE tenant = $1 AND session_id = $2",
                tenant,
                session_id,
            )
        args = (self._projector, self.projection.name, tenant, session_id)
        await conn.execute(f"DELETE FROM public.projection_parked_events WHERE {SESSION_PARKED}", *args)
        await conn.execute(
            f"INSERT INTO public.projection_parked_events ({swap.PARKED_COLUMNS}) SELECT {swap.PARKED_COLUMNS} "
            f"FROM {self.scratch}.projection_parked_events WHERE {SESSION_PARKED}",
            *args,
        )
        await swap.recompute_flags(conn, [(tenant, session_id)])
