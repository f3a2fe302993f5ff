"""Relay benchmark (one run, bounded time, ratios against raw limits measured in the same run).

1. drain: the relay publishes a pre-filled outbox backlog (default 200,000 events);
2. bare: a plain aiokafka send loop of the very same records (acks=all, idempotence, same batching);
3. ceiling: Kafka's own ProducerPerformance (Java) with the same record size and settings;
4. latency: append -> record visible to a Kafka consumer, p50/p99, at ~50% of the sustainable
   append rate, with the relay as its own process (`agentlog relay`).

Run from the project root against the local stack:
    python -m bench.bench_relay [--events 200000]
It creates (and drops) a database and topics of its own; nothing else is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentlog.stack import kafka_probe  # noqa: E402
from agentlog.stack.kafka import resolve_jars  # noqa: E402
from agentlog.stack.stack import Stack  # noqa: E402
from bench.http_load import number  # noqa: E402
from bench.open_loop_host import pct  # noqa: E402
from bench.scratch import drop_topics, scratch_database  # noqa: E402
from eventstore.settings import Settings  # noqa: E402
from outbox import rows as outbox_rows  # noqa: E402
from outbox.relay import Relay  # noqa: E402
from outbox.settings import RelaySettings  # noqa: E402

CONTENT = "I was charged twice for my subscription and now I cannot log in to my account. " * 3
PREFILL = """
WITH ev AS (
    INSERT INTO events (tenant, session_id, version, event_id, type, schema_version, data, metadata)
    SELECT 'bench', 'bench-' || (g % $2), g / $2 + 1, gen_random_uuid(), 'MessageAdded', 1,
           jsonb_build_object('role', 'agent', 'agent', 'billing', 'content', $3::text),
           jsonb_build_object('correlation_id', 'corr-' || (g % $2))
    FROM generate_series(0, $1 - 1) AS g ORDER BY g
    RETURNING position, tenant, session_id)
INSERT INTO outbox (position, tenant, session_id) SELECT position, tenant, session_id FROM ev ORDER BY position
"""
APPEND = """
WITH s AS (INSERT INTO streams (tenant, session_id, version, status) VALUES ('bench', $1, 1, 'open')
           ON CONFLICT (tenant, session_id) DO UPDATE SET version = streams.version + 1 RETURNING version),
     e AS (INSERT INTO events (tenant, session_id, version, event_id, type, schema_version, data)
           SELECT 'bench', $1, s.version, gen_random_uuid(), 'MessageAdded', 1, jsonb_build_object('content', $2::text)
           FROM s RETURNING position, version)
