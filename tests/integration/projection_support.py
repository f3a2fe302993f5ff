"""Test data for projector tests: events written to the events table with plain SQL (schema 0001)
and the same envelopes produced to the test's topic, as the store and relay would do.

Also: a projector running in a background task with its own stop event, and a snapshot of every
read-model row for "the same input gives the same rows" comparisons.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import to_stored
from projections.projector.runner import Projector
from projections.settings import ProjectorSettings

READ_MODEL_TABLES = {
    "session_summaries_v1": "tenant, session_id",
    "session_state_v1": "tenant, session_id, section",
    "session_timeline_v1": "tenant, session_id, version",
    "tool_calls_v1": "tenant, session_id, call_id",
    "tool_stats_v1": "tenant, tool",
    "approvals_v1": "tenant, session_id, approval_id",
    "state_audit_v1": "tenant, session_id, section, version",
    "graph_threads_v1": "tenant, session_id",
    "graph_checkpoints_v1": "tenant, session_id, checkpoint_ns, checkpoint_id",
    "graph_blobs_v1": "tenant, session_id, checkpoint_ns, channel, channel_version",
    "graph_writes_v1": "tenant, session_id, checkpoint_ns, checkpoint_id, task_id, idx",
    "conversation_items_v1": "tenant, session_id, idx",
    "conversation_removals_v1": "tenant, session_id, version",
    "model_usage_v1": "tenant, session_id, call_id",
    "session_budgets_v1": "tenant, session_id",
    "projection_session_versions": "projector, tenant, session_id",
    "projection_parked_events": "projection, tenant, session_id, version",
}

# Bookkeeping columns stamped with now(): not part of what an event determines.
VOLATILE_COLUMNS = {
    "projection_session_versions": ("updated_at",),
    "projection_parked_events": ("id", "parked_at", "last_retry_at", "attempts"),
}


def support_case(n_messages: int = 2) -> list[ev.Event]:
    """The demo session: two agents update their own sections, a refund tool call, an approval."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    events: list[ev.Event] = [
        ev.SessionStarted(workflow="support-case", title="charged twice, cannot log in", agents=["billing", "account"]),
        ev.MessageAdded(role="user", content="I was charged twice, and I can't log in"),
        ev.StateSectionUpdated(agent="billing", section="billing", changes={"duplicate": True, "amount": 42}),
        ev.StateSectionUpdated(agent="account", section="account", changes={"locked": True}),
        ev.ToolCallRequested(call_id="c1", tool="refund", arguments={"amount": 42}, agent="billing"),
        ev.ToolCallCompleted(call_id="c1", result={"ok": True}, duration_ms=120),
        ev.ToolCallRequested(call_id="c2", tool="unlock", agent="account"),
        ev.ToolCallFailed(call_id="c2", error="timeout", duration_ms=3000),
        ev.ApprovalRequested(
            approval_id="a1",
            action="refund 42.00 EUR",
            risk="high",
            requested_by="policy",
            expires_at=now + timedelta(days=3650),
        ),
        ev.ApprovalDecided(approval_id="a1", decision="approved", reviewer="alice", decided_at=now),
        ev.StateSectionUpdated(agent="billing", section="billing", changes={"amount": None, "refunded": True}),
        ev.CheckpointSaved(name="refunded", step=3),
    ]
    events += [ev.MessageAdded(role="assistant", content=f"answer {i}", agent="response") for i in range(n_messages)]
    events.append(ev.SessionCompleted(outcome="resolved"))
    return events


INSERT_EVENT = """
INSERT INTO events (tenant, session_id, version, event_id, type, schema_version, data, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING position, recorded_at
"""


async def append(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant: str,
    session_id: str,
    events: list[ev.Event],
    first_version: int = 1,
) -> list[RecordedEvent]:
    """Write events as the store would (one transaction); return them as recorded."""
    recorded = []
    async with _connection(conn) as c, c.transaction():
        for offset, event in enumerate(events):
            type_, schema_version, data = to_stored(event)
            recorded.append(
                await insert_raw(c, tenant, session_id, first_version + offset, type_, schema_version, data)
            )
    return recorded


async def insert_raw(
    conn, tenant: str, session_id: str, version: int, type_: str, schema_version: int, data: dict
) -> RecordedEvent:
    event_id = uuid.uuid4()
    metadata = {"correlation_id": f"corr-{session_id}"}
    row = await conn.fetchrow(
        INSERT_EVENT, tenant, session_id, version, event_id, type_, schema_version, data, metadata
    )
    return RecordedEvent(
        position=row["position"],
        session_id=session_id,
        version=version,
        event_id=event_id,
        type=type_,
        schema_version=schema_version,
        data=data,
        tenant=tenant,
        recorded_at=row["recorded_at"],
        metadata=metadata,
    )


@asynccontextmanager
async def _connection(conn):
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            yield c
    else:
        yield conn


async def produce(bootstrap: str, topic: str, recorded: list[RecordedEvent]) -> None:
    """Publish envelopes as the relay would: key = session id, contract headers, acks=all."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, r.kafka_value(), key=r.kafka_key(), headers=r.kafka_headers()) for r in recorded
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def read_models(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, list[tuple]]:
    """Every read-model row, ordered by key (timestamps of bookkeeping left out)."""
    snapshot = {}
    async with _connection(conn) as c:
        for table, order in READ_MODEL_TABLES.items():
            rows = await c.fetch(f"SELECT * FROM {table} ORDER BY {order}")
            skip = VOLATILE_COLUMNS.get(table, ())
            snapshot[table] = [tuple((k, v) for k, v in row.items() if k not in skip) for row in rows]
    return snapshot


def settings(**overrides) -> ProjectorSettings:
    values = {
        "group_id": f"agentlog.test.projector.{uuid.uuid4().hex[:8]}.v1",
        "fetch_timeout_ms": 100,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 500,
        "kafka_commit_interval_s": 0.5,
    }
    values.update(overrides)
    return ProjectorSettings(**values)


@asynccontextmanager
async def running_projector(
    pool: asyncpg.Pool, bootstrap: str, topic: str, projector_settings: ProjectorSettings, **kwargs
):
    """A Projector in a background task; stopped and awaited on exit."""
    projector = Projector(pool, bootstrap, topic, projector_settings, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    projector.task = task  # for "still running" checks
    try:
        yield projector
    finally:
        stop.set()
        await task


async def applied_version(conn, group: str, tenant: str, session_id: str) -> int:
    value = await conn.fetchval(
        "SELECT version FROM projection_session_versions WHERE projector = $1 AND tenant = $2 AND session_id = $3",
        group,
        tenant,
        session_id,
    )
    return value or 0
