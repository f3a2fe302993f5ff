"""Projection benchmarks (bounded time; prints ratios against raw limits measured in the same run).

1. apply: the projector's batch applier (version guard, decoding, handlers, grouped writes,
   compare-and-set of positions, NOTIFY) vs the raw limit = the very same row changes and position
   writes sent as plain batched SQL (executemany per statement, one transaction per batch).
   Goal: ratio >= 0.5.
2. projector end to end: records on Kafka -> read models, events/s (absolute figure).
3. command accepted -> visible through the query API: measured by bench/bench_e2e.py (all four
   processes; `python -m bench.bench_e2e`), see docs/benchmarks.md "End to end".

Run: AGENTLOG_STACK_HOME=.agentlog python bench/bench_projections.py [--sessions 400] [--events 25]
Uses the local stack (agentlog stack up); creates and drops a database and a topic of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

import asyncpg

from agentlog.stack import kafka_probe
from bench.scratch import scratch_database
from eventstore import db
from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import to_stored
from eventstore.settings import Settings
from projections.projector import checkpoints
from projections.projector.applier import WRITE_VERSIONS, BatchApplier, execute_grouped
from projections.projector.runner import Projector
from projections.read_models.catalog import PROJECTIONS
from projections.read_models.projection import decode_or_error
from projections.settings import ProjectorSettings

READ_MODELS = (
    "session_summaries_v1",
    "session_state_v1",
    "session_timeline_v1",
    "tool_calls_v1",
    "tool_stats_v1",
    "approvals_v1",
    "state_audit_v1",
    "projection_session_versions",
    "projection_checkpoints",
)


def session_events(i: int, n: int) -> list[ev.Event]:
    events: list[ev.Event] = [ev.SessionStarted(workflow="bench", title=f"session {i}", agents=["a", "b"])]
    k = 0
    while len(events) < n - 1:
        k += 1
        events += [
            ev.MessageAdded(role="assistant", content=f"turn {k}", agent="a"),
            ev.StateSectionUpdated(agent="b", section="notes", changes={"turn": k}),
            ev.ToolCallRequested(call_id=f"c{k}", tool=f"tool{k % 5}", agent="a"),
            ev.ToolCallCompleted(call_id=f"c{k}", duration_ms=k),
        ]
    return [*events[: n - 1], ev.SessionCompleted(outcome="done")]


def recorded_log(sessions: int, per_session: int) -> list[RecordedEvent]:
    out, position = [], 0
    now = datetime.now(UTC)
    streams = [session_events(i, per_session) for i in range(sessions)]
    for version in range(1, per_session + 1):  # interleave sessions as a busy system would
        for i, stream in enumerate(streams):
            position += 1
            type_, schema_version, data = to_stored(stream[version - 1])
            out.append(
                RecordedEvent(
                    position=position,
                    session_id=f"bench-{i}",
                    version=version,
                    event_id=uuid.uuid4(),
                    type=type_,
                    schema_version=schema_version,
                    data=data,
                    tenant="bench",
                    recorded_at=now,
                )
            )
    return out


def batches(records, size):
    return [records[i : i + size] for i in range(0, len(records), size)]


async def reset(conn: asyncpg.Connection) -> None:
    await conn.execute(f"TRUNCATE {', '.join(READ_MODELS)}")
    await checkpoints.load(conn, "bench", "bench-topic", [0], "bench")


async def run_applier(conn, chunks) -> float:
    applier = BatchApplier(PROJECTIONS, "bench", max_retries=3)
    started, offset = time.perf_counter(), 0
    for chunk in chunks:
        async with conn.transaction():
            await checkpoints.advance(conn, "bench", "bench-topic", "bench", {0: (offset, offset + len(chunk), None)})
            await applier.apply(conn, chunk)
        offset += len(chunk)
    return time.perf_counter() - started


async def run_raw(conn, chunks) -> float:
    """The same statements and arguments, precomputed, sent as executemany per batch."""
    prepared = []
    for chunk in chunks:
        writes = [w for p in PROJECTIONS for r in chunk for w in p.writes_for(r, decode_or_error(r))]
        versions = {(r.tenant, r.session_id): r for r in chunk}
        prepared.append((writes, list(versions.values()), len(chunk)))
    started, offset = time.perf_counter(), 0
    for writes, last, n in prepared:
        async with conn.transaction():
            await checkpoints.advance(conn, "bench", "bench-topic", "bench", {0: (offset, offset + n, None)})
            await execute_grouped(conn, writes)
            await conn.execute(
                WRITE_VERSIONS,
                "bench",
                [r.tenant for r in last],
                [r.session_id for r in last],
                [r.version for r in last],
                [r.position for r in last],
            )
        offset += n
    return time.perf_counter() - started


async def bench_apply(dsn: str, records, batch_size: int, rounds: int) -> None:
    conn = await db.connect(dsn)
    try:
        chunks = batches(records, batch_size)
        best = {"projector": float("inf"), "raw": float("inf")}
        for _ in range(rounds):
            for name, fn in (("raw", run_raw), ("projector", run_applier)):
                await reset(conn)
                best[name] = min(best[name], await fn(conn, chunks))
        rates = {k: len(records) / v for k, v in best.items()}
        print(
            f"apply  batch={batch_size}: projector {rates['projector']:,.0f} ev/s, raw batched SQL "
            f"{rates['raw']:,.0f} ev/s, ratio {rates['projector'] / rates['raw']:.2f} (goal >= 0.5)"
        )
    finally:
        await conn.close()


async def bench_end_to_end(dsn: str, settings: Settings, records, batch_size: int) -> None:
    from aiokafka import AIOKafkaProducer

    topic = f"agentlog.bench.{uuid.uuid4().hex[:8]}.v1"
    await kafka_probe.ensure_topic(settings.kafka_bootstrap_servers, topic, partitions=3)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        for r in records:
            await producer.send(topic, r.kafka_value(), key=r.kafka_key(), headers=r.kafka_headers())
        await producer.flush()
    finally:
        await producer.stop()
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await reset(conn)
    projector = Projector(
        pool,
        settings.kafka_bootstrap_servers,
        topic,
        ProjectorSettings(group_id=f"bench.{uuid.uuid4().hex[:6]}.v1", batch_size=batch_size),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    started, first = time.perf_counter(), None
    while projector.totals.applied < len(records):
        if projector.totals.applied and first is None:
            first = time.perf_counter()
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - (first or started)
    stop.set()
    await task
    await pool.close()
    print(
        f"projector end to end (Kafka -> read models, 3 partitions, batch={batch_size}): "
        f"{len(records) / elapsed:,.0f} ev/s ({len(records)} events in {elapsed:.2f} s after the first batch)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--events", type=int, default=25)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    async with scratch_database(settings.dsn()) as dsn:
        records = recorded_log(args.sessions, args.events)
        print(f"{len(records)} events, {args.sessions} sessions, {len(PROJECTIONS)} projections")
        for batch in (100, args.batch):
            await bench_apply(dsn, records, batch, args.rounds)
        await bench_end_to_end(dsn, settings, records, args.batch)


if __name__ == "__main__":
    asyncio.run(main())
