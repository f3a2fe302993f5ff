"""Rebuild benchmark (issue 12; one run, ratios against the projector's raw apply speed measured in
the same run, on the same log).

1. log: N events (sessions of 25 events, interleaved as a busy system writes them) copied into the
   events table of a scratch database;
2. raw limit: the projector's batch applier (version guard, decoding, handlers, grouped writes)
   applying the log batch by batch, timing only the apply transactions (the batches are read
   before the clock starts): all projections into the live tables (this is also the live model
   the rebuilds compare against), and the session summaries alone into scratch tables;
3. rebuild of the session summaries from the store: events/s over the whole command (read,
   apply, cursor, drift check, swap), the ratio to (2) (goal >= 0.5) and the drift check's own
   share (goal < 20%);
4. rebuild of every projection in one pass (`rebuild all`) against the projector applying all of
   them;
5. rebuild of the session summaries from Kafka (the log produced to a 3-partition topic first);
6. a one-session rebuild (`--session`) of a 10,000-event session (goal < 1 s).

Run: python -m bench.bench_rebuild [--events 100000] [--skip-kafka]   (--events 1000000: the
issue's million; minutes). Uses the local stack; creates and drops its own database and topic.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from agentlog.stack import kafka_probe
from bench.bench_projections import session_events
from bench.scratch import drop_topics, scratch_database
from eventstore import db
from eventstore.positions import START
from eventstore.registry import to_stored
from eventstore.settings import Settings
from eventstore.store import EventStore
from projections.projector.applier import BatchApplier
from projections.read_models import summaries
from projections.read_models.catalog import PROJECTIONS
from projections.read_models.projection import Projection
from projections.rebuild import shadow
from projections.rebuild.job import ProjectionRebuild
from projections.rebuild.sessions import SessionRebuild
from projections.rebuild.sources import KafkaSource
from projections.settings import DEFAULT_GROUP

PER_SESSION = 25
COPY_COLUMNS = ("tenant", "session_id", "version", "event_id", "type", "schema_version", "data", "metadata")
RAW_SCHEMA = "bench_raw"


def log_rows(sessions: int, per_session: int, prefix: str = "bench"):
    """Rows for COPY, interleaved by version: every session's v1, then every session's v2, ..."""
    templates = [to_stored(e) for e in session_events(0, per_session)]
    for version, (type_, schema_version, data) in enumerate(templates, start=1):
        encoded = orjson.dumps(data).decode()
        for i in range(sessions):
            yield ("bench", f"{prefix}-{i}", version, uuid.uuid4(), type_, schema_version, encoded, "{}")


async def write_log(pool: asyncpg.Pool, rows, chunk: int = 50_000) -> int:
    written, buffer = 0, []
    async with pool.acquire() as conn:
        # COPY sends jsonb as text here: the pool's orjson codec would encode the string again.
        await conn.reset_type_codec("jsonb", schema="pg_catalog")
        try:
            for row in rows:
                buffer.append(row)
                if len(buffer) == chunk:
                    written += await _copy(conn, buffer)
                    buffer = []
            written += await _copy(conn, buffer)
        finally:
            await db.init_connection(conn)
    return written


async def _copy(conn: asyncpg.Connection, rows: list) -> int:
    if rows:
        await conn.copy_records_to_table("events", records=rows, columns=COPY_COLUMNS)
    return len(rows)


async def raw_apply(pool: asyncpg.Pool, projections: Sequence[Projection], schema: str, batch: int) -> float:
    """Seconds the projector's applier spends applying the whole log in batches (reads untimed)."""
    applier = BatchApplier(projections, DEFAULT_GROUP, notify=False)
    store, cursor, spent = EventStore(pool), START, 0.0
    while True:
        events, cursor = await store.read_all(cursor, batch)
        if not events:
            return spent
        async with pool.acquire() as conn:
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path = {schema}, public")
                await applier.apply(conn, events)
            spent += time.perf_counter() - started


async def scratch_tables(pool: asyncpg.Pool, tables: Sequence[str]) -> None:
    await pool.execute(f"DROP SCHEMA IF EXISTS {RAW_SCHEMA} CASCADE")
    await pool.execute(f"CREATE SCHEMA {RAW_SCHEMA}")
    for table in shadow.shadow_tables(tuple(tables)):
        await pool.execute(f"CREATE TABLE {RAW_SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL)")


