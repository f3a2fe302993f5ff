"""System benchmark: the whole agentlog as `agentlog dev` runs it (command API, query API, relay and
projector, each its own process with its default settings, on Postgres and Kafka), against the
command API alone, in one run on one machine.

Phases (one scratch database and topic; 200 sessions; wrk is the closed-loop load generator):
1. capacity: wrk, 16 keep-alive connections, POST /v1/sessions/{id}/messages round-robin over the
   sessions for `--seconds`: commands/s accepted; events/s visible in the read models over the
   same window; how long after the load stopped the read models were caught up;
2. freshness: open loop at `--load` (default 0.8) of that capacity for `--latency-seconds`:
   command -> accepted and command -> visible in the read models, p50/p99, from the scheduled send
   time (bench/open_loop.py says how visibility is observed);
3. alone: relay, projector and query API stopped; wrk again against the same command API process:
   the command API's own capacity. The ratio whole system / alone is the headline figure.
For phases 1 and 3 the CPU of each process (utime + stime from /proc) and of the Postgres
backends serving it is divided by the commands accepted, the window running until the read models
caught up; the Kafka broker's CPU is reported too (it is shared with anything else on the broker).
The relay's events per batch and the projector's events per transaction come from their /metrics.

Run from the project root: `python -m bench.bench_system` against the local stack (`agentlog stack
up`; AGENTLOG_DATABASE_URL / AGENTLOG_KAFKA_BOOTSTRAP_SERVERS for others); about 90 s. Needs wrk
(`apt-get install -y wrk`). It creates and drops its database and topic; nothing else is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson
import uvloop
from aiokafka.admin import AIOKafkaAdminClient

from agentlog.edge import keys as auth
from agentlog.stack import kafka_probe
from agentlog.stack.stack import Stack
from bench import http_load
from bench.open_loop import Latencies, RawClient, VisibilityWatch, open_loop
from bench.process_cpu import CpuMeter, Snapshot, cpu_seconds, listener_pid, machine_busy_seconds
from bench.scratch import scratch_database
from eventstore.settings import Settings
from outbox.settings import RelaySettings
from projections.settings import ProjectorSettings
from tests.factories import free_port
from tests.system.processes import Component, System  # the harness the system tests verify, reused as is

TENANT = "bench"
CONNECTIONS = 16
BODY = {"role": "assistant", "content": "x" * 200, "agent": "bench"}  # what wrk_messages.lua sends
PROGRESS = """
SELECT (SELECT coalesce(sum(version), 0) FROM streams WHERE tenant = $1)::bigint AS stored,
       (SELECT coalesce(sum(version), 0) FROM projection_session_versions
        WHERE projector = $2 AND tenant = $1)::bigint AS visible
