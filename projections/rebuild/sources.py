"""Where a rebuild reads the log from: the event store (the default) or the Kafka topic.

Invariants:
- Both hand out batches of RecordedEvents with the cursor after them (JSON, stored by the shadow
  in the batch's transaction) and say when they have caught up with the end of the log they see.
- The store is read with the strict read-all (eventstore/positions.py): in (transaction id,
  position) order, held back at the oldest open transaction, so nothing is skipped or doubled.
- The topic is read from the beginning by a consumer without a group (it commits nothing and
  disturbs no projector), every partition, resuming at the stored offsets. Kafka is at least once
  and may miss a record (a parked outbox row): the rebuild's version guard skips duplicates and
  fills a version gap from the event store, which stays the authority (the fills are counted).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from eventstore.envelope import RecordedEvent, from_envelope
from eventstore.errors import InfrastructureError
from eventstore.positions import LogCursor
from eventstore.store import EventStore
from projections.rebuild.shadow import Cursor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    events: list[RecordedEvent]
    cursor: Cursor  # where the source stands after these events
    caught_up: bool  # nothing more to read for now: the rebuild may verify and swap


class Source(Protocol):
    name: str

    async def open(self, cursor: Cursor) -> None: ...

    async def read(self, cursor: Cursor, limit: int) -> Batch: ...

    async def total(self) -> int: ...

    async def close(self) -> None: ...


class StoreSource:
    """The event store, the source of truth (`--source store`)."""

    name = "store"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._store = EventStore(pool)

    async def open(self, cursor: Cursor) -> None:
        return None

    async def read(self, cursor: Cursor, limit: int) -> Batch:
        after = LogCursor(cursor.get("transaction_id", 0), cursor.get("position", 0))
        events, after = await self._store.read_all(after, limit)
        moved = {"transaction_id": after.transaction_id, "position": after.position}
        return Batch(events, moved if events else cursor, caught_up=len(events) < limit)

    async def total(self) -> int:
        return await self._pool.fetchval("SELECT count(*) FROM events")

    async def close(self) -> None:
        return None


class KafkaSource:
    """The topic the relay publishes (`--source kafka`), for users whose topic is the trusted stream."""

    name = "kafka"

    def __init__(self, bootstrap: str, topic: str, *, idle_timeout_s: float = 30.0) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._idle_timeout_s = idle_timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._begin: dict[TopicPartition, int] = {}
        self._end: dict[TopicPartition, int] = {}
        self._last_record_at = time.monotonic()

    async def open(self, cursor: Cursor) -> None:
        numbers = await self._partition_numbers()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        try:
            await self._consumer.start()
            self._partitions = [TopicPartition(self._topic, n) for n in numbers]
            self._consumer.assign(self._partitions)
            self._begin = await self._consumer.beginning_offsets(self._partitions)
            self._end = await self._consumer.end_offsets(self._partitions)
            stored = cursor.get("partitions", {})
            for tp in self._partitions:
                self._consumer.seek(tp, max(int(stored.get(str(tp.partition), 0)), self._begin[tp]))
        except KafkaError as exc:
            raise InfrastructureError(f"reading {self._topic!r} from Kafka at {self._bootstrap} failed: {exc}") from exc

    async def _partition_numbers(self) -> list[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            (described,) = await admin.describe_topics([self._topic])
        except KafkaError as exc:
            raise InfrastructureError(f"cannot reach Kafka at {self._bootstrap}: {exc}") from exc
        finally:
            await admin.close()
        if described["error_code"] or not described["partitions"]:
            raise InfrastructureError(f"topic {self._topic!r} does not exist on {self._bootstrap}", topic=self._topic)
        return sorted(p["partition"] for p in described["partitions"])

    async def read(self, cursor: Cursor, limit: int) -> Batch:
        consumer = self._require()
        fetched = await consumer.getmany(timeout_ms=500, max_records=limit)
        events = [e for records in fetched.values() for e in _decode(records)]
        # Positions, not the last offsets: control records take offsets but are never returned.
        positions = {tp: await consumer.position(tp) for tp in self._partitions}
        moved = {"partitions": {str(tp.partition): positions[tp] for tp in self._partitions}}
        count = sum(len(records) for records in fetched.values())
        caught_up = False
        if count < limit and all(positions[tp] >= self._end[tp] for tp in self._partitions):
            self._end = await consumer.end_offsets(self._partitions)  # what arrived meanwhile
            caught_up = all(positions[tp] >= self._end[tp] for tp in self._partitions)
        if count:
            self._last_record_at = time.monotonic()
        elif not caught_up and time.monotonic() - self._last_record_at > self._idle_timeout_s:
            raise InfrastructureError(
                f"Kafka yielded no records for {self._idle_timeout_s:.0f}s before the end offsets "
                f"{ {tp.partition: self._end[tp] for tp in self._partitions} }"
            )
        return Batch(events, moved, caught_up)

    async def total(self) -> int:
        return sum(self._end[tp] - self._begin[tp] for tp in self._partitions)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaSource.read before open")
        return self._consumer


def _decode(records) -> list[RecordedEvent]:
    events = []
    for record in records:
        try:
            events.append(from_envelope(record.value))
        except Exception:
            log.error("skipping record %s/%d@%d: not an event envelope", record.topic, record.partition, record.offset)
    return events
