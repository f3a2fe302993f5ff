"""Operator functions behind `agentlog projections list|status|rebuild|retry-parked` and `agentlog status`.

Invariant: retrying a parked event applies exactly that projection's handler for it, in its own
transaction, and deletes the parked row in the same transaction; a session's has_parked_events
flag is cleared in that transaction once none of its events is parked any more.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from eventstore.envelope import from_envelope
from projections.projector.applier import describe, is_infrastructure_error
from projections.read_models import summaries
from projections.read_models.catalog import BY_NAME, PROJECTIONS
from projections.read_models.projection import decode_or_error
from projections.rebuild.job import ProjectionRebuild
from projections.rebuild.progress import ProgressLine
from projections.settings import DEFAULT_GROUP

log = logging.getLogger(__name__)

PARKED = """
SELECT id, projection, tenant, session_id, version, event FROM projection_parked_events
WHERE projector = $1 AND ($2::text IS NULL OR projection = $2) ORDER BY tenant, session_id, version, id
"""
STILL_PARKED = "SELECT EXISTS (SELECT 1 FROM projection_parked_events WHERE tenant = $1 AND session_id = $2)"
RETRY_FAILED = """
UPDATE projection_parked_events SET attempts = attempts + 1, error = $2, last_retry_at = now() WHERE id = $1
"""


async def rebuild_projection(
    pool: asyncpg.Pool, name: str, *, batch_size: int = 500, projector: str = DEFAULT_GROUP, progress=None
) -> dict[str, Any]:
    """Rebuild one projection into shadow tables and swap it in (projections/rebuild/job.py); with
    `progress` (a stream, e.g. stderr) a progress line is drawn there. Returns the summary."""
    line = ProgressLine(progress) if progress is not None else None
    job = ProjectionRebuild(pool, name, projector=projector, batch_size=batch_size, on_progress=line)
    summary = await job.run()
    if line is not None:
        line.finish(f"{summary.projection}: {summary.status} after {summary.events} events in {summary.seconds:.1f}s")
    return summary.as_dict()


def list_projections() -> list[dict[str, Any]]:
    """Every projection the projector runs: name, tables, event types handled, description."""
    return [
        {"name": p.name, "tables": list(p.tables), "event_types": sorted(p.event_types), "description": p.description}
        for p in PROJECTIONS
    ]


async def retry_parked(
    pool: asyncpg.Pool, projection: str | None = None, *, projector: str = DEFAULT_GROUP
) -> tuple[int, int]:
    """Apply parked events again (after a fix); returns (now applied, still failing)."""
    if projection is not None and projection not in BY_NAME:
        raise ValueError(f"unknown projection {projection!r}; known: {', '.join(BY_NAME)}")
    retried = still_failing = 0
    for row in await pool.fetch(PARKED, projector, projection):
        if await _retry_one(pool, row):
            retried += 1
        else:
            still_failing += 1
    return retried, still_failing


async def _retry_one(pool: asyncpg.Pool, row: asyncpg.Record) -> bool:
    recorded = from_envelope(row["event"])
    handler_of = BY_NAME.get(row["projection"])
    async with pool.acquire() as conn, conn.transaction():
        try:
            if handler_of is None:
                raise LookupError(f"projection {row['projection']!r} no longer exists")
            async with conn.transaction():
                for write in handler_of.writes_for(recorded, decode_or_error(recorded)):
                    await conn.execute(write.sql, *write.args)
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            await conn.execute(RETRY_FAILED, row["id"], describe(exc))
            return False
        await conn.execute("DELETE FROM projection_parked_events WHERE id = $1", row["id"])
        if not await conn.fetchval(STILL_PARKED, row["tenant"], row["session_id"]):
            mark = summaries.mark_parked(row["tenant"], row["session_id"], recorded.recorded_at, parked=False)
            await conn.execute(mark.sql, *mark.args)
    log.info(
        "parked %s v%d of %s/%s applied to %s",
        recorded.type,
        recorded.version,
        recorded.tenant,
        recorded.session_id,
        row["projection"],
    )
    return True


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of `topic` (what a caught-up consumer's position is)."""
    # A consumer without assignments has no metadata for the topic (and `topics()` does not add it to
    # the cluster view), so the partitions come from the admin client.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if not described or described[0]["error_code"] != 0:
        raise LookupError(f"topic {topic} not found on {bootstrap}")
    partitions = [p["partition"] for p in described[0]["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def projection_status(
    pool: asyncpg.Pool, bootstrap: str, topic: str, *, group_id: str = DEFAULT_GROUP
) -> list[dict[str, Any]]:
    """Per projection: lag in records (= events) behind the topic's end, the last applied global
    position, the stored positions per partition and the number of parked events."""
    stored = {
        r["partition"]: r
        for r in await pool.fetch(
            "SELECT partition, next_offset, updated_by, updated_at FROM projection_checkpoints "
            "WHERE group_id = $1 AND topic = $2",
            group_id,
            topic,
        )
    }
    last_position = await pool.fetchval(
        "SELECT max(position) FROM projection_session_versions WHERE projector = $1", group_id
    )
    parked = {
        r["projection"]: r["n"]
        for r in await pool.fetch(
            "SELECT projection, count(*) AS n FROM projection_parked_events WHERE projector = $1 GROUP BY projection",
            group_id,
        )
    }
    try:
        ends, kafka_error = await end_offsets(bootstrap, topic), None
    except Exception as exc:
        ends, kafka_error = {}, repr(exc)
    lag = sum(max(end - (stored[p]["next_offset"] if p in stored else 0), 0) for p, end in ends.items())
    partitions = [
        {
            "partition": p,
            "next_offset": r["next_offset"],
            "end_offset": ends.get(p),
            "updated_by": r["updated_by"],
            "updated_at": r["updated_at"].isoformat(),
        }
        for p, r in sorted(stored.items())
    ]
    return [
        {
            "projection": p.name,
            "group_id": group_id,
            "topic": topic,
            "lag_events": None if kafka_error else lag,
            "last_applied_position": last_position or 0,
            "parked": parked.get(p.name, 0),
            "partitions": partitions,
            "kafka_error": kafka_error,
        }
        for p in PROJECTIONS
    ]