async def rebuild(pool: asyncpg.Pool, name: str, batch: int, source=None):
    summary = await ProjectionRebuild(pool, name, batch_size=batch, source=source).run()
    if summary.status != "swapped":
        raise SystemExit(f"rebuild of {name}: {summary.status} {summary.as_dict()}")
    return summary


def describe(summary, events: int, raw_rate: float) -> str:
    rate = events / summary.seconds
    drift = summary.drift.seconds
    return (
        f"{rate:,.0f} ev/s ({events:,} events in {summary.seconds:.1f} s: build {summary.build_seconds:.1f} s, "
        f"drift check {drift:.2f} s = {drift / summary.seconds:.0%}, swap {summary.swap_seconds:.2f} s); "
        f"ratio to raw apply {rate / raw_rate:.2f}"
    )


async def produce(bootstrap: str, topic: str, pool: asyncpg.Pool) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    started, store, cursor = time.perf_counter(), EventStore(pool), START
    try:
        while True:
            events, cursor = await store.read_all(cursor, 5000)
            if not events:
                break
            for r in events:
                await producer.send(topic, r.kafka_value(), key=r.kafka_key(), headers=r.kafka_headers())
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def one_session(pool: asyncpg.Pool, events: int, batch: int) -> None:
    await write_log(pool, log_rows(1, events, prefix="long"))
    applier = BatchApplier(PROJECTIONS, DEFAULT_GROUP)
    recorded = await EventStore(pool).read_stream("bench", "long-0")
    for i in range(0, len(recorded), batch):  # projected live, as the projector would
        async with pool.acquire() as conn, conn.transaction():
            await applier.apply(conn, recorded[i : i + batch])
    for name in ("session_summaries", "session_timeline"):
        result = await SessionRebuild(pool, name, [("bench", "long-0")]).run()
        (outcome,) = result.sessions
        print(
            f"one session ({outcome.events:,} events), {name}: {outcome.seconds:.2f} s ({outcome.status}; goal < 1 s)"
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000, help="events in the log (the issue's: 1000000)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--session-events", type=int, default=10_000)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--skip-all", action="store_true", help="skip the rebuild of every projection")
    args = parser.parse_args()
    settings = Settings()
    sessions = max(args.events // PER_SESSION, 1)
    async with scratch_database(settings.dsn()) as dsn:
        pool = await db.create_pool(dsn, min_size=1, max_size=4)
        try:
            await run(pool, settings, sessions, args)
        finally:
            await pool.close()


async def run(pool: asyncpg.Pool, settings: Settings, sessions: int, args) -> None:
    started = time.perf_counter()
    n = await write_log(pool, log_rows(sessions, PER_SESSION))
    await pool.execute("ANALYZE events")
    print(f"log: {n:,} events ({sessions:,} sessions x {PER_SESSION}) written in {time.perf_counter() - started:.1f} s")

    raw_all = n / await raw_apply(pool, PROJECTIONS, "public", args.batch)
    print(f"raw apply, all {len(PROJECTIONS)} projections in one pass (the live model): {raw_all:,.0f} ev/s")
    await scratch_tables(pool, summaries.PROJECTION.tables)
    raw_summaries = n / await raw_apply(pool, [summaries.PROJECTION], RAW_SCHEMA, args.batch)
    await pool.execute(f"DROP SCHEMA {RAW_SCHEMA} CASCADE")
    print(f"raw apply, session summaries alone: {raw_summaries:,.0f} ev/s")

    summary = await rebuild(pool, "session_summaries", args.batch)
    print(f"rebuild session_summaries from the store: {describe(summary, n, raw_summaries)}")

    if not args.skip_all:
        summary = await rebuild(pool, "all", args.batch)
        print(f"rebuild all {len(PROJECTIONS)} projections in one pass from the store: {describe(summary, n, raw_all)}")

    if not args.skip_kafka:
        topic = f"agentlog.bench.rebuild.{uuid.uuid4().hex[:8]}.v1"
        bootstrap = settings.kafka_bootstrap_servers
        await kafka_probe.ensure_topic(bootstrap, topic, partitions=3)
        try:
            print(f"produced the log to {topic} (3 partitions) in {await produce(bootstrap, topic, pool):.1f} s")
            source = KafkaSource(bootstrap, topic)
            summary = await rebuild(pool, "session_summaries", args.batch, source)
            print(f"rebuild session_summaries from Kafka: {describe(summary, n, raw_summaries)}")
        finally:
            await drop_topics(bootstrap, topic)

    await one_session(pool, args.session_events, args.batch)
    print(f"whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
