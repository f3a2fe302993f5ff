"""Relay leadership: one publisher per database, held as a session-level Postgres advisory lock on
a dedicated connection, so the lock dies with the leader's process or connection.

Invariant: a relay publishes only while `LeaderLock.check()` keeps succeeding on the connection
that took the lock; when that connection is gone the lock may already belong to a standby, so the
leader stops publishing. `relay_instances` only reports roles (for `agentlog status`); the lock is
the authority.
"""

from __future__ import annotations

import asyncio
import os
import socket

import asyncpg

from eventstore import db

HEARTBEAT = """
INSERT INTO relay_instances (instance_id, hostname, pid, role)
VALUES ($1, $2, $3, $4)
ON CONFLICT (instance_id) DO UPDATE SET role = EXCLUDED.role, heartbeat_at = now()
"""
# Rows of leaders that died without cleaning up; only the lock holder may say who leads.
DEMOTE_OTHERS = "UPDATE relay_instances SET role = 'standby' WHERE role = 'leader' AND instance_id <> $1"
FORGET_STALE = "DELETE FROM relay_instances WHERE heartbeat_at < now() - interval '1 hour'"
FORGET_SELF = "DELETE FROM relay_instances WHERE instance_id = $1"


class LeaderLock:
    """Owns the lock connection. `async with` opens it; leaving closes it (releasing the lock)."""

    def __init__(self, dsn: str, key: int, instance_id: str, check_timeout_s: float = 2.0) -> None:
        self._dsn, self._key, self.instance_id = dsn, key, instance_id
        self._check_timeout_s = check_timeout_s
        self._conn: asyncpg.Connection | None = None
        self.held = False

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None, "LeaderLock used outside `async with`"
        return self._conn

    async def __aenter__(self) -> LeaderLock:
        # The heartbeat row is informational (the lock is the authority), so its commit need not wait
        # for a WAL flush: on a loaded machine a flush can outlast the check timeout and make a
        # healthy leader step down.
        self._conn = await db.connect(
            self._dsn, server_settings={"application_name": "agentlog-relay-lock", "synchronous_commit": "off"}
        )
        return self

    async def __aexit__(self, *exc_info) -> None:
        conn, self._conn, self.held = self._conn, None, False
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.execute(FORGET_SELF, self.instance_id), self._check_timeout_s)
        except (asyncpg.PostgresError, *db.CONNECTION_ERRORS):
            pass  # the row goes stale and is reported as such
        finally:
            conn.terminate()

    async def try_acquire(self) -> bool:
        """Take the lock if free; records this instance's role either way."""
        self.held = await self.conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key)
        await self._record("leader" if self.held else "standby")
        if self.held:
            await self.conn.execute(DEMOTE_OTHERS, self.instance_id)
            await self.conn.execute(FORGET_STALE)
        return self.held

    async def check(self) -> bool:
        """True while the lock connection answers (so the lock is still ours); records a heartbeat."""
        if self._conn is None or self._conn.is_closed():
            self.held = False
            return False
        try:
            await asyncio.wait_for(self._record("leader"), self._check_timeout_s)
        except (asyncpg.PostgresError, *db.CONNECTION_ERRORS):
            self.held = False
            self._conn.terminate()
        return self.held

    async def _record(self, role: str) -> None:
        await self.conn.execute(HEARTBEAT, self.instance_id, socket.gethostname(), os.getpid(), role)
