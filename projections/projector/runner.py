"""The projector: a Kafka consumer group whose every batch is applied to the read models in one
Postgres transaction together with the consumer positions (projections/projector/checkpoints.py).

Invariants:
- Positions live in Postgres, not in Kafka: on assignment the consumer seeks to the stored offsets;
  Kafka commits are informational only (lag tools). A crash anywhere leaves either the whole
  batch and its positions, or neither.
- A batch is applied only for partitions this instance owns, under a lock that a revocation waits
  for, so a partition is never handed over with a batch of it half done.
- If the stored positions moved under it (another instance took the partition), the batch is
  rolled back and the consumer re-seeks; the version guard in applier.py makes any overlap
  harmless anyway.
- A lost Postgres (or Kafka) connection on any path (a batch, the seek of a new assignment, the
  re-seek after a failure) is answered the same way: the partitions it touched are marked
  "unseeked" (paused, nothing of them applied), and the loop retries their seek with a growing
  backoff on a fresh pooled connection until it succeeds or the projector is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from agentlog import telemetry
from agentlog.telemetry import TRACING
from eventstore import db
from eventstore.envelope import RecordedEvent, from_envelope
from eventstore.migrations import ensure_schema_current
from eventstore.settings import Settings
from projections.projector import checkpoints
from projections.projector.applier import BatchApplier, BatchResult, FastPathFailedError
from projections.projector.metrics import ProjectorMetrics
from projections.projector.snapshots import SnapshotWriter
from projections.read_models.catalog import PROJECTIONS
from projections.read_models.projection import Projection
from projections.settings import ProjectorSettings

log = logging.getLogger(__name__)
RETRY_BACKOFF_S = 1.0
MAX_RETRY_BACKOFF_S = 5.0
# What a batch, a seek or a claim may raise that retrying from the stored positions answers.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *db.CONNECTION_ERRORS, KafkaError)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    async def on_partitions_revoked(self, revoked) -> None:
        await self._projector.release(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        await self._projector.claim(assigned)


class Projector:
    """Owns one consumer and applies what it fetches; `run` until `stop` is set."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap: str,
        topic: str,
        settings: ProjectorSettings,
        projections: Sequence[Projection] = PROJECTIONS,
        instance_id: str | None = None,
    ) -> None:
        self._pool = pool
        self._bootstrap = bootstrap
        self._topic = topic
        self._settings = settings
        self._group = settings.group_id
        self.instance_id = instance_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._applier = BatchApplier(projections, settings.group_id, settings.max_retries)
        self._consumer: AIOKafkaConsumer | None = None
        self._expected: dict[TopicPartition, int] = {}
        # Owned partitions whose stored positions must be read again before anything of them is
        # applied (a failed batch or a seek that could not reach Postgres); paused meanwhile.
        self._unseeked: set[TopicPartition] = set()
        self._lock = asyncio.Lock()
        self._last_kafka_commit = 0.0
        # Loop time the previous batch of several records was taken (None: none, or a single one).
        self._previous_take: float | None = None
        self.totals = BatchResult()
        self.metrics = ProjectorMetrics()
        self.snapshots = SnapshotWriter(pool, settings.snapshot_every, settings.snapshot_share)
        self.metrics.watch_snapshots(self.snapshots)

    @property
    def _kafka(self) -> AIOKafkaConsumer:
        """The consumer, once `_consume` created it (every other method runs after that)."""
        assert self._consumer is not None, "the consumer is created when the projector runs"
        return self._consumer

    @property
    def assigned(self) -> list[int]:
        """Partitions this instance owns right now (for status and tests)."""
        return sorted(tp.partition for tp in self._expected)

    async def run(self, stop: asyncio.Event) -> None:
        if self._settings.metrics_port is not None:
            self.metrics.serve(self._settings.metrics_port, self._settings.metrics_host)
        try:
            await self._consume(stop)
        finally:
            await self.snapshots.aclose()
            await asyncio.to_thread(self.metrics.close)

    async def _consume(self, stop: asyncio.Event) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._settings.session_timeout_ms,
            heartbeat_interval_ms=self._settings.heartbeat_interval_ms,
            fetch_min_bytes=self._settings.fetch_min_bytes,
            fetch_max_wait_ms=self._settings.fetch_max_wait_ms,
            client_id=f"agentlog-projector-{self.instance_id}",
        )
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        await self._consumer.start()
        log.info("projector %s consuming %s as %s", self.instance_id, self._topic, self._group)
        backoff = RETRY_BACKOFF_S
        try:
            while not stop.is_set():
                try:
                    await self._seek_unseeked()
                    await self.poll_once()
                    backoff = RETRY_BACKOFF_S
                except RETRYABLE_ERRORS as exc:
                    self.metrics.retries.inc()
                    log.warning(
                        "projector batch failed, retrying from the stored positions in %.1f s: %r", backoff, exc
                    )
                    async with self._lock:
                        self._mark_unseeked(list(self._expected))
                    await _wait(stop, backoff)
                    backoff = min(backoff * 2, MAX_RETRY_BACKOFF_S)
        finally:
            await self._consumer.stop()

    def _mark_unseeked(self, partitions: list[TopicPartition]) -> None:
        """Stop applying (and fetching) these partitions until their stored positions are read."""
        mine = [tp for tp in partitions if tp in self._expected]
        self._unseeked.update(mine)
        if mine:
            self._kafka.pause(*mine)

    async def _seek_unseeked(self) -> None:
        """Seek the unseeked partitions to their stored positions; raises while Postgres is away."""
        if not self._unseeked:
            return
        async with self._lock:
            pending = [tp for tp in self._unseeked if tp in self._expected]
            self._unseeked.clear()
            try:
                await self._seek_to_stored(pending)
            except BaseException:
                self._unseeked.update(pending)
                raise
            self._kafka.resume(*pending)
            log.info(
                "projector %s re-seeked %s to the stored positions",
                self.instance_id,
                sorted(tp.partition for tp in pending),
            )

    async def poll_once(self) -> None:
        batch = await self._kafka.getmany(
            timeout_ms=self._settings.fetch_timeout_ms, max_records=self._settings.batch_size
        )
        if batch:
            if self._previous_take is not None:
                batch = await self._gather(batch, self._previous_take + self._settings.batch_window_ms / 1000)
            # A single record opens no window: a trickle slower than a transaction is applied
            # record by record without waiting; from two on, the next batch gathers.
            several = sum(len(records) for records in batch.values()) > 1
            self._previous_take = asyncio.get_running_loop().time() if several else None
            await self._process(batch)
            await self._commit_to_kafka()
        self._measure_behind()

    async def _gather(self, batch: dict, until: float) -> dict:
        """Under load, fetch on until `until` (the window after the previous batch was taken) or
        a full batch, so a transaction applies what arrived meanwhile rather than a record or two;
        a record that comes after a single-record batch, or after an idle spell longer than the
        window, is applied at once.

        Each partition's records stay contiguous: if the consumer was re-seeked in between (a
        rebalance), the records fetched after the seek replace those fetched before it.
        """
        loop = asyncio.get_running_loop()
        count = sum(len(records) for records in batch.values())
        while count < self._settings.batch_size and (remaining := until - loop.time()) > 0:
            more = await self._kafka.getmany(
                timeout_ms=max(1, int(remaining * 1000)), max_records=self._settings.batch_size - count
            )
            if not more:
                break
            for tp, records in more.items():
                earlier = batch.get(tp)
                if earlier and records[0].offset == earlier[-1].offset + 1:
                    earlier.extend(records)
                else:
                    batch[tp] = list(records)
            count = sum(len(records) for records in batch.values())
        return batch

    def _measure_behind(self) -> None:
        """Records behind per owned partition, from the high-water mark of the latest fetch."""
        for tp, position in list(self._expected.items()):
            highwater = self._kafka.highwater(tp)
            if highwater is not None:  # unknown until the first fetch response for tp
                self.metrics.set_behind(tp.partition, highwater - position)

    async def _process(self, batch: dict) -> None:
        async with self._lock:
            owned = {
                tp: [r for r in recs if r.offset >= self._expected[tp]]
                for tp, recs in batch.items()
                if tp in self._expected and tp not in self._unseeked
            }
            owned = {tp: recs for tp, recs in owned.items() if recs}
            if not owned:
                return
            records = [event for recs in owned.values() for event in _decode(recs)]
            moves = {
                tp.partition: (self._expected[tp], recs[-1].offset + 1, self._kafka.highwater(tp))
                for tp, recs in owned.items()
            }
            started = time.perf_counter()
            try:
                with _spans(owned, self._group):
                    try:
                        result = await self._apply(records, moves, careful=False)
                    except FastPathFailedError as exc:
                        log.warning("%s; applying it again event by event", exc)
                        result = await self._apply(records, moves, careful=True)
            except checkpoints.CheckpointMovedError:
                log.info("positions of %s moved by another instance; re-seeking", sorted(moves))
                self._mark_unseeked(list(owned))
                return
            for tp in owned:
                self._expected[tp] = moves[tp.partition][1]
            self._count(result)
            self.metrics.record_batch(result, time.perf_counter() - started)
            self.metrics.record_stages(owned.values(), records)
            # After the commit, outside its transaction and in the background: snapshots come from
            # the store, and writing them must neither undo nor hold back the read models.
            self.snapshots.after_batch(records)

    async def _apply(self, records: list[RecordedEvent], moves: dict, *, careful: bool) -> BatchResult:
        """One transaction: the positions' compare-and-set, then the batch (no savepoint around
        its fast path: if that fails, the whole transaction rolls back and `_process` applies
        the batch again carefully)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await checkpoints.advance(conn, self._group, self._topic, self.instance_id, moves)
            return await self._applier.apply(conn, records, savepoint=False, careful=careful)

    def _count(self, result: BatchResult) -> None:
        self.totals.applied += result.applied
        self.totals.duplicates += result.duplicates
        self.totals.gap_filled += result.gap_filled
        self.totals.parked.extend(result.parked)

    async def claim(self, assigned) -> None:
        """Seek newly assigned partitions to the positions stored with the read models."""
        self.metrics.rebalances.inc()
        async with self._lock:
            mine = [tp for tp in assigned if tp.topic == self._topic]
            try:
                await self._seek_to_stored(mine)
            except RETRYABLE_ERRORS as exc:
                # Raising here would only be logged by aiokafka and leave the partitions unowned.
                log.warning(
                    "cannot read the stored positions of %s yet, retrying: %r", sorted(tp.partition for tp in mine), exc
                )
                for tp in mine:
                    self._expected.setdefault(tp, 0)
                self._mark_unseeked(mine)
            log.info(
                "projector %s owns %s",
                self.instance_id,
                sorted((tp.partition, offset) for tp, offset in self._expected.items()),
            )

    async def release(self, revoked) -> None:
        """Wait for the batch in flight, then forget the revoked partitions."""
        async with self._lock:
            for tp in revoked:
                self._unseeked.discard(tp)
                if self._expected.pop(tp, None) is not None:
                    self.metrics.forget_partition(tp.partition)

    async def _seek_to_stored(self, mine: list[TopicPartition]) -> None:
        if not mine:
            return
        stored = await checkpoints.load(
            self._pool, self._group, self._topic, [tp.partition for tp in mine], self.instance_id
        )
        for tp in mine:
            self._expected[tp] = stored[tp.partition]
            self._kafka.seek(tp, stored[tp.partition])

    async def _commit_to_kafka(self) -> None:
        """Informational only (the truth is in projection_checkpoints); failures are ignored."""
        now = time.monotonic()
        if (
            now - self._last_kafka_commit < self._settings.kafka_commit_interval_s
            or not self._expected
            or self._expected.keys() <= self._unseeked
        ):
            return
        self._last_kafka_commit = now
        try:
            await self._kafka.commit({tp: offset for tp, offset in self._expected.items() if tp not in self._unseeked})
        except KafkaError as exc:
            log.debug("informational Kafka commit failed: %r", exc)


def _spans(owned: dict, group: str) -> contextlib.AbstractContextManager:
    """Tracing on: the apply's spans, continuing each record's trace (agentlog/telemetry/spans.py)."""
    if not TRACING.on:
        return contextlib.nullcontext()
    from agentlog.telemetry.spans import applying

    return applying((r for recs in owned.values() for r in recs), group)


def _decode(records) -> list[RecordedEvent]:
    events = []
    for record in records:
        try:
            events.append(from_envelope(record.value))
        except Exception:
            log.error(
                "skipping record %s/%d@%d: not an event envelope",
                record.topic,
                record.partition,
                record.offset,
                exc_info=True,
            )
    return events


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_projector(settings: Settings, projector_settings: ProjectorSettings, stop: asyncio.Event) -> None:
    """`agentlog project`: run one projector instance until `stop` is set."""
    telemetry.configure("agentlog-projector", database_spans=True)
    # Its connections only ever hold transaction-scoped state (no LISTEN, SET, cursors or session
    # advisory locks), so a released connection needs no reset query: one round trip less a batch.
    # synchronous_commit off: a transaction holds the read models' rows and the positions they were
    # read up to, so one lost to a server crash is lost whole and its records are projected again
    # from Kafka (exactly once per version still: the guard is in the same transaction). No batch
    # waits for a WAL flush, and the backend does less work per commit.
    pool = await db.create_pool(
        settings.dsn(),
        min_size=1,
        max_size=4,
        reset=db.keep_session_state,
        server_settings={"synchronous_commit": "off", "application_name": "agentlog-projector"},
    )
    try:
        async with pool.acquire() as conn:
            await ensure_schema_current(conn)
        projector = Projector(pool, settings.kafka_bootstrap_servers, settings.kafka_topic, projector_settings)
        await projector.run(stop)
    finally:
        await pool.close()