"""
RELAY_METRICS = ("agentlog_relay_events_published_total", "agentlog_relay_batch_seconds_count")
PROJECTOR_METRICS = ('agentlog_projector_events_total{outcome="applied"}', "agentlog_projector_batches_total")


def _dev_env() -> dict[str, str]:
    """The production defaults the system-test harness shortens (dev runs with the defaults)."""
    relay, projector = RelaySettings.model_fields, ProjectorSettings.model_fields
    return {
        "AGENTLOG_RELAY_POLL_INTERVAL_MS": str(relay["poll_interval_ms"].default),
        "AGENTLOG_RELAY_HEARTBEAT_MS": str(relay["heartbeat_ms"].default),
        "AGENTLOG_RELAY_STANDBY_RETRY_MS": str(relay["standby_retry_ms"].default),
        "AGENTLOG_PROJECTOR_SESSION_TIMEOUT_MS": str(projector["session_timeout_ms"].default),
        "AGENTLOG_RELAY_METRICS_PORT": str(free_port()),
        "AGENTLOG_PROJECTOR_METRICS_PORT": str(free_port()),
    }


def scrape(port: str, names: tuple[str, ...]) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    values = dict(line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))
    return {name: float(values.get(name, 0)) for name in names}


@dataclass
class Mark:
    """Everything read at one edge of a measured window."""

    at: float
    stored: int
    visible: int
    cpu: Snapshot
    busy: float
    broker: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Window:
    seconds: float  # the load's duration
    commands_per_s: float  # accepted (2xx), from wrk
    failed: int
    visible_per_s: float  # events visible in the read models during the load
    caught_up_s: float  # after the load stopped, until every stored event was visible
    commands: int  # events appended in the window
    cpu: dict[str, tuple[float, float]]  # name -> (own, backends) CPU seconds, load start -> caught up
    broker_cpu: float
    machine_busy: float  # CPU seconds of the whole machine (all cores) in the window
    wall: float  # load start -> caught up
    metrics: dict[str, float]


class SystemBench:
    def __init__(self, system: System, dsn: str, bootstrap: str, key: str, sessions: int) -> None:
        self.system, self.dsn, self.key = system, dsn, key
        self.prefix = f"sys-{uuid.uuid4().hex[:6]}"
        self.sessions = [f"{self.prefix}-{i}" for i in range(sessions)]
        self.group = system.env["AGENTLOG_PROJECTOR_GROUP_ID"]
        self.meter = CpuMeter(dsn, {name: _pid(c) for name, c in self.components().items()})
        self.broker_pid = listener_pid(int(bootstrap.rpartition(":")[2]))
        self.pipeline_up = True

    def components(self) -> dict[str, Component]:
        s = self.system
        return {"command API": s.commands, "query API": s.queries, "relay": s.relay, "projector": s.projector}

    async def progress(self) -> tuple[int, int]:
        conn = await asyncpg.connect(self.dsn)
        try:
            row = await conn.fetchrow(PROGRESS, TENANT, self.group)
        finally:
            await conn.close()
        return row["stored"], row["visible"]

    async def caught_up(self, timeout: float = 60) -> float:
        """Seconds until every stored event is visible in the read models."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            stored, visible = await self.progress()
            if visible >= stored:
                return time.perf_counter() - started
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the read models did not catch up in {timeout:.0f} s ({visible} of {stored})")

    async def mark(self) -> Mark:
        stored, visible = await self.progress()
        metrics = {}
        if self.pipeline_up:
            metrics.update(scrape(self.system.env["AGENTLOG_RELAY_METRICS_PORT"], RELAY_METRICS))
            metrics.update(scrape(self.system.env["AGENTLOG_PROJECTOR_METRICS_PORT"], PROJECTOR_METRICS))
        broker = _cpu(self.broker_pid)
        return Mark(
            time.perf_counter(), stored, visible, await self.meter.snapshot(), machine_busy_seconds(), broker, metrics
        )

    async def closed_loop(self, seconds: float) -> Window:
        before = await self.mark()
        result = await http_load.wrk_messages(
            self.system.commands_url,
            self.key,
            self.prefix,
            len(self.sessions),
            connections=CONNECTIONS,
            seconds=seconds,
        )
        at_end = await self.progress()
        caught_up = await self.caught_up() if self.pipeline_up else 0.0
        after = await self.mark()
        return Window(
            seconds=seconds,
            commands_per_s=result.rate,
            failed=result.failed,
            visible_per_s=(at_end[1] - before.visible) / seconds,
            caught_up_s=caught_up,
            commands=after.stored - before.stored,
            cpu=CpuMeter.spent(before.cpu, after.cpu),
            broker_cpu=after.broker - before.broker,
            machine_busy=after.busy - before.busy,
            wall=after.at - before.at,
            metrics={k: after.metrics[k] - before.metrics.get(k, 0) for k in after.metrics},
        )

    async def freshness(self, rate: float, seconds: float) -> Latencies:
        out = Latencies()
        client = RawClient(self.system.commands_port, self.key, BODY)
        own, busy, started = time.process_time(), machine_busy_seconds(), time.perf_counter()
        try:
            async with VisibilityWatch(self.dsn, self.group, TENANT, out) as watch:
                await open_loop(client, watch, out, self.sessions, rate, seconds)
                deadline = time.perf_counter() + 30
                while watch.waiting and time.perf_counter() < deadline:
                    await asyncio.sleep(0.05)
        finally:
            client.close()
        out.generator_cpu = time.process_time() - own
        out.machine_cores_busy = (machine_busy_seconds() - busy) / (time.perf_counter() - started)
        return out

    def stop_pipeline(self) -> None:
        """Leave the command API alone: stop the query API, the relay and the projector."""
        for name, component in self.components().items():
            if name != "command API":
                component.stop()
                del self.meter.processes[name]
        self.pipeline_up = False


