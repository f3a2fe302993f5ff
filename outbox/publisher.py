"""Publishes one batch of outbox rows to Kafka and awaits every delivery result.

Invariant: `publish` returns only when Kafka acknowledged every record it reports as published
(idempotent producer, acks=all). When any record of the batch fails or the batch outlives
`delivery_timeout_ms`, the producer is abandoned and `PublishFailedError` raised: the caller keeps
every row of the batch and retries it from the start with a fresh producer, so a key is never
reordered by a partial retry (some records may be written twice: at least once).

A record larger than `max_request_bytes` can never be published; it is reported back as
unpublishable (the caller parks it) instead of blocking every session behind it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError

from outbox.rows import OutboxRow
from outbox.settings import RelaySettings

log = logging.getLogger(__name__)


class PublishFailedError(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.retriable = isinstance(cause, (TimeoutError, OSError)) or bool(getattr(cause, "retriable", False))


@dataclass
class PublishResult:
    acked_ids: list[int] = field(default_factory=list)
    unpublishable: list[tuple[OutboxRow, str]] = field(default_factory=list)


class Publisher:
    """Owns the relay's AIOKafkaProducer; recreates it after any failed batch."""

    def __init__(self, bootstrap: str, topic: str, relay: RelaySettings, client_id: str) -> None:
        self._bootstrap, self._topic, self._relay, self._client_id = bootstrap, topic, relay, client_id
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, rows: list[OutboxRow]) -> PublishResult:
        result = PublishResult()
        futures: list[asyncio.Future] = []
        try:
            async with asyncio.timeout(self._relay.delivery_timeout_ms / 1000):
                producer = await self._ensure_producer()
                for row in rows:
                    future = await self._send(producer, row, result)
                    if future is not None:
                        futures.append(future)
                        result.acked_ids.append(row.outbox_id)
                await asyncio.gather(*futures)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.reset()
            _consume(futures)
            raise PublishFailedError(exc) from exc
        return result

    async def _send(self, producer: AIOKafkaProducer, row: OutboxRow, result: PublishResult):
        event = row.event
        try:
            return await producer.send(
                self._topic, event.kafka_value(), key=event.kafka_key(), headers=event.kafka_headers()
            )
        except MessageSizeTooLargeError as exc:
            result.unpublishable.append((row, f"{type(exc).__name__}: {exc}"))
            return None

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap, client_id=self._client_id,
                enable_idempotence=True, acks="all",
                linger_ms=self._relay.linger_ms, max_batch_size=self._relay.max_batch_bytes,
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


def _consume(futures: list[asyncio.Future]) -> None:
    """Retrieve failures of records we give up on, so asyncio does not warn about them."""
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()


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
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("abandoned Kafka producer did not stop cleanly: %r", exc)
