"""Delivery pipeline benchmark: relay, Kafka and projector alone, at a fixed append rate.

The events are appended by this process straight into the event store (no command API), at
`--rate` events/s over `--sessions` sessions, for `--seconds`; relay and projector run as their
own processes with their default settings (as `agentlog dev` runs them; AGENTLOG_RELAY_* / AGENTLOG_PROJECTOR_* in the
environment override them, for A/B runs). Printed: the CPU per
event of relay, projector, their Postgres backends and the Kafka broker (utime + stime from
/proc, from the first append until the read models caught up), the relay's events per batch and
the projector's events per transaction (from their /metrics),.

An open loop at a fixed rate makes batch sizes depend on the rate and the windows only, so A/B
runs on a busy machine compare CPU per event far better than bench_system's closed loop can.
Run from the project root: `python -m bench.bench_pipeline [--rate 600]`.

`--windows 20,40,80` runs once per relay window (a system each) and splits each component's CPU
into a cost per batch and a cost per event (a least-squares line through CPU per event against
1 / events per batch): larger batches only move the first, so the sum of the second is the
pipeline's floor, what it costs per event however well it batches.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg
import orjson
import uvloop

from agentlog.stack import kafka_probe
from agentlog.stack.stack import Stack
from bench.bench_system import PROJECTOR_METRICS, RELAY_METRICS, _cpu, _dev_env, _pid, scrape
from bench.open_loop import Latencies, VisibilityWatch
from bench.open_loop_host import pct
from bench.process_cpu import CpuMeter, listener_pid
from bench.scratch import component_logs, drop_topics, scratch_database
from eventstore import db
from eventstore import events as ev
from eventstore.positions import ANY
from eventstore.registry import to_stored
from eventstore.settings import Settings
from eventstore.store import EventStore
from tests.system.processes import System

TENANT = "bench"
MESSAGE = to_stored(ev.MessageAdded(role="assistant", content="x" * 200, agent="bench"))


COMPONENTS = (
    ("relay", "relay_own_ms"),
    ("its backends", "relay_pg_ms"),
    ("projector", "projector_own_ms"),
    ("its backends", "projector_pg_ms"),
    ("Kafka broker", "broker_ms"),
)


async def run(args: argparse.Namespace, **env: str) -> dict:
    stack = Stack.from_settings()
    with component_logs("pipeline") as logs:
        async with scratch_database(stack.database_url()) as dsn:
            bootstrap = stack.kafka_bootstrap()
            topic = f"agentlog.bench.pipeline.{uuid.uuid4().hex[:8]}.v1"
            await kafka_probe.ensure_topic(bootstrap, topic, partitions=Settings().kafka_partitions)
            system = System(dsn, bootstrap, topic, logs, **(_dev_env() | env))
            try:
                await system.start()
                return await _measure(args, system, dsn, bootstrap)
            finally:
                system.close()
                await drop_topics(bootstrap, topic)


async def _measure(args: argparse.Namespace, system: System, dsn: str, bootstrap: str) -> dict:
    group = system.env["AGENTLOG_PROJECTOR_GROUP_ID"]
    meter = CpuMeter(dsn, {"relay": _pid(system.relay), "projector": _pid(system.projector)})
    broker_pid = listener_pid(int(bootstrap.rpartition(":")[2]))
    pool = await db.create_pool(dsn, min_size=8, max_size=8)
    store = EventStore(pool)
    sessions = [f"p-{uuid.uuid4().hex[:6]}-{i}" for i in range(args.sessions)]
    watcher = await asyncpg.connect(dsn)

    latencies = Latencies()
    watching: list[VisibilityWatch] = []  # the measured phase's watch (none in the warm-up)

    async def append(session: str) -> None:
        started = time.perf_counter()
        result = await store.append(TENANT, session, [MESSAGE], expected_version=ANY)
        for watch in watching:
            watch.expect(session, result.version, started, time.perf_counter())

    async def phase(seconds: float) -> None:
        interval, started, n, tasks = 1 / args.rate, time.perf_counter(), 0, set()
        while (due := started + n * interval) < started + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(append(sessions[n % len(sessions)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)

    async def caught_up() -> None:
        stored = await watcher.fetchval("SELECT coalesce(sum(version), 0) FROM streams WHERE tenant = $1", TENANT)
        while True:
            seen = await watcher.fetchval(
                "SELECT coalesce(sum(version), 0) FROM projection_session_versions WHERE projector = $1 AND tenant = $2",
                group,
                TENANT,
            )
            if seen >= stored:
                return
            await asyncio.sleep(0.005)

    await phase(args.warmup_seconds)
    await caught_up()
    cpu0, broker0 = await meter.snapshot(), _cpu(broker_pid)
    m0 = scrape(system.env["AGENTLOG_RELAY_METRICS_PORT"], RELAY_METRICS) | scrape(
        system.env["AGENTLOG_PROJECTOR_METRICS_PORT"], PROJECTOR_METRICS
    )
    n0 = await watcher.fetchval("SELECT coalesce(sum(version), 0) FROM streams WHERE tenant = $1", TENANT)
    t0 = time.perf_counter()
    async with VisibilityWatch(dsn, group, TENANT, latencies) as watch:
        watching.append(watch)
        await phase(args.seconds)
        await caught_up()
        while watch.waiting and time.perf_counter() - t0 < args.seconds + 30:
            await asyncio.sleep(0.01)
    wall = time.perf_counter() - t0
    cpu1, broker1 = await meter.snapshot(), _cpu(broker_pid)
    m1 = scrape(system.env["AGENTLOG_RELAY_METRICS_PORT"], RELAY_METRICS) | scrape(
        system.env["AGENTLOG_PROJECTOR_METRICS_PORT"], PROJECTOR_METRICS
    )
    events = int(
        await watcher.fetchval("SELECT coalesce(sum(version), 0) FROM streams WHERE tenant = $1", TENANT)
    ) - int(n0)
    spent = CpuMeter.spent(cpu0, cpu1)
    d = {k: m1[k] - m0.get(k, 0) for k in m1}
    await watcher.close()
    await pool.close()
    per = {name: (own * 1000 / events, pg * 1000 / events) for name, (own, pg) in spent.items()}
    broker = (broker1 - broker0) * 1000 / events
    return {
        "events": events,
        "wall_s": wall,
        "relay_own_ms": per["relay"][0],
        "relay_pg_ms": per["relay"][1],
        "projector_own_ms": per["projector"][0],
        "projector_pg_ms": per["projector"][1],
        "broker_ms": broker,
        "pipeline_ms": sum(a + b for a, b in per.values()) + broker,
        "relay_events_per_batch": d[RELAY_METRICS[0]] / max(1, d[RELAY_METRICS[1]]),
        "projector_events_per_transaction": d[PROJECTOR_METRICS[0]] / max(1, d[PROJECTOR_METRICS[1]]),
        "visible_p50_ms": pct(latencies.after_accept, 0.5),
        "visible_p99_ms": pct(latencies.after_accept, 0.99),
    }


def split_costs(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(ms per batch, ms per event) of the least-squares line through (events per batch, ms of CPU
    per event) points, CPU per event = per event + per batch / events per batch; None without two
    different batch sizes."""
    xs = [1 / batch for batch, _ in points if batch > 0]
    ys = [ms for batch, ms in points if batch > 0]
    if len(xs) < 2 or max(xs) - min(xs) < 1e-9:
        return None
    per_batch, per_event = statistics.linear_regression(xs, ys)
    return per_batch, per_event