def _pid(component: Component) -> int:
    assert component.proc is not None, f"{component.name} is not running"
    return component.proc.pid


def _cpu(pid: int | None) -> float:
    return (cpu_seconds(pid) or 0.0) if pid else 0.0


async def run(args: argparse.Namespace) -> dict:
    if http_load.wrk_path() is None:
        raise SystemExit(http_load.WRK_MISSING)
    stack = Stack.from_settings()
    async with scratch_database(stack.database_url()) as dsn:
        return await _run(args, stack.kafka_bootstrap(), dsn)


async def _run(args: argparse.Namespace, bootstrap: str, dsn: str) -> dict:
    topic = f"agentlog.bench.system.{uuid.uuid4().hex[:8]}.v1"
    await kafka_probe.ensure_topic(bootstrap, topic, partitions=Settings().kafka_partitions)
    conn = await asyncpg.connect(dsn)
    key = await auth.create_key(conn, TENANT, "writer", "bench_system")
    await conn.close()
    system = System(dsn, bootstrap, topic, Path(tempfile.mkdtemp(prefix="agentlog-bench-system-")), **_dev_env())
    try:
        await system.start()
        bench = SystemBench(system, dsn, bootstrap, key, args.sessions)
        await http_load.start_sessions(system.commands_url, key, bench.sessions)
        await bench.closed_loop(args.warmup_seconds)  # connections, plans, caches
        whole = await bench.closed_loop(args.seconds)
        target = args.rate or whole.commands_per_s * args.load
        latencies = await bench.freshness(target, args.latency_seconds)
        bench.stop_pipeline()
        alone = await bench.closed_loop(args.seconds)
    finally:
        system.close()
        await _drop_topic(bootstrap, topic)
    return {"whole": whole, "alone": alone, "target": target, "latencies": latencies}


async def _drop_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")


def summary(r: dict) -> dict:
    """The figures of one run, flat (for --json and for comparing runs)."""
    whole, alone, lat = r["whole"], r["alone"], r["latencies"]
    m = whole.metrics
    per = {name: (own + pg) * 1000 / whole.commands for name, (own, pg) in whole.cpu.items()}
    pipeline = sum(sum(whole.cpu[n]) for n in ("relay", "projector")) + whole.broker_cpu
    return {
        "commands_per_s": whole.commands_per_s,
        "alone_commands_per_s": alone.commands_per_s,
        "ratio": whole.commands_per_s / alone.commands_per_s,
        "visible_per_s": whole.visible_per_s,
        "caught_up_s": whole.caught_up_s,
        "relay_events_per_batch": m["agentlog_relay_events_published_total"]
        / max(1, m["agentlog_relay_batch_seconds_count"]),
        "projector_events_per_transaction": m['agentlog_projector_events_total{outcome="applied"}']
        / max(1, m["agentlog_projector_batches_total"]),
        "cpu_ms_per_command": {**per, "kafka broker": whole.broker_cpu * 1000 / whole.commands},
        "cpu_ms_per_command_total": sum(per.values()) + whole.broker_cpu * 1000 / whole.commands,
        "alone_cpu_ms_per_command": sum(sum(v) for v in alone.cpu.values()) * 1000 / alone.commands,
        "pipeline_cpu_ms_per_event": pipeline * 1000 / whole.commands,
        "open_loop_rate": r["target"],
        "open_loop_achieved": len(lat.accepted) / lat.elapsed if lat.elapsed else 0.0,
        "accepted_p50_ms": pct(lat.accepted, 0.5),
        "accepted_p99_ms": pct(lat.accepted, 0.99),
        "visible_p50_ms": pct(lat.visible, 0.5),
        "visible_p99_ms": pct(lat.visible, 0.99),
        "visible_max_ms": pct(lat.visible, 1.0),
        "pipeline_p50_ms": pct(lat.after_accept, 0.5),
        "pipeline_p99_ms": pct(lat.after_accept, 0.99),
        "visible_n": len(lat.visible),
        "errors": len(lat.errors) + whole.failed + alone.failed,
        "machine_cores_busy": whole.machine_busy / whole.wall,
        "open_loop_machine_cores_busy": lat.machine_cores_busy,
        "open_loop_generator_cpu_ms_per_command": lat.generator_cpu * 1000 / max(1, len(lat.accepted)),
    }


