"""The outbox relay: publishes outbox rows to the session-keyed Kafka topic in id order and deletes
a row only after Kafka acknowledged it; at least once, per-session order kept.

Life cycle: standby until the advisory lock is ours (outbox/leadership.py), then lead: NOTIFY
'agentlog_outbox' (on a dedicated connection) and the poll interval feed the drain
(outbox/drain.py: ordered reads, pipelined sends, delete after ack, adaptive batching), which runs
on one connection of its own for the whole leadership term.

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
import time
import uuid
from contextlib import AsyncExitStack, suppress

import asyncpg
from aiokafka.errors import KafkaError

from agentlog import telemetry
from eventstore import db
from eventstore.migrations import ensure_schema_current
from eventstore.outbox_wake import CHANNEL  # the trigger's and the wake's channel
from eventstore.settings import Settings
from outbox import rows as outbox_rows
from outbox.drain import Drain, backoff_s, wait_any
from outbox.leadership import LeaderLock
from outbox.metrics import RelayMetrics
from outbox.publisher import Publisher
from outbox.settings import RelaySettings
from outbox.topics import ensure_topic

log = logging.getLogger(__name__)
POSTGRES_ERRORS = db.CONNECTION_ERRORS


class LeadershipLostError(Exception):
    pass


# A reason to start the session over with a new connection, never to stop the relay.
RECONNECT_ERRORS: tuple[type[Exception], ...] = (*POSTGRES_ERRORS, LeadershipLostError)
CANCEL_ERRORS: tuple[type[BaseException], ...] = (asyncio.CancelledError, *POSTGRES_ERRORS)


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
        self._lost = asyncio.Event()
        self._drain: Drain | None = None  # the current leadership term's

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
                await wait_any(stop, timeout=delay)
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
                await wait_any(stop, timeout=delay)

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
            await wait_any(stop, timeout=self.relay.standby_retry_ms / 1000)
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
            # One connection for the whole term: no pool checkout (and reset) per statement.
            conn = await stack.enter_async_context(pool.acquire())
            listener = await db.connect(
                self.settings.dsn(), server_settings={"application_name": "agentlog-relay-listen"}
            )
            stack.push_async_callback(self._close_listener, listener)
            self._drain = Drain(self.relay, self._publisher, self.metrics, self.instance_id, listener, CHANNEL)
            await listener.add_listener(CHANNEL, self._drain.notified)
            watchdog = asyncio.create_task(self._watch(lock, pool, stop), name="relay-watchdog")
            stack.push_async_callback(self._cancel, watchdog)
            await self._drain.run(conn, stop, self._lost)
        if self._lost.is_set() and not stop.is_set():
            raise LeadershipLostError("the leader lock connection was lost; stepping down")

    async def _watch(self, lock: LeaderLock, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Checks the lock connection every heartbeat and refreshes the backlog gauges."""
        next_refresh = 0.0
        while not stop.is_set():
            if not await lock.check():
                log.warning("relay %s lost its leader lock connection: stops publishing", self.instance_id)
                self._lost.set()
                if self._drain is not None:
                    self._drain.kick()  # stop reading now, not at the end of a gathering window
                return
            if time.monotonic() >= next_refresh:
                await self._refresh_backlog(pool)
                next_refresh = time.monotonic() + self.relay.metrics_refresh_ms / 1000
            await wait_any(stop, timeout=self.relay.heartbeat_ms / 1000)

    async def _refresh_backlog(self, pool: asyncpg.Pool) -> None:
        try:
            async with pool.acquire(timeout=2) as conn:
                size, age = await outbox_rows.backlog(conn)
        except POSTGRES_ERRORS:
            return  # the drain loop surfaces Postgres outages
        self.metrics.backlog.set(size)
        self.metrics.oldest_age.set(age)

    async def _close_listener(self, listener: asyncpg.Connection) -> None:
        listener.terminate()

    @staticmethod
    async def _cancel(task: asyncio.Task) -> None:
        task.cancel()
        with suppress(*CANCEL_ERRORS):
            await task


async def run_relay(settings: Settings, relay_settings: RelaySettings, stop: asyncio.Event) -> None:
    """Entry point of `agentlog relay`: relay until `stop` is set (Ctrl-C / SIGTERM handler)."""
    telemetry.configure("agentlog-relay")
    async with Relay(settings, relay_settings) as relay:
        await relay.run(stop)
