"""A bounded wait for a pool connection: no request waits longer than `acquire_timeout_s` for one.

Invariant: every acquire of a pool passed through `bound_acquire` (including the implicit ones of
pool.fetch/fetchrow/execute) times out after the setting unless the caller gives its own timeout;
the TimeoutError it raises is one of eventstore.db.CONNECTION_ERRORS, answered 503
`infrastructure_unavailable` with Retry-After by agentlog.edge.problems, never 500.
"""

from __future__ import annotations

import asyncpg


class _BoundedPool(asyncpg.Pool):
    __slots__ = ()  # same layout as asyncpg.Pool, so an open pool can take this class
    acquire_timeout_s: float = 2.0

    def acquire(self, *, timeout: float | None = None):
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)


def bound_acquire(pool: asyncpg.Pool, acquire_timeout_s: float) -> asyncpg.Pool:
    """Make `pool` wait at most `acquire_timeout_s` for a connection (returns the same pool)."""
    # asyncpg.create_pool takes no pool class, hence a per-setting subclass swapped in.
    pool.__class__ = type("BoundedPool", (_BoundedPool,), {"__slots__": (), "acquire_timeout_s": acquire_timeout_s})
    return pool
