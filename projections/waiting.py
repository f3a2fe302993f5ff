"""Read-your-writes: wait until the projector has processed a session up to a version.

Invariant: a wait ends as soon as projection_session_versions shows the version (woken by the
projector's NOTIFY on channel agentlog_projected after each batch commit, with polling as the
fallback when a notification is missed or the LISTEN connection is down), or at its deadline with
ProjectionBehindError. The event a waiter sleeps on is taken before the check, so a notification
between the check and the sleep is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from eventstore import db
from eventstore.errors import AgentlogError, ValidationProblemError
from projections.settings import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

APPLIED = """
SELECT version FROM projection_session_versions WHERE projector = $1 AND tenant = $2 AND session_id = $3
"""


class ProjectionBehindError(AgentlogError):
    """The projection did not reach the wanted version within the wait; retry later."""

    code = "projection_behind"
    status = 504
    retriable = True


class ProjectionWaiter:
    """Owns the LISTEN connection of a query API process."""

    def __init__(self, dsn: str, pool: asyncpg.Pool, projector: str, poll_interval_s: float) -> None:
        self._dsn = dsn
        self._pool = pool
        self._projector = projector
        self._poll_s = poll_interval_s
        self._changed = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        try:
            self._listener = await db.connect(self._dsn)
            await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN %s unavailable, polling only: %r", NOTIFY_CHANNEL, exc)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()

    def _on_notify(self, *_args) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def applied_version(self, tenant: str, session_id: str) -> int:
        return await self._pool.fetchval(APPLIED, self._projector, tenant, session_id) or 0

    async def wait_for_version(self, tenant: str, session_id: str, version: int, timeout_s: float) -> int:
        """The applied version once it is >= `version`; ProjectionBehindError at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            changed = self._changed
            current = await self.applied_version(tenant, session_id)
            remaining = deadline - time.monotonic()
            if current >= version:
                return current
            if remaining <= 0:
                raise ProjectionBehindError(
                    f"session {session_id} is projected up to version {current}, not yet {version}",
                    session_id=session_id, wanted_version=version, current_version=current)
            try:
                await asyncio.wait_for(changed.wait(), min(remaining, self._poll_s))
            except TimeoutError:
                pass

    async def wait_for_position(self, tenant: str, position: int, timeout_s: float) -> None:
        """Wait until the event at global `position` (the caller's tenant's) is projected."""
        row = await self._pool.fetchrow(
            "SELECT session_id, version FROM events WHERE position = $1 AND tenant = $2", position, tenant)
        if row is None:
            raise ValidationProblemError("unknown position", errors=[
                {"field": "min_position", "reason": "no event of this tenant at this position"}])
        try:
            await self.wait_for_version(tenant, row["session_id"], row["version"], timeout_s)
        except ProjectionBehindError as exc:
            exc.extra["wanted_position"] = position
            raise
