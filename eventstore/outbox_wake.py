"""Waking the relay after appends commit, outside their transactions.

Why: the outbox trigger's NOTIFY makes every appending transaction take PostgreSQL's one
notification-queue lock at commit and hold it through its WAL flush, so concurrent appends commit
one after the other (migration 0013 has the figures). A pool created with `DEFERRED` settings
sends no NOTIFY from its transactions; its `OutboxWake` sends them instead, after the commits.

Invariants:
- Every `poke()` (an append committed) is followed by a NOTIFY that starts after it: one at a time,
  at most one more queued however many pokes arrive meanwhile, and at least `min_gap_s` between
  two (under load the relay reads on its own window and needs no NOTIFY per append; an idle
  system's first append notifies at once).
- A NOTIFY that fails (the database away, the pool closing) is logged and not retried: the row is
  in the outbox and the relay's fallback poll (`poll_interval_ms`) finds it. Nothing is lost; an
  append never waits for or fails because of its wake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "agentlog_outbox"  # the outbox trigger's (migration 0001) and the wake's; outbox.relay listens on it
DEFERRED = {"agentlog.outbox_notify": "deferred"}
"""server_settings of a pool whose appends leave the NOTIFY to its OutboxWake (migration 0013)."""


class OutboxWake:
    def __init__(self, pool: asyncpg.Pool, *, min_gap_s: float = 0.005) -> None:
        self._pool = pool
        self._min_gap_s = min_gap_s
        self._pending = False
        self._last_started = -math.inf  # when the last NOTIFY began (the loop's clock), across tasks
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.sent = 0  # NOTIFYs sent (for tests and metrics)

    def poke(self) -> None:
        """An append committed: make sure a NOTIFY starts after this call."""
        if self._closed:
            return
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._notify_while_pending(), name="outbox-wake")

    async def _notify_while_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            # The gap counts from the previous NOTIFY, whichever task sent it: a poke that comes
            # just after a task ended waits it out too. Until it has passed by the loop's clock: a
            # timer may fire a little early (uvloop counts whole milliseconds), and the gap is a
            # lower bound. Pokes meanwhile merge into this NOTIFY.
            while (left := self._last_started + self._min_gap_s - loop.time()) > 0:
                await asyncio.sleep(left)
            self._pending = False
            self._last_started = loop.time()
            try:
                await self._pool.execute("SELECT pg_notify($1, '')", CHANNEL)
                self.sent += 1
            except Exception as exc:  # best effort by design: whatever failed, the rows are in the outbox
                log.warning("could not wake the relay (its fallback poll will find the rows): %r", exc)
                return

    async def aclose(self) -> None:
        """Send what is queued, then stop (before the pool closes)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