def report(r: dict, s: dict, args: argparse.Namespace) -> None:
    whole, alone = r["whole"], r["alone"]
    print(
        f"whole system as `agentlog dev` runs it: {args.sessions} sessions, wrk {CONNECTIONS} connections, "
        f"{args.seconds:.0f} s per phase; {os.cpu_count()} cores, {s['machine_cores_busy']:.2f} busy on average "
        "(anything else running on the machine included)"
    )
    print(
        f"commands accepted        : {s['commands_per_s']:8.0f}/s   command API alone {s['alone_commands_per_s']:.0f}/s"
        f"   ratio {s['ratio']:.2f} (goal >= 0.8)"
    )
    print(
        f"events visible           : {s['visible_per_s']:8.0f}/s during the load; caught up "
        f"{s['caught_up_s']:.2f} s after it stopped"
    )
    print(
        f"batching under load      : relay {s['relay_events_per_batch']:.1f} events/batch, projector "
        f"{s['projector_events_per_transaction']:.1f} events/transaction"
    )
    print(
        f"open loop {'fixed rate' if args.rate else 'at ' + format(args.load, '.0%'):15s}: {s['open_loop_rate']:.0f}/s target, {s['open_loop_achieved']:.0f}/s "
        f"achieved, n={s['visible_n']}, errors={s['errors']}"
    )
    print(
        f"  load generator         : {s['open_loop_generator_cpu_ms_per_command']:.3f} ms CPU per command (this "
        f"process); machine {s['open_loop_machine_cores_busy']:.2f} cores busy; below the target rate = overloaded"
    )
    print(f"  command -> accepted    : p50 {s['accepted_p50_ms']:6.1f} ms  p99 {s['accepted_p99_ms']:6.1f} ms")
    print(
        f"  command -> visible     : p50 {s['visible_p50_ms']:6.1f} ms  p99 {s['visible_p99_ms']:6.1f} ms  "
        f"max {s['visible_max_ms']:.1f} ms  (goal p99 <= 100)"
    )
    print(
        f"  accepted -> visible    : p50 {s['pipeline_p50_ms']:6.1f} ms  p99 {s['pipeline_p99_ms']:6.1f} ms  "
        "(relay + Kafka + projector, and the batching windows)"
    )
    print("CPU per command (ms)     :   process  its Postgres backends")
    for name, (own, pg) in whole.cpu.items():
        print(f"  {name:22s} : {own * 1000 / whole.commands:9.3f}  {pg * 1000 / whole.commands:9.3f}")
    print(f"  {'Kafka broker (shared)':22s} : {whole.broker_cpu * 1000 / whole.commands:9.3f}")
    print(
        f"  total                  : {s['cpu_ms_per_command_total']:9.3f}   command API alone "
        f"{s['alone_cpu_ms_per_command']:.3f} (process + backends)"
    )
    print(
        f"delivery pipeline        : {s['pipeline_cpu_ms_per_event']:.3f} ms CPU per event (relay + projector + "
        "their backends + broker; goal <= 0.3)"
    )
    if alone.failed or whole.failed:
        print(f"failed answers: whole {whole.failed}, alone {alone.failed}")
    for error in sorted(set(r["latencies"].errors))[:5]:
        print(f"  open-loop error: {error}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0, help="each closed-loop phase")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--load", type=float, default=0.8, help="open-loop rate as a fraction of the capacity")
    parser.add_argument("--rate", type=float, help="open-loop rate in commands/s instead of --load")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args(argv)
    result = uvloop.run(run(args))  # the load generator shares the cores: keep its loop cheap
    figures = summary(result)
    report(result, figures, args)
    if args.json:
        print("BENCH_SYSTEM " + orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
