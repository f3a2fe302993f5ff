"""Read-your-writes: wait until the projector has processed a session up to a version.

Invariant: a wait ends as soon as projection_session_versions shows the version, or at its
deadline with ProjectionBehindError. A wait that is not already satisfied registers
(tenant, session_id, version, future) here; one refresher task reads the versions of every
waited-for session in ONE statement and resolves the futures that reached their version. It is
woken by the projector's NOTIFY on channel agentlog_projected after each batch commit, and polls
every poll interval while anyone waits (the fallback when a notification is missed or the LISTEN
connection is down). Notifications that arrive during a refresh coalesce into one more refresh, so
the cost of a projector batch is one query, whatever the number of waiting requests.
A notification between a waiter's check and its registration is never lost: the waiter compares
the notification count taken before its check and, if it moved, asks for one more refresh, which
starts after the registration. A wait that ends for any reason (answer, deadline, cancellation of
the request) removes its registration.
The LISTEN connection is kept by a task of its own: when it is lost (a Postgres restart) or cannot
be opened, it is opened again with a growing backoff, for as long as the waiter runs; after every
(re)connect one refresh is asked for, since notifications sent while it was down are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import Counter

from eventstore import db
from eventstore.errors import AgentlogError, ValidationProblemError
from projections.settings import NOTIFY_CHANNEL

log = logging.getLogger(__name__)
LISTEN_BACKOFF_S = 0.5
MAX_LISTEN_BACKOFF_S = 10.0
LISTEN_CHECK_S = 10.0  # a connection that died without a word (network) is found by a probe this often

APPLIED = """
SELECT version FROM projection_session_versions WHERE projector = $1 AND tenant = $2 AND session_id = $3
"""
APPLIED_MANY = """
SELECT tenant, session_id, version FROM projection_session_versions
WHERE projector = $1 AND (tenant, session_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))
"""

Key = tuple[str, str]


class ProjectionBehindError(AgentlogError):
    """The projection did not reach the wanted version within the wait; retry later."""

    code = "projection_behind"
    status = 504
    retriable = True


@dataclass(eq=False)
class _Wait:
    version: int
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ProjectionWaiter:
    """Owns the LISTEN connection and the refresher task of a query API process."""

    def __init__(
        self, dsn: str, pool: asyncpg.Pool, projector: str, poll_interval_s: float, *, refreshes: Counter | None = None
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._projector = projector
        self._poll_s = poll_interval_s
        self._refreshes = refreshes
        self._waits: dict[Key, list[_Wait]] = {}
        self._notifications = 0
        self._wake = asyncio.Event()  # a refresh is due (notification, or a waiter's late registration)
        self._anyone = asyncio.Event()  # set while _waits is not empty: no polling for nobody
        self._listener: asyncpg.Connection | None = None
        self._refresher: asyncio.Task | None = None
        self._listen_task: asyncio.Task | None = None
        self._subscribers: set[asyncio.Event] = set()  # live streams: set on every notification
        self.listens = 0  # LISTEN connections opened so far (1 + reconnects)

    @property
    def waiting(self) -> int:
        """Registered waits (0 when idle: every ended wait unregisters)."""
        return sum(len(waits) for waits in self._waits.values())

    @property
    def listening(self) -> bool:
        """Whether notifications can arrive now (else waits are answered by the poll)."""
        return self._listener is not None and not self._listener.is_closed()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        """An event set on every projector notification (and after every LISTEN reconnect, since
        notifications sent meanwhile are lost); the subscriber clears it before it reads."""
        event = asyncio.Event()
        self._subscribers.add(event)
        try:
            yield event
        finally:
            self._subscribers.discard(event)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_loop(), name="projection-waiter-refresher")
        lost = asyncio.Event()
        try:  # the first LISTEN before start returns, so the first requests are already notified
            await self._listen(lost)
        except (asyncpg.PostgresError, *db.CONNECTION_ERRORS) as exc:
            log.warning("LISTEN %s unavailable, polling only meanwhile: %r", NOTIFY_CHANNEL, exc)
            await self._close_listener()
            lost.set()
        self._listen_task = asyncio.create_task(self._listen_loop(lost), name="projection-waiter-listener")

    async def close(self) -> None:
        for task in (self._refresher, self._listen_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._close_listener()

    async def _listen_loop(self, lost: asyncio.Event) -> None:
        """Keep one LISTEN connection open: reconnect with backoff whenever it is lost."""
        backoff = LISTEN_BACKOFF_S
        while True:
            try:
                if not lost.is_set():
                    await self._until_lost(lost)
                    log.warning("LISTEN %s connection lost, reconnecting", NOTIFY_CHANNEL)
            except (asyncpg.PostgresError, *db.CONNECTION_ERRORS) as exc:
                log.warning("LISTEN %s connection failed its probe, reconnecting: %r", NOTIFY_CHANNEL, exc)
            await self._close_listener()
            await asyncio.sleep(backoff)
            lost = asyncio.Event()
            try:
                await self._listen(lost)
                backoff = LISTEN_BACKOFF_S
            except (asyncpg.PostgresError, *db.CONNECTION_ERRORS) as exc:
                log.warning("LISTEN %s unavailable, polling only; retrying in %.1f s: %r", NOTIFY_CHANNEL, backoff, exc)
                lost.set()
                backoff = min(backoff * 2, MAX_LISTEN_BACKOFF_S)

    async def _listen(self, lost: asyncio.Event) -> None:
        listener = await db.connect(self._dsn)
        try:
            listener.add_termination_listener(lambda *_: lost.set())
            await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except BaseException:
            listener.terminate()
            raise
        # Published only once LISTEN is in place, and counted in the same step: `listening` is
        # never true for a connection that cannot deliver a notification yet.
        self._listener = listener
        self.listens += 1
        for event in self._subscribers:
            event.set()
        if self._waits:
            self._wake.set()  # what was notified while no one listened

    async def _until_lost(self, lost: asyncio.Event) -> None:
        """Return once the connection is closed, or fails a periodic probe."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), LISTEN_CHECK_S)
            if lost.is_set() or self._listener is None or self._listener.is_closed():
                return
            await self._listener.execute("SELECT 1", timeout=LISTEN_CHECK_S)

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), 2)
            if not listener.is_closed():
                listener.terminate()

    def _on_notify(self, *_args) -> None:
        self._notifications += 1
        for event in self._subscribers:
            event.set()
        if self._waits:
            self._wake.set()

    async def applied_version(self, tenant: str, session_id: str) -> int:
        return await self._pool.fetchval(APPLIED, self._projector, tenant, session_id) or 0

    async def wait_for_version(self, tenant: str, session_id: str, version: int, timeout_s: float) -> int:
        """The applied version once it is >= `version`; ProjectionBehindError at the deadline."""
        deadline = time.monotonic() + timeout_s
        seen = self._notifications
        current = await self.applied_version(tenant, session_id)
        if current >= version:
            return current  # the fast path: one query, nothing registered
        remaining = deadline - time.monotonic()
        if remaining > 0:
            key = (tenant, session_id)
            wait = self._register(key, version, notified_since_check=self._notifications != seen)
            try:
                return await asyncio.wait_for(wait.future, remaining)
            except TimeoutError:
                pass
            finally:
                self._unregister(key, wait)
            current = await self.applied_version(tenant, session_id)  # the answer names the latest version
            if current >= version:
                return current
        raise ProjectionBehindError(
            f"session {session_id} is projected up to version {current}, not yet {version}",
            session_id=session_id,
            wanted_version=version,
            current_version=current,
        )

    def _register(self, key: Key, version: int, *, notified_since_check: bool) -> _Wait:
        wait = _Wait(version)
        self._waits.setdefault(key, []).append(wait)
        self._anyone.set()
        if notified_since_check:
            # That notification's refresh may have read the registry before this wait was in it.
            self._wake.set()
        return wait

    def _unregister(self, key: Key, wait: _Wait) -> None:
        waits = self._waits.get(key)
        if waits is not None and wait in waits:
            waits.remove(wait)
            if not waits:
                del self._waits[key]
        if not self._waits:
            self._anyone.clear()
            self._wake.clear()  # nobody left to wake; a later waiter asks for its own refresh if needed

    async def _refresh_loop(self) -> None:
        """One refresh at a time: on a wake, else every poll interval while anyone waits."""
        while True:
            await self._anyone.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            # Cleared before the registry is read: a wake from now on means one more refresh.
            self._wake.clear()
            try:
                await self._refresh()
            except (asyncpg.PostgresError, *db.CONNECTION_ERRORS) as exc:
                log.warning("read-your-writes refresh failed, retrying at the next wake or poll: %r", exc)
            except Exception:
                log.exception("read-your-writes refresh failed unexpectedly")

    async def _refresh(self) -> None:
        keys = list(self._waits)
        if not keys:
            return
        if self._refreshes is not None:
            self._refreshes.inc()
        rows = await self._pool.fetch(APPLIED_MANY, self._projector, [t for t, _ in keys], [s for _, s in keys])
        for row in rows:
            key = (row["tenant"], row["session_id"])
            for wait in list(self._waits.get(key, ())):
                if wait.version <= row["version"]:
                    if not wait.future.done():
                        wait.future.set_result(row["version"])
                    self._unregister(key, wait)

    async def wait_for_position(self, tenant: str, position: int, timeout_s: float) -> None:
        """Wait until the event at global `position` (the caller's tenant's) is projected."""
        row = await self._pool.fetchrow(
            "SELECT session_id, version FROM events WHERE position = $1 AND tenant = $2", position, tenant
        )
        if row is None:
            raise ValidationProblemError(
                "unknown position",
                errors=[{"field": "query.min_position", "reason": "no event of this tenant at this position"}],
            )
        try:
            await self.wait_for_version(tenant, row["session_id"], row["version"], timeout_s)
        except ProjectionBehindError as exc:
            exc.extra["wanted_position"] = position
            raise
