"""The outbox relay: publishes outbox rows to the session-keyed Kafka topic in id order and deletes
a row only after Kafka acknowledged it; at least once, per-session order kept.

Life cycle: standby until the advisory lock is ours (outbox/leadership.py), then lead: wake on
NOTIFY 'agentlog_outbox' (dedicated connection) or every poll interval, then drain in passes: read
the oldest rows not yet sent, hand them to the producer (outbox/publisher.py), and while up to
`max_in_flight_batches` batches await their acks read and send the next; once the oldest batch is
acknowledged, delete its rows in one statement. A failure deletes nothing of the failed batch or
of any batch after it; the next pass publishes again from the oldest undeleted row with a new
producer, never partially, so a key is not reordered.

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
        self._wake = asyncio.Event()
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
            pool = await db.create_pool(self.settings.dsn(), min_size=1, max_size=2)
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
        while not (stop.is_set() or self._lost.is_set()):
            self._wake.clear()
            if await self.drain_pass(pool, stop) == 0 and not self._failures:
                await _wait_any(self._wake, stop, self._lost, timeout=self.relay.poll_interval_ms / 1000)

    async def drain_pass(self, pool: asyncpg.Pool, stop: asyncio.Event) -> int:
        """Publish from the oldest undeleted row until the outbox is empty; returns rows removed.

        Pipelined: the next batch is read and sent while earlier ones await their acks. Each read
        is again the oldest rows, minus those already sent and not yet deleted, so a row that
        commits late with a lower id goes out before any later row of its session.
        """
        in_flight: deque[SentBatch] = deque()
        removed = 0
        try:
            while True:
                rows = await self._next_rows(pool, in_flight, stop)
                if rows:
                    in_flight.append(await self._publisher.send(rows))
                if not in_flight:
                    self._failures = 0  # nothing left that failed: idle waits resume
                    return removed
                if not rows or len(in_flight) >= self.relay.max_in_flight_batches:
                    removed += await self._complete(pool, await self._publisher.wait(in_flight[0]))
                    in_flight.popleft()
        except PublishFailedError as exc:
            # Nothing of the failed batch or of any batch sent after it is deleted; the next pass
            # publishes again from the oldest undeleted row with a fresh producer.
            kept = [batch.rows for batch in in_flight] + [rows]
            await self._back_off(exc, min(r[0].outbox_id for r in kept if r), stop)
            return removed

    async def _next_rows(self, pool: asyncpg.Pool, in_flight: deque[SentBatch], stop: asyncio.Event) -> list[OutboxRow]:
        if stop.is_set() or self._lost.is_set():
            return []  # finish what is in flight, read nothing new
        sent = [row.outbox_id for batch in in_flight for row in batch.rows]
        async with pool.acquire() as conn:
            return await outbox_rows.fetch_batch(conn, self.relay.batch_size, exclude=sent)

    async def _complete(self, pool: asyncpg.Pool, batch: SentBatch) -> int:
        """Kafka acknowledged `batch`: park its unpublishable rows and delete the rest, atomically."""
        async with pool.acquire() as conn, conn.transaction():
            for row, error in batch.unpublishable:
                await self._park(conn, row, error)
            await outbox_rows.delete_published(conn, batch.acked_ids)
        self._failures = 0
        self.metrics.published.inc(len(batch.acked_ids))
        self.metrics.batch_seconds.observe(time.perf_counter() - batch.started)
        return len(batch.rows)

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
        self._wake.set()

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
