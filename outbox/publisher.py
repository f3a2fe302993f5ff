"""Publishes batches of outbox rows to Kafka and awaits every delivery result.

Invariant: `wait` returns only when Kafka acknowledged every record the batch reports as published
(idempotent producer, acks=all). When any record fails, or a batch outlives `delivery_timeout_ms`
from its `send`, the producer is abandoned and `PublishFailedError` raised: the caller keeps every
row of that batch and of every batch sent after it, and publishes again from the oldest undeleted
row with a fresh producer, so a key is never reordered by a partial retry (some records may be
written twice: at least once).

Records are handed to aiokafka as one record batch per partition (`send_batch`), in outbox id
order, instead of one `send()` and one future per record: that is most of the Python cost of a
send loop. The partition is outbox/partitions.py's (the default partitioner's), so a key lands where
`send()` would put it. Per partition, batches go out in submission order and the broker accepts
an idempotent producer's batches only in sequence, so what lands is a prefix of what was sent.

A record larger than `max_request_bytes` can never be published; it is reported back as
unpublishable (the caller parks it) instead of blocking every session behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from agentlog.telemetry import TRACING
from outbox.partitions import KeyPartitions
from outbox.rows import OutboxRow
from outbox.settings import RelaySettings

if TYPE_CHECKING:
    from agentlog.telemetry.spans import PublishSpans

log = logging.getLogger(__name__)


class PublishFailedError(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.retriable = isinstance(cause, (TimeoutError, OSError)) or bool(getattr(cause, "retriable", False))


@dataclass
class SentBatch:
    """A batch handed to the producer; `acked_ids` hold once `Publisher.wait` returned."""

    rows: list[OutboxRow]
    deadline: float
    started: float = field(default_factory=time.perf_counter)
    acked_ids: list[int] = field(default_factory=list)
    unpublishable: list[tuple[OutboxRow, str]] = field(default_factory=list)
    futures: list[asyncio.Future] = field(default_factory=list)
    spans: PublishSpans | None = None  # tracing on: one span per trace among the rows


class Publisher:
    """Owns the relay's AIOKafkaProducer; recreates it after any failed batch."""

    def __init__(self, bootstrap: str, topic: str, relay: RelaySettings, client_id: str) -> None:
        self._bootstrap, self._topic, self._relay, self._client_id = bootstrap, topic, relay, client_id
        self._producer: AIOKafkaProducer | None = None
        self._partition = KeyPartitions()

    async def publish(self, rows: list[OutboxRow]) -> SentBatch:
        """Send one batch and await all its acks."""
        return await self.wait(await self.send(rows))

    async def send(self, rows: list[OutboxRow]) -> SentBatch:
        """Hand `rows` to the producer in id order; returns before the acks (see `wait`)."""
        loop = asyncio.get_running_loop()
        batch = SentBatch(rows, deadline=loop.time() + self._relay.delivery_timeout_ms / 1000)
        if TRACING.on:
            from agentlog.telemetry.spans import PublishSpans

            batch.spans = PublishSpans(self._topic)
        try:
            async with asyncio.timeout_at(batch.deadline):
                producer = await self._ensure_producer()
                self._partition.update(await producer.partitions_for(self._topic))
                await self._submit(producer, batch)
        except (KafkaError, OSError, TimeoutError) as exc:
            _end_spans(batch, exc)
            await self.reset()
            raise PublishFailedError(exc) from exc
        return batch

    async def wait(self, batch: SentBatch) -> SentBatch:
        """Await every delivery result of `batch`, at most until its deadline."""
        try:
            async with asyncio.timeout_at(batch.deadline):
                await asyncio.gather(*batch.futures)
        except (KafkaError, OSError, TimeoutError) as exc:
            _end_spans(batch, exc)
            await self.reset()
            raise PublishFailedError(exc) from exc
        _end_spans(batch)
        return batch

    async def _submit(self, producer: AIOKafkaProducer, batch: SentBatch) -> None:
        builders: dict[int, BatchBuilder] = {}
        for row in batch.rows:
            event = row.event
            key, value, headers = event.kafka_key(), event.kafka_value(), event.kafka_headers()
            if row.traceparent is not None:
                # The trace goes on through Kafka: the relay's span if it traces, else the stored context.
                context = (
                    row.traceparent.encode()
                    if batch.spans is None
                    else batch.spans.header(row.traceparent, event.position)
                )
                headers.append(("traceparent", context))
            if error := self._too_large(key, value, headers):
                batch.unpublishable.append((row, error))
                continue
            partition = self._partition(key)
            builder = builders.get(partition)
            if builder is None or builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                if builder is not None:  # full: hand it over, go on filling a new one
                    await self._hand_over(producer, builder, partition, batch)
                builder = builders[partition] = producer.create_batch()
                builder.append(timestamp=None, key=key, value=value, headers=headers)
            batch.acked_ids.append(row.outbox_id)
        for partition, builder in builders.items():
            await self._hand_over(producer, builder, partition, batch)

    def _too_large(self, key: bytes, value: bytes, headers: list) -> str | None:
        """Why a record can never be published (what `send()` would raise), or None."""
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if size <= self._relay.max_request_bytes:
            return None
        error = MessageSizeTooLargeError(
            f"The message is {size} bytes when serialized which is larger "
            f"than max_request_bytes ({self._relay.max_request_bytes})"
        )
        return f"{type(error).__name__}: {error}"

    async def _hand_over(
        self, producer: AIOKafkaProducer, builder: BatchBuilder, partition: int, batch: SentBatch
    ) -> None:
        builder.close()  # closed: the sender takes it at once instead of lingering
        future = await producer.send_batch(builder, self._topic, partition=partition)
        future.add_done_callback(_retrieve)
        batch.futures.append(future)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                enable_idempotence=True,
                acks="all",
                linger_ms=self._relay.linger_ms,
                max_batch_size=self._relay.max_batch_bytes,
                max_request_size=self._relay.max_request_bytes,
                request_timeout_ms=self._relay.request_timeout_ms,
            )
            try:
                await producer.start()
            except BaseException:
                await _abandon(producer)
                raise
            self._producer = producer
        return self._producer

    async def reset(self) -> None:
        """Drop the producer; the next batch starts a fresh one (new producer id and sequences)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await _abandon(producer)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=10)
            except (KafkaError, OSError, TimeoutError):
                await _abandon(producer)


def _end_spans(batch: SentBatch, error: BaseException | None = None) -> None:
    if batch.spans is not None:
        batch.spans.end(error)
        batch.spans = None


def _retrieve(future: asyncio.Future) -> None:
    """Retrieve the failure of a batch nobody awaits any more, so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()


