"""The leader's drain of the outbox: read the oldest rows not yet sent, hand them to the producer,
delete them once Kafka acknowledged them; with adaptive batching. At least once, per-session order
kept.

Invariants:
- Every read returns the oldest rows in id order minus those sent and not yet deleted (never
  `id > last`), so a row that commits late with a lower id goes out before any later row of its
  session (outbox/rows.py).
- A row is deleted only after Kafka acknowledged it. A failure deletes nothing of the failed batch
  or of any batch sent after it; the next pass publishes again from the oldest undeleted row with
  a fresh producer, never partially, so a key is not reordered (duplicates are possible).
- Adaptive batching: a read is due when a pass starts (a NOTIFY, the poll interval, a retry),
  after a full read (a backlog: read on at once) and after an append notified (one read for all
  the NOTIFYs since the previous read). After a read that found several rows (load: appends came
  faster than a batch's round trip), the next due read starts once `batch_window_ms` passed since
  that read began, or `batch_window_rows` appends notified: rows gather into batches that grow with
  the load while the previous ones fly (up to `max_in_flight_batches`). After a read of nothing or
  of one row, or an idle spell longer than the window, the next row is read at once: an idle or
  slow system pays no window.
- Under load (`HEAVY_READS_TO_UNLISTEN`, 2, reads of several rows in a row) the relay stops
  listening (`UNLISTEN` on its listen connection): a read is then due at
  the end of every window whatever was notified, so the NOTIFYs (one per appending transaction,
  about 0.06 ms of relay + Postgres CPU each) would tell it nothing. Reads keep the window's pace;
  `LIGHT_READS_TO_LISTEN` (3) reads in a row that find nothing or a single row end the load: the
  relay listens again and, once LISTEN returned, reads once more, so a row committed before it
  listened is read by that read and any later one notifies. While
  not listening, `batch_window_rows` does not end a window (nothing is counted); `batch_size`
  still bounds a batch.
- Acknowledged rows are deleted by the next read's statement (one round trip for both), or when
  the pass ends; a batch with rows that can never be published is settled at once, its parking
  and deletion in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque

import asyncpg

from outbox import rows as outbox_rows
from outbox.metrics import RelayMetrics
from outbox.publisher import Publisher, PublishFailedError, SentBatch
from outbox.rows import OutboxRow
from outbox.settings import RelaySettings

log = logging.getLogger(__name__)
# Reads of nothing or one row in a row, one window apart, that end a load (the relay listens again):
# a short lull in a load costs a read per window instead of an UNLISTEN/LISTEN round trip pair each.
LIGHT_READS_TO_LISTEN = 3
# Reads of several rows in a row that make a load (the relay stops listening): one multi-event
# append at a low rate is not a load worth an UNLISTEN/LISTEN pair.
HEAVY_READS_TO_UNLISTEN = 2


def backoff_s(attempt: int, cap_ms: int) -> float:
    return min(cap_ms / 1000, 0.1 * 2 ** min(attempt, 16)) * random.uniform(0.8, 1.2)


async def wait_any(*events: asyncio.Event, timeout: float | None) -> bool:
    """Wait until one of `events` is set or `timeout` passes; True if one is set."""
    if any(e.is_set() for e in events):
        return True
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)


def _acked_or_late(batch: SentBatch) -> bool:
    """Every delivery result of `batch` is in, or its deadline passed (then waiting fails it)."""
    return all(f.done() for f in batch.futures) or asyncio.get_running_loop().time() >= batch.deadline


class Drain:
    """One leadership term's drain (`run` until stop or loss), fed by `notified` (the NOTIFY
    callback) and `kick` (a stop or a loss)."""

    def __init__(
        self,
        relay: RelaySettings,
        publisher: Publisher,
        metrics: RelayMetrics,
        instance_id: str,
        listener: asyncpg.Connection | None = None,
        channel: str = "",
    ) -> None:
        self.relay, self._publisher, self.metrics, self.instance_id = relay, publisher, metrics, instance_id
        # The connection LISTENing on `channel` (None: always listening, never toggled).
        self._listener, self._channel = listener, channel
        self.listening = True
        self._light_reads = 0  # reads of nothing or one row in a row while not listening
        self._heavy_reads = 0  # reads of several rows in a row
        self.failures = 0  # consecutive failed publications, for the backoff
        self._wake = asyncio.Event()  # an append notified since the last read
        self._enough = False  # `batch_window_rows` appends notified since the last read
        self._notified = 0
        self._read_began: float | None = None  # loop time the previous read that found rows (>1) began
        self._kick = asyncio.Event()  # something the pass waits for happened
        self._waiting_for_wake = False

    def notified(self, *_args: object) -> None:
        # One NOTIFY per appending transaction (a statement-level trigger on outbox): at least one
        # row each, so counting them tells when a full window's worth is waiting. A pass that waits
        # out a window is woken only once that many are there, not by every NOTIFY.
        self._wake.set()
        self._notified += 1
        if self._notified >= self.relay.batch_window_rows:
            self._enough = True
            self._kick.set()
        elif self._waiting_for_wake:
            self._kick.set()

    def kick(self, *_args: object) -> None:
        self._kick.set()

    async def run(self, conn: asyncpg.Connection, stop: asyncio.Event, lost: asyncio.Event) -> None:
        self._wake.set()  # a new leader reads what is already there
        while not (stop.is_set() or lost.is_set()):
            if not self._wake.is_set() and not self.failures:
                await wait_any(self._wake, stop, lost, timeout=self.relay.poll_interval_ms / 1000)
            await self.drain_pass(conn, stop, lost)

    def _window_over(self) -> bool:
        if self._read_began is None or self._enough:
            return True
        return asyncio.get_running_loop().time() >= self._read_began + self.relay.batch_window_ms / 1000

    async def drain_pass(self, conn: asyncpg.Connection, stop: asyncio.Event, lost: asyncio.Event) -> int:
        """Publish until nothing is in flight and no read is due; returns the rows removed."""
        in_flight: deque[SentBatch] = deque()
        acked: list[SentBatch] = []  # acknowledged, deleted by the next read or at the end
        removed, due, backlog = 0, True, False
        rows: list[OutboxRow] = []
        try:
            while True:
                self._kick.clear()  # whatever happens from here on wakes the wait below
                while in_flight and _acked_or_late(in_flight[0]):
                    acked.append(await self._publisher.wait(in_flight[0]))  # raises if it failed
                    in_flight.popleft()
                    self._observe_acked(acked[-1])
                    if acked[-1].unpublishable:
                        removed += await self._settle(conn, acked)
                due = due or self._wake.is_set() or not self.listening
                can_read = len(in_flight) < self.relay.max_in_flight_batches and not (stop.is_set() or lost.is_set())
                if can_read and due and (backlog or self._window_over()):
                    rows = await self._read(conn, in_flight, acked)
                    removed += self._count(acked)
                    due = backlog = len(rows) >= self.relay.batch_size  # full: more are waiting
                    if rows:
                        in_flight.append(await self._send(rows))
                        rows = []
                    continue
                if not in_flight and not (can_read and due):
                    removed += await self._settle(conn, acked)
                    self.failures = 0  # nothing left that failed: idle waits resume
                    return removed
                await self._wait(in_flight, can_read, due)
        except PublishFailedError as exc:
            removed += await self._settle(conn, acked)  # acknowledged before the failure
            kept = [batch.rows for batch in in_flight] + [rows]
            await self._back_off(exc, min(r[0].outbox_id for r in kept if r), stop, lost)
            return removed

    async def _read(
        self, conn: asyncpg.Connection, in_flight: deque[SentBatch], acked: list[SentBatch]
    ) -> list[OutboxRow]:
        # Cleared before the read: an append that commits after this point notifies again and
        # gets a read of its own; one that committed before is in this read.
        self._wake.clear()
        self._enough, self._notified = False, 0
        self._read_began = asyncio.get_running_loop().time()
        sent = [row.outbox_id for batch in in_flight for row in batch.rows]
        done = [outbox_id for batch in acked for outbox_id in batch.acked_ids]
        rows = await outbox_rows.delete_and_fetch(conn, done, self.relay.batch_size, exclude=sent)
        self._heavy_reads = self._heavy_reads + 1 if len(rows) >= 2 else 0
        if len(rows) >= 2:
            self._light_reads = 0
            if self.listening and self._heavy_reads >= HEAVY_READS_TO_UNLISTEN:
                await self._listen(False)  # load: a read is due every window, notified or not
        elif self.listening:
            # Nothing or a single row: no load worth gathering for (the first row after an idle
            # spell, or a trickle slower than a batch's round trip); the next row is read at once.
            self._read_began = None
        else:
            # Not listening, reads keep the window's pace; a few light ones in a row end the load.
            self._light_reads += 1
            if self._light_reads >= LIGHT_READS_TO_LISTEN:
                self._read_began = None
                await self._listen(True)
                self._wake.set()  # read once more: a row committed before LISTEN sent no NOTIFY to us
        return rows

    async def _listen(self, on: bool) -> None:
        if self._listener is None:
            return
        await self._listener.execute(f"{'LISTEN' if on else 'UNLISTEN'} {self._channel}")
        self.listening = on

    async def _send(self, rows: list[OutboxRow]) -> SentBatch:
        batch = await self._publisher.send(rows)
        for future in batch.futures:
            future.add_done_callback(self.kick)
        return batch

    async def _wait(self, in_flight: deque[SentBatch], can_read: bool, due: bool) -> None:
        """Until the oldest batch's acks are in (or its deadline), the window ends or enough
        appends notified (a read due), an append notifies (no read due), or a stop or a loss."""
        deadlines = [in_flight[0].deadline] if in_flight else []
        if can_read and due:
            deadlines.append((self._read_began or 0.0) + self.relay.batch_window_ms / 1000)
        self._waiting_for_wake = can_read and not due
        try:
            async with asyncio.timeout_at(min(deadlines) if deadlines else None):
                await self._kick.wait()
        except TimeoutError:
            pass
        finally:
            self._waiting_for_wake = False

    def _observe_acked(self, batch: SentBatch) -> None:
        """append -> Kafka of each record Kafka just acknowledged (from the event's recorded_at)."""
        wall = time.time()
        for row in batch.rows:
            self.metrics.append_to_kafka.observe(max(0.0, wall - row.event.recorded_at.timestamp()))

    def _count(self, batches: list[SentBatch]) -> int:
        """Metrics of batches whose rows were just deleted; returns their row count."""
        if not batches:
            return 0
        self.failures = 0
        now = time.perf_counter()
        for batch in batches:
            self.metrics.published.inc(len(batch.acked_ids))
            self.metrics.batch_rows.observe(len(batch.rows))
            self.metrics.batch_seconds.observe(now - batch.started)
        removed = sum(len(batch.rows) for batch in batches)
        batches.clear()
        return removed

    async def _settle(self, conn: asyncpg.Connection, batches: list[SentBatch]) -> int:
        """Delete the acknowledged rows of `batches` now and park their unpublishable ones, atomically."""
        if not batches:
            return 0
        done = [outbox_id for batch in batches for outbox_id in batch.acked_ids]
        unpublishable = [item for batch in batches for item in batch.unpublishable]
        if unpublishable:
            async with conn.transaction():
                for row, error in unpublishable:
                    await self._park(conn, row, error)
                await outbox_rows.delete_published(conn, done)
        else:
            await outbox_rows.delete_published(conn, done)  # one statement: atomic on its own
        return self._count(batches)

    async def _back_off(
        self, exc: PublishFailedError, first_kept: int, stop: asyncio.Event, lost: asyncio.Event
    ) -> None:
        self.failures += 1
        delay = backoff_s(self.failures, self.relay.retry_backoff_max_ms)
        self.metrics.errors.labels(type(exc.cause).__name__, str(exc.retriable).lower()).inc()
        log.log(
            logging.WARNING if exc.retriable else logging.ERROR,
            "relay %s: publishing outbox ids from %d failed (attempt %d, %s): %s; nothing from "
            "there on is deleted, publishing again from the oldest undeleted row in %.1fs",
            self.instance_id,
            first_kept,
            self.failures,
            "retriable" if exc.retriable else "NOT retriable",
            exc,
            delay,
        )
        await wait_any(stop, lost, timeout=delay)

    async def _park(self, conn: asyncpg.Connection, row: OutboxRow, error: str) -> None:
        event = row.event
        log.error(
            "relay %s: PARKED outbox id %d (tenant %s session %s version %d, event %s): %s; "
            "consumers will see a version gap for this session and read it from the event store",
            self.instance_id,
            row.outbox_id,
            event.tenant,
            event.session_id,
            event.version,
            event.event_id,
            error,
        )
        await outbox_rows.park(conn, row.outbox_id, error)
        self.metrics.parked.inc()