INSERT INTO outbox (position, tenant, session_id) SELECT position, 'bench', $1 FROM e RETURNING (SELECT version FROM e)
"""


def relay_settings(batch_size: int, in_flight: int) -> RelaySettings:
    return RelaySettings(
        batch_size=batch_size, max_in_flight_batches=in_flight, check_topic=False, poll_interval_ms=100
    )


async def prefill(dsn: str, events: int, sessions: int) -> list:
    conn = await asyncpg.connect(dsn)
    from eventstore.db import init_connection

    await init_connection(conn)
    await conn.execute(PREFILL, events, sessions, CONTENT)
    records = await outbox_rows.fetch_batch(conn, events)  # the same records, for the bare loop
    await conn.close()
    return [(r.event.kafka_key(), r.event.kafka_value(), r.event.kafka_headers()) for r in records]


async def bench_drain(settings: Settings, relay: RelaySettings, dsn: str, events: int) -> float:
    stop = asyncio.Event()
    async with Relay(settings, relay) as instance:
        started = time.perf_counter()
        task = asyncio.create_task(instance.run(stop))
        while instance.metrics.value("agentlog_relay_events_published_total") < events:
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    return elapsed


async def bench_bare(bootstrap: str, topic: str, records: list, relay: RelaySettings) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=relay.linger_ms,
        max_batch_size=relay.max_batch_bytes,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for chunk in range(0, len(records), relay.batch_size):
            futures = [
                await producer.send(topic, value, key=key, headers=headers)
                for key, value, headers in records[chunk : chunk + relay.batch_size]
            ]
            await asyncio.gather(*futures)
    finally:
        elapsed = time.perf_counter() - started
        await producer.stop()
    return elapsed


def bench_java(libs: Path, bootstrap: str, topic: str, events: int, size: int, relay: RelaySettings) -> float:
    out = subprocess.run(
        [
            "java",
            "-Xmx512m",
            "-cp",
            f"{libs}/*",
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(events),
            "--record-size",
            str(size),
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            f"linger.ms={relay.linger_ms}",
            f"batch.size={relay.max_batch_bytes}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = [line for line in out.stdout.splitlines() if "records sent" in line][-1]
    return number(r"([\d.]+) records/sec", summary)


async def sustainable_append_rate(dsn: str, seconds: float, writers: int) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def write(i: int) -> None:
        nonlocal done
        conn = await asyncpg.connect(dsn)
        while time.monotonic() < deadline:
            await conn.fetchval(APPEND, f"rate-{i}-{done % 50}", CONTENT)
            done += 1
        await conn.close()

    await asyncio.gather(*(write(i) for i in range(writers)))
    return done / seconds


async def bench_latency(dsn: str, bootstrap: str, topic: str, rate: float, seconds: float) -> list[float]:
    sent: dict[tuple[bytes, bytes], float] = {}
    latencies: list[float] = []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in sorted(await consumer._client._wait_on_metadata(topic))]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set() or len(latencies) < len(sent):
            for batch in (await consumer.getmany(timeout_ms=50)).values():
                now = time.perf_counter()
                for record in batch:
                    key = (record.key, dict(record.headers)["session_version"])
                    if key in sent:
                        latencies.append(now - sent[key])
            if stop.is_set() and time.perf_counter() > stop_at + 10:
                return

    stop_at = float("inf")
    reader = asyncio.create_task(consume())
    conn = await asyncpg.connect(dsn)
    interval, n = 1 / rate, int(rate * seconds)
    started = time.perf_counter()
    for i in range(n):
        await asyncio.sleep(max(0.0, started + i * interval - time.perf_counter()))
        session = f"lat-{i % 100}".encode()
        t0 = time.perf_counter()
        version = await conn.fetchval(APPEND, session.decode(), CONTENT)
        sent[(session, str(version).encode())] = t0
    stop_at = time.perf_counter()
    stop.set()
    await reader
    await conn.close()
    await consumer.stop()
    return sorted(latencies)


async def main(args) -> None:
    stack = Stack.from_settings()
    async with scratch_database(stack.database_url()) as dsn:
        await run(args, stack, dsn)


async def run(args, stack: Stack, dsn: str) -> None:
    bootstrap = stack.kafka_bootstrap()
    relay = relay_settings(args.batch_size, args.in_flight)
    topics = {k: f"agentlog.bench.{k}.{uuid.uuid4().hex[:8]}.v1" for k in ("relay", "bare", "java", "lat")}
    for topic in topics.values():
        await kafka_probe.ensure_topic(bootstrap, topic, args.partitions)
    proc = None
    try:
        records = await prefill(dsn, args.events, args.sessions)
        size = sum(len(v) for _, v, _ in records) // len(records)
        drain_s = await bench_drain(
            Settings(database_url=dsn, kafka_bootstrap_servers=bootstrap, kafka_topic=topics["relay"]),
            relay,
            dsn,
            args.events,
        )
        bare_s = await bench_bare(bootstrap, topics["bare"], records, relay)
        del records
        java_rate = bench_java(
            resolve_jars(stack.postgres.home, stack.settings.kafka_version, stack.settings.log4j_version),
            bootstrap,
            topics["java"],
            args.events,
            size,
            relay,
        )
        drain_rate, bare_rate = args.events / drain_s, args.events / bare_s
        print(
            f"events={args.events} value_bytes~{size} partitions={args.partitions} batch={args.batch_size} "
            f"in_flight={relay.max_in_flight_batches}"
        )
        print(f"relay drain        : {drain_rate:10.0f} events/s ({drain_s:.1f}s)")
        print(
            f"bare aiokafka loop : {bare_rate:10.0f} events/s ({bare_s:.1f}s)   relay/bare = {drain_rate / bare_rate:.2f}"
        )
        print(
            f"ProducerPerformance: {java_rate:10.0f} records/s           relay/java = {drain_rate / java_rate:.2f}"
            f"  bare/java = {bare_rate / java_rate:.2f}"
        )

        env = {
            **os.environ,
            "AGENTLOG_DATABASE_URL": dsn,
            "AGENTLOG_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AGENTLOG_KAFKA_TOPIC": topics["lat"],
            "AGENTLOG_RELAY_CHECK_TOPIC": "false",
            "AGENTLOG_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen([sys.executable, "-m", "agentlog", "relay"], cwd=ROOT, env=env)
        capacity = await sustainable_append_rate(dsn, args.rate_seconds, writers=4)
        target = capacity / 2
        latencies = await bench_latency(dsn, bootstrap, topics["lat"], target, args.latency_seconds)
        print(f"append capacity    : {capacity:10.0f} appends/s (4 writers, relay running)")
        print(
            f"latency @ {target:.0f}/s  : p50 {pct(latencies, 0.5):.1f} ms  p99 {pct(latencies, 0.99):.1f} ms  "
            f"max {pct(latencies, 1.0):.1f} ms  (n={len(latencies)}, goal p99 <= 50 ms)"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        await drop_topics(bootstrap, *topics.values())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=RelaySettings().batch_size)
    parser.add_argument(
        "--in-flight",
        type=int,
        default=RelaySettings().max_in_flight_batches,
        help="relay batches awaiting acks at once (1 = no pipelining)",
    )
    parser.add_argument("--rate-seconds", type=float, default=3.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