def _consume(futures: list[asyncio.Future]) -> None:
    for future in futures:
        if future.done():
            _retrieve(future)


async def _abandon(producer: AIOKafkaProducer) -> None:
    # aiokafka never expires an idempotent producer's batches and stop() waits for them, so while
    # the broker is away stop() hangs forever (aio-libs/aiokafka#1101). Failing what is still
    # queued lets stop() close the connections. Requests already on the wire may still land: they
    # are a prefix of each partition's records, so a key's first copies stay in order.
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        batches = [b for queue in accumulator._batches.values() for b in queue]
        batches += list(accumulator._pending_batches)
        accumulator.fail_all(KafkaConnectionError("producer abandoned by the relay"))
        for batch in batches:  # nobody awaits these any more: retrieve, so asyncio does not warn
            _consume([batch.future, batch._drain_waiter, *(f for f, _ in batch._msg_futures)])
    try:
        await asyncio.wait_for(producer.stop(), timeout=10)
    except Exception as exc:
        # Whatever an abandoned producer raises is about that producer only; e.g. a produce response
        # arriving after fail_all() makes aiokafka's reenqueue raise KeyError from stop(). It must
        # not end the relay (test_relay_loses_nothing_when_broker_is_stopped_and_restarted_under_load
        # failed on it): close its connections and go on with a fresh producer.
        log.warning("abandoned Kafka producer did not stop cleanly: %r", exc)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.client.close(), timeout=5)
