"""Where a replay reads a session's events: the Postgres event store, or the Kafka topic itself.

Invariant: both sources return the session's RecordedEvents of one tenant only, deduplicated by
event id and in version order (eventstore.replay.ordered), so a replay from Kafka equals a replay
from Postgres once the relay has published the session. The Kafka reader is a fresh consumer with
no group: it commits nothing and disturbs no projector; it reads the session's partition (the
partition the default partitioner gives the key, as the relay produces) from the beginning up to
the end offset it saw when it started, then stops; given `to_version`, it stops as soon as it holds
every version up to it (a diff or a context at version N of a session needs nothing after N).
Kafka has no index by key, so the read still starts at the partition's beginning: records before
the session's first are skipped, not sought past.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventstore.envelope import RecordedEvent, from_envelope
from eventstore.errors import InfrastructureError, ReplaySourceIncompleteError
from eventstore.replay import ordered
from eventstore.store import EventStore
from outbox.partitions import partition_of

Progress = Callable[[int, int], None]  # (done, total; 0 when not known yet)


class ReplaySettings(BaseSettings):
    """AGENTLOG_REPLAY_*: how the replay CLI reads and reports."""

    model_config = SettingsConfigDict(env_prefix="AGENTLOG_REPLAY_", extra="ignore")

    page_size: int = Field(default=1000, ge=1, le=100_000, description="events per read_stream call")
    progress_every: int = Field(default=1000, ge=1, description="report progress every N events")
    kafka_idle_timeout_s: float = Field(
        default=30.0, gt=0, description="give up when the topic yields nothing for this long"
    )


@dataclass(frozen=True, slots=True)
class SessionEvents:
    """A session's events as read (perhaps only up to a version) and the session's last version."""

    events: list[RecordedEvent]
    last_version: int


async def read_from_postgres(
    store: EventStore,
    tenant: str,
    session_id: str,
    *,
    to_version: int | None = None,
    page_size: int = 1000,
    progress: Progress | None = None,
) -> SessionEvents:
    """The session's events (up to `to_version`), read in pages so progress can be reported."""
    events: list[RecordedEvent] = []
    while True:
        page = await store.read_stream(
            tenant, session_id, from_version=len(events) + 1, to_version=to_version, limit=page_size
        )
        events.extend(page)
        if progress:
            progress(len(events), to_version or 0)
        if len(page) < page_size:
            break
    events = ordered(events, session_id=session_id)
    # Read after the events, so it is never below the last version read.
    last = await store.last_version(tenant, session_id) if to_version is not None else 0
    return SessionEvents(events, max(len(events), last))


async def topic_partitions(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        (described,) = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise InfrastructureError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        raise ReplaySourceIncompleteError(
            f"topic {topic!r} does not exist on {bootstrap} (set AGENTLOG_KAFKA_TOPIC?)", topic=topic
        )
    return len(described["partitions"])


async def read_from_kafka(
    bootstrap: str,
    topic: str,
    tenant: str,
    session_id: str,
    *,
    all_partitions: bool = False,
    idle_timeout_s: float = 30.0,
    progress: Progress | None = None,
    to_version: int | None = None,
) -> SessionEvents:
    """The session's events as the topic holds them (duplicates removed, in version order); with
    `to_version`, those up to it, and `last_version` is then the highest version read (at least
    `to_version` when the session has it)."""
    count = await topic_partitions(bootstrap, topic)
    numbers = range(count) if all_partitions else [partition_of(session_id, count)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        partitions = [TopicPartition(topic, n) for n in numbers]
        consumer.assign(partitions)
        records = await _read_to_end(consumer, partitions, tenant, session_id, idle_timeout_s, progress, to_version)
    except KafkaError as exc:
        raise InfrastructureError(f"reading {topic!r} from Kafka at {bootstrap} failed: {exc}") from exc
    finally:
        await consumer.stop()
    events = ordered(records, session_id=session_id)
    if to_version is None:
        return SessionEvents(events, len(events))
    return SessionEvents([e for e in events if e.version <= to_version], max((e.version for e in events), default=0))


async def _read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    tenant: str,
    session_id: str,
    idle_timeout_s: float,
    progress: Progress | None,
    to_version: int | None = None,
) -> list[RecordedEvent]:
    begin = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)
    await consumer.seek_to_beginning(*partitions)
    total = sum(end[tp] - begin[tp] for tp in partitions)
    remaining = {tp for tp in partitions if end[tp] > begin[tp]}
    key, found, seen = session_id.encode(), [], 0
    wanted: set[int] = set(range(1, to_version + 1)) if to_version is not None else set()
    last_record_at = time.monotonic()
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=500)
        for batch in batches.values():
            seen += len(batch)
            events = _of_session(batch, key, tenant)
            found.extend(events)
            wanted.difference_update(e.version for e in events)
        if to_version is not None and not wanted:
            break  # every version up to the one asked for is in hand
        # The position, not the last record's offset: control records (transactional producers)
        # take offsets but are never returned.
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
        if batches:
            last_record_at = time.monotonic()
            if progress:
                progress(seen, total)
        elif time.monotonic() - last_record_at > idle_timeout_s:
            raise InfrastructureError(
                f"Kafka yielded no records for {idle_timeout_s:.0f}s before the end offsets "
                f"{ {tp.partition: end[tp] for tp in remaining} }"
            )
    return found


def _of_session(batch, key: bytes, tenant: str) -> list[RecordedEvent]:
    events = []
    for record in batch:
        if record.key != key:
            continue
        # The tenant header spares parsing other tenants' values; the envelope is the authority.
        headers = dict(record.headers or ())
        if headers.get("tenant", tenant.encode()) != tenant.encode():
            continue
        event = from_envelope(record.value)
        if event.tenant == tenant and event.session_id == key.decode():
            events.append(event)
    return events