def split_report(runs: list[tuple[int, dict]]) -> str:
    """What the runs at several relay windows say: each component's cost per batch and per event."""
    lines = ["relay window: events/batch, pipeline ms CPU per event"]
    for window, r in runs:
        lines.append(
            f"  {window:4d} ms: {r['relay_events_per_batch']:6.1f}, {r['pipeline_ms']:.3f}"
            f" (appended -> visible p50 {r['visible_p50_ms']:.1f} ms, p99 {r['visible_p99_ms']:.1f} ms)"
        )
    lines.append("CPU split (least squares over the runs): ms per relay batch, ms per event")
    floor, fixed = 0.0, 0.0
    for name, key in COMPONENTS:
        split = split_costs([(r["relay_events_per_batch"], r[key]) for _, r in runs])
        if split is None:
            return "\n".join([*lines, "  (needs runs with at least two different batch sizes)"])
        per_batch, per_event = split
        fixed, floor = fixed + per_batch, floor + per_event
        lines.append(f"  {name:13s}: {per_batch:6.3f} per batch, {per_event:.3f} per event")
    lines.append(
        f"  {'pipeline':13s}: {fixed:6.3f} per batch, {floor:.3f} per event: the floor larger batches cannot lower"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=600.0, help="events appended per second")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument(
        "--windows",
        type=lambda text: [int(w) for w in text.split(",")],
        help="relay windows in ms, a run each (e.g. 20,40,80), and the CPU split per batch and per event",
    )
    args = parser.parse_args(argv)
    if args.windows:
        runs = []
        for window in args.windows:
            r = uvloop.run(run(args, AGENTLOG_RELAY_BATCH_WINDOW_MS=str(window)))
            print(f"BENCH_PIPELINE window={window} " + orjson.dumps(r).decode(), flush=True)
            runs.append((window, r))
        print(split_report(runs))
        return
    r = uvloop.run(run(args))
    print("BENCH_PIPELINE " + orjson.dumps(r).decode())
    print(
        f"{r['events']} events at {args.rate:.0f}/s: pipeline {r['pipeline_ms']:.3f} ms CPU per event = relay "
        f"{r['relay_own_ms']:.3f} + {r['relay_pg_ms']:.3f} (backends), projector {r['projector_own_ms']:.3f} + "
        f"{r['projector_pg_ms']:.3f}, broker {r['broker_ms']:.3f}; relay {r['relay_events_per_batch']:.1f} "
        f"events/batch, projector {r['projector_events_per_transaction']:.1f} events/transaction; appended -> visible p50 {r['visible_p50_ms']:.1f} ms, p99 {r['visible_p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
