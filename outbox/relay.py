"""The outbox relay: publishes outbox rows to the session-keyed Kafka topic in id order and deletes
a row only after Kafka acknowledged it; at least once, per-session order kept.

Life cycle: standby until the advisory lock is ours (outbox/leadership.py), then lead: wake on
NOTIFY 'agentlog_outbox' (dedicated connection) or every poll interval, then drain in passes: read
the oldest rows not yet sent, hand them to the producer (outbox/publisher.py), and while up to
`max_in_flight_batches` batches await their acks read and send the next; once the oldest batches
are acknowledged, delete their rows in one statement. A failure deletes nothing of the failed batch
or of any batch after it; the next pass publishes again from the oldest undeleted row with a new
producer, never partially, so a key is not reordered.

Adaptive batching: the first read after an idle spell is immediate. While appends keep notifying,
the next read waits until `batch_window_ms` after the previous one began (or until
`batch_window_rows` appends notified), so batches grow with the load and each row pays less of a
batch's fixed cost (read, send, acks, delete); notifications during a batch coalesce into one read.

Lock lost while a batch is in flight: the batch's records may still land and this relay may still
delete their rows after the acks; meanwhile the new leader can read and publish the same rows
again. Consumers see those records twice, each key's first copies in version order (both relays
publish from the lowest undeleted row); at least once, and consumers deduplicate by
(session, version) or event id.

Faults never end `run`: Postgres errors -> step down, reconnect with backoff; Kafka errors -> retry
the batch with backoff while the backlog grows. Only an unsafe topic or a schema that is behind
stop the relay (TopicConfigError, SchemaBehindError), loudly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable
from contextlib import AsyncExitStack, suppress

import asyncpg
from aiokafka.errors import KafkaError

from eventstore import db
from eventstore.migrations import ensure_schema_current
from eventstore.settings import Settings
from outbox import rows as outbox_rows
from outbox.leadership import LeaderLock
from outbox.metrics import RelayMetrics
from outbox.publisher import Publisher, PublishFailedError, SentBatch
from outbox.rows import OutboxRow
from outbox.settings import RelaySettings
from outbox.topics import ensure_topic

log = logging.getLogger(__name__)
CHANNEL = "agentlog_outbox"
POSTGRES_ERRORS = db.CONNECTION_ERRORS


class LeadershipLostError(Exception):
    pass


# A reason to start the session over with a new connection, never to stop the relay.
RECONNECT_ERRORS: tuple[type[Exception], ...] = (*POSTGRES_ERRORS, LeadershipLostError)
CANCEL_ERRORS: tuple[type[BaseException], ...] = (asyncio.CancelledError, *POSTGRES_ERRORS)


def backoff_s(attempt: int, cap_ms: int) -> float:
    return min(cap_ms / 1000, 0.1 * 2 ** min(attempt, 16)) * random.uniform(0.8, 1.2)


async def _wait_any(*events: asyncio.Event, timeout: float) -> bool:
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


async def _first_of(awaitables: list[Awaitable[object]], timeout: float | None) -> None:
    """Wait until the first of `awaitables` completes or `timeout` passes; cancels the rest
    (cancelling an `asyncio.wait` leaves the futures it watched alone)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _succeeded(future: asyncio.Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _acked_or_late(batch: SentBatch) -> bool:
    """Every delivery result of `batch` is in, or its deadline passed (then waiting fails it)."""
    return all(f.done() for f in batch.futures) or asyncio.get_running_loop().time() >= batch.deadline


class _Gathering:
    """When the next read of a drain pass may start: at once for the pass's first read and after
    a full read (a backlog), otherwise once an append notified and the window since the previous
    read began is over or enough appends notified."""

    def __init__(self, relay: RelaySettings) -> None:
        self.window_s = relay.batch_window_ms / 1000
        self.began: float | None = None  # loop time the pass's previous read began
        self.full = False  # the previous read came back with a whole batch

    @property
    def window_end(self) -> float:
        return (self.began or 0.0) + self.window_s

    def read_now(self, notified: bool, enough: bool) -> bool:
        if self.began is None or self.full:
            return True
        return notified and (enough or asyncio.get_running_loop().time() >= self.window_end)


class Relay:
    """One relay process (leader or standby). Use `async with Relay(...) as relay: await relay.run(stop)`."""

    def __init__(self, settings: Settings, relay: RelaySettings, *, instance_id: str | None = None) -> None:
        self.settings, self.relay = settings, relay
        self.instance_id = instance_id or f"relay-{uuid.uuid4().hex[:12]}"
        self.metrics = RelayMetrics()
        self.is_leader = False
        self._publisher = Publisher(
            settings.kafka_bootstrap_servers, settings.kafka_topic, relay, client_id=self.instance_id
        )
        self._wake = asyncio.Event()  # an append notified since the last read
        self._enough = asyncio.Event()  # `batch_window_rows` appends notified since the last read
        self._notified = 0
        self._lost = asyncio.Event()
        self._failures = 0  # consecutive failed publications, for the backoff

    async def __aenter__(self) -> Relay:
        if self.relay.metrics_port is not None:
            self.metrics.serve(self.relay.metrics_port, self.relay.metrics_host)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._publisher.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set. Survives Postgres and Kafka outages."""
        await self._check_topic(stop)
        attempt = 0
        while not stop.is_set():
            try:
                await self._run_session(stop)
                attempt = 0
            except RECONNECT_ERRORS as exc:
                attempt += 1
                delay = backoff_s(attempt, self.relay.retry_backoff_max_ms)
                log.info(
                    "relay %s: reconnecting to Postgres in %.1fs (%s: %s)",
                    self.instance_id,
                    delay,
                    type(exc).__name__,
                    exc,
                )
                await _wait_any(stop, timeout=delay)
        log.info("relay %s stopped", self.instance_id)

    async def _check_topic(self, stop: asyncio.Event) -> None:
        if not self.relay.check_topic:
            return
        attempt = 0
        while not stop.is_set():
            try:
                await ensure_topic(
                    self.settings.kafka_bootstrap_servers,
                    self.settings.kafka_topic,
                    self.settings.kafka_partitions,
                    self.relay,
                )
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                attempt += 1
                delay = backoff_s(attempt, self.relay.retry_backoff_max_ms)
                log.warning(
                    "relay %s: Kafka unavailable for the topic check, retrying in %.1fs: %r",
                    self.instance_id,
                    delay,
                    exc,
                )
                await _wait_any(stop, timeout=delay)

    async def _run_session(self, stop: asyncio.Event) -> None:
        """One Postgres session: standby until the lock is ours, then lead until stop or loss."""
        async with LeaderLock(
            self.settings.dsn(),
            self.relay.lock_key,
            self.instance_id,
            check_timeout_s=self.relay.lock_check_timeout_ms / 1000,
        ) as lock:
            await ensure_schema_current(lock.conn)
            if not await self._await_leadership(lock, stop):
                return
            log.info(
                "relay %s is now the LEADER: publishing outbox to topic %s", self.instance_id, self.settings.kafka_topic
            )
            self.is_leader = True
            self.metrics.leader.set(1)
            try:
                await self._lead(lock, stop)
            finally:
                self.is_leader = False
                self.metrics.leader.set(0)

    async def _await_leadership(self, lock: LeaderLock, stop: asyncio.Event) -> bool:
        announced = False
        while not stop.is_set():
            if await lock.try_acquire():
                return True
            if not announced:
                log.info(
                    "relay %s is STANDBY: another relay holds the leader lock; retrying every %d ms",
                    self.instance_id,
                    self.relay.standby_retry_ms,
                )
                announced = True
            await _wait_any(stop, timeout=self.relay.standby_retry_ms / 1000)
        return False

    async def _lead(self, lock: LeaderLock, stop: asyncio.Event) -> None:
        self._lost.clear()
        async with AsyncExitStack() as stack:
            # synchronous_commit off: a delete lost to a server crash only republishes its rows (at
            # least once; consumers deduplicate), and no batch waits for a WAL flush.
            pool = await db.create_pool(
                self.settings.dsn(),
                min_size=1,
                max_size=2,
                server_settings={"synchronous_commit": "off", "application_name": "agentlog-relay"},
            )
            stack.push_async_callback(pool.close)
            listener = await db.connect(
                self.settings.dsn(), server_settings={"application_name": "agentlog-relay-listen"}
            )
            stack.push_async_callback(self._close_listener, listener)
            await listener.add_listener(CHANNEL, self._on_notify)
            watchdog = asyncio.create_task(self._watch(lock, pool, stop), name="relay-watchdog")
            stack.push_async_callback(self._cancel, watchdog)
            await self._drain_loop(pool, stop)
        if self._lost.is_set() and not stop.is_set():
            raise LeadershipLostError("the leader lock connection was lost; stepping down")

    async def _drain_loop(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        self._wake.set()  # a new leader reads what is already there
        while not (stop.is_set() or self._lost.is_set()):
            if not self._wake.is_set() and not self._failures:
                await _wait_any(self._wake, stop, self._lost, timeout=self.relay.poll_interval_ms / 1000)
            await self.drain_pass(pool, stop)

    async def drain_pass(self, pool: asyncpg.Pool, stop: asyncio.Event) -> int:
        """Publish until nothing is in flight and no append notified since the last read; returns
        rows removed.

        The first read is at once (the first event after an idle spell goes out without delay).
        The pass reads again right away while reads come back full (a backlog), and otherwise
        only after an append notified (coalesced: one read for every NOTIFY since the previous
        read), and no sooner than `batch_window_ms` after the previous read began unless
        `batch_window_rows` appends notified: under load, rows gather into larger batches while
        the previous ones fly. Pipelined: up to `max_in_flight_batches` batches await their acks
        while the next is gathered, read and sent; acknowledged batches are deleted as they come
        back. Each read is again the oldest rows, minus those sent and not yet deleted, so a row
        that commits late with a lower id goes out before any later row of its session.
        """
        in_flight: deque[SentBatch] = deque()
        gather = _Gathering(self.relay)
        removed = 0
        rows: list[OutboxRow] = []
        try:
            async with pool.acquire() as conn:
                while True:
                    if in_flight and _acked_or_late(in_flight[0]):
                        removed += await self._complete(conn, await self._acked_front(in_flight))
                        continue
                    can_read = len(in_flight) < self.relay.max_in_flight_batches and not (
                        stop.is_set() or self._lost.is_set()
                    )
                    if can_read and gather.read_now(self._wake.is_set(), self._enough.is_set()):
                        rows = await self._read(conn, in_flight, gather)
                        if rows:
                            in_flight.append(await self._publisher.send(rows))
                            rows = []
                        continue
                    if not in_flight and not (can_read and self._wake.is_set()):
                        self._failures = 0  # nothing left that failed: idle waits resume
                        return removed
                    await self._wait_for_work(in_flight, gather if can_read else None, stop)
        except PublishFailedError as exc:
            # Nothing of the failed batch or of any batch sent after it is deleted; the next pass
            # publishes again from the oldest undeleted row with a fresh producer.
            kept = [batch.rows for batch in in_flight] + [rows]
            await self._back_off(exc, min(r[0].outbox_id for r in kept if r), stop)
            return removed

    async def _read(self, conn: asyncpg.Connection, in_flight: deque[SentBatch], gather: _Gathering) -> list[OutboxRow]:
        # Cleared before the read: an append that commits after this point notifies again and
        # gets a read of its own; one that committed before is in this read.
        self._wake.clear()
        self._enough.clear()
        self._notified = 0
        gather.began = asyncio.get_running_loop().time()
        sent = [row.outbox_id for batch in in_flight for row in batch.rows]
        rows = await outbox_rows.fetch_batch(conn, self.relay.batch_size, exclude=sent)
        gather.full = len(rows) >= self.relay.batch_size
        return rows

    async def _wait_for_work(self, in_flight: deque[SentBatch], gather: _Gathering | None, stop: asyncio.Event) -> None:
        """Until the oldest batch's acks are in (or its deadline passed), or, when a read may
        follow, the gathering window ends or enough appends notified, or a stop or a loss."""
        loop = asyncio.get_running_loop()
        # A stop or loss already set only ends the reading: the batches in flight are still awaited.
        waits: list[Awaitable[object]] = [e.wait() for e in (stop, self._lost) if not e.is_set()]
        deadlines = []
        if in_flight:
            waits.append(asyncio.wait(in_flight[0].futures))
            deadlines.append(in_flight[0].deadline)
        if gather is not None:
            if self._wake.is_set():
                waits.append(self._enough.wait())
                deadlines.append(gather.window_end)
            else:
                waits.append(self._wake.wait())
        await _first_of(waits, timeout=max(0.0, min(deadlines) - loop.time()) if deadlines else None)

    async def _acked_front(self, in_flight: deque[SentBatch]) -> list[SentBatch]:
        """The oldest batch once acknowledged, with the acknowledged ones right behind it (one
        delete for all); raises PublishFailedError, removing nothing from `in_flight`, if the
        oldest failed. A failed batch behind it stays at the front for the next call."""
        done = [await self._publisher.wait(in_flight[0])]
        in_flight.popleft()
        while in_flight and all(_succeeded(f) for f in in_flight[0].futures):
            done.append(await self._publisher.wait(in_flight.popleft()))
        return done

    async def _complete(self, conn: asyncpg.Connection, batches: list[SentBatch]) -> int:
        """Kafka acknowledged `batches`: park their unpublishable rows and delete the rest, atomically."""
        acked = [outbox_id for batch in batches for outbox_id in batch.acked_ids]
        unpublishable = [item for batch in batches for item in batch.unpublishable]
        if unpublishable:
            async with conn.transaction():
                for row, error in unpublishable:
                    await self._park(conn, row, error)
                await outbox_rows.delete_published(conn, acked)
        else:
            await outbox_rows.delete_published(conn, acked)  # one statement: atomic on its own
        self._failures = 0
        self.metrics.published.inc(len(acked))
        now = time.perf_counter()
        for batch in batches:
            self.metrics.batch_rows.observe(len(batch.rows))
            self.metrics.batch_seconds.observe(now - batch.started)
        return sum(len(batch.rows) for batch in batches)

    async def _back_off(self, exc: PublishFailedError, first_kept: int, stop: asyncio.Event) -> None:
        self._failures += 1
        delay = backoff_s(self._failures, self.relay.retry_backoff_max_ms)
        self.metrics.errors.labels(type(exc.cause).__name__, str(exc.retriable).lower()).inc()
        log.log(
            logging.WARNING if exc.retriable else logging.ERROR,
            "relay %s: publishing outbox ids from %d failed (attempt %d, %s): %s; nothing from "
            "there on is deleted, publishing again from the oldest undeleted row in %.1fs",
            self.instance_id,
            first_kept,
            self._failures,
            "retriable" if exc.retriable else "NOT retriable",
            exc,
            delay,
        )
        await _wait_any(stop, self._lost, timeout=delay)

    async def _park(self, conn: asyncpg.Connection, row, error: str) -> None:
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

    async def _watch(self, lock: LeaderLock, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Checks the lock connection every heartbeat and refreshes the backlog gauges."""
        next_refresh = 0.0
        while not stop.is_set():
            if not await lock.check():
                log.warning("relay %s lost its leader lock connection: stops publishing", self.instance_id)
                self._lost.set()
                return
            if time.monotonic() >= next_refresh:
                await self._refresh_backlog(pool)
                next_refresh = time.monotonic() + self.relay.metrics_refresh_ms / 1000
            await _wait_any(stop, timeout=self.relay.heartbeat_ms / 1000)

    async def _refresh_backlog(self, pool: asyncpg.Pool) -> None:
        try:
            async with pool.acquire(timeout=2) as conn:
                size, age = await outbox_rows.backlog(conn)
        except POSTGRES_ERRORS:
            return  # the drain loop surfaces Postgres outages
        self.metrics.backlog.set(size)
        self.metrics.oldest_age.set(age)

    def _on_notify(self, *_args) -> None:
        # One NOTIFY per appending transaction (a statement-level trigger on outbox): at least one
        # row each, so counting them tells when a full gathering window's worth is waiting.
        self._wake.set()
        self._notified += 1
        if self._notified >= self.relay.batch_window_rows:
            self._enough.set()

    async def _close_listener(self, listener: asyncpg.Connection) -> None:
        listener.terminate()

    @staticmethod
    async def _cancel(task: asyncio.Task) -> None:
        task.cancel()
        with suppress(*CANCEL_ERRORS):
            await task


async def run_relay(settings: Settings, relay_settings: RelaySettings, stop: asyncio.Event) -> None:
    """Entry point of `agentlog relay`: relay until `stop` is set (Ctrl-C / SIGTERM handler)."""
    async with Relay(settings, relay_settings) as relay:
        await relay.run(stop)
