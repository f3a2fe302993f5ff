"""System benchmark: the whole agentlog as `agentlog dev` runs it (command API, query API, relay and
projector, each its own process with its default settings, on Postgres and Kafka), against the
command API alone, in one run on one machine.

Phases (one scratch database and topic; 200 sessions):
1. capacity, whole and alone, interleaved: `--rounds` rounds, each a window of the whole system
   and then one of the command API alone (the relay, the projector and the query API paused with
   SIGSTOP, resumed with SIGCONT and caught up before the next round), of `--seconds` / rounds
   each: wrk, 16 keep-alive connections, POST /v1/sessions/{id}/messages round-robin over the
   sessions. The ratio whole / alone, the headline figure, is taken over the rounds together
   and per round: on a shared host the machine's speed moves by half within a minute, and a
   phase of each minutes apart measured that as often as the system. Whole: commands/s
   accepted; events/s visible in the read models over the same windows; how long after the load
   stopped the read models were caught up;
2. capacity with the open loop's own generator (bench/open_loop.py), closed loop, 16 connections,
   for `--capacity-seconds`: the whole system's capacity on this machine *while this generator
   shares the cores* (its CPU per command is measured and printed, as is wrk's);
3. freshness: open loop at `--load` (default 0.8) of phase 2's capacity (`--capacity-from wrk`:
   of phase 1's) after a `--warmup-seconds` warm-up at the same rate, for `--latency-seconds`:
   command -> accepted, command -> visible in the read models and accepted -> visible, p50/p99,
   from each command's scheduled send time (bench/open_loop.py says how visibility is observed);
   below 95 % of the target rate the run is reported as overloaded, without percentiles;
For phases 1 and 2 the CPU of each process (utime + stime from /proc) and of the Postgres
backends serving it is divided by the commands accepted, the window running until the read models
caught up and the projector wrote the fold snapshots due (its /metrics); the Kafka broker's CPU
is reported too (it is shared with anything else on the broker). The figures and the report are
bench/system_figures.py's.
The relay's events per batch and the projector's events per transaction come from their /metrics,
as do the open loop's two pipeline halves (append -> Kafka acknowledged, Kafka -> read models
committed: their stage histograms' means); each open-loop command is also taken apart by stage
(to appended, in the relay, to the read models: bench/stage_split.py), and the slowest 1 % with
it. For phases 2 and 3 the command API's event loop's share
of the time on a core and runnable but waiting for one is read from /proc/<pid>/schedstat: that one
thread serves every command, so the two say how much room "80 % of capacity" left it.

Run from the project root: `python -m bench.bench_system` against the local stack (`agentlog stack
up`; AGENTLOG_DATABASE_URL / AGENTLOG_KAFKA_BOOTSTRAP_SERVERS for others); about 90 s. Needs wrk
(`apt-get install -y wrk`). It creates and drops its database and topic; nothing else is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson
import uvloop

from agentlog.edge import keys as auth
from agentlog.stack import kafka_probe
from agentlog.stack.stack import Stack
from bench import http_load, stage_split
from bench.open_loop import Latencies, LoadGenerator, VisibilityWatch
from bench.process_cpu import (
    CpuMeter,
    FsyncProbe,
    HostTime,
    PostgresCpu,
    Snapshot,
    cpu_seconds,
    host_time,
    listener_pid,
    machine_busy_seconds,
    reference_loop_ms,
    sched_seconds,
)
from bench.scratch import component_logs, drop_topics, scratch_database
from bench.system_figures import (
    CONNECTIONS,
    PROJECTOR_METRICS,
    RELAY_METRICS,
    Window,
    report,
    summary,
)
from eventstore.settings import Settings
from outbox.settings import RelaySettings
from projections.settings import ProjectorSettings
from tests.factories import free_port
from tests.system.processes import Component, System  # the harness the system tests verify, reused as is

TENANT = "bench"
BODY = {"role": "assistant", "content": "x" * 200, "agent": "bench"}  # what wrk_messages.lua sends
PAUSE_LIMIT_S = 9.0  # a window alone, the projector paused: under its Kafka session timeout (10 s)
HOST_SAMPLE_S = 0.1  # /proc/stat read this often during the open loop
PROGRESS = """
SELECT (SELECT coalesce(sum(version), 0) FROM streams WHERE tenant = $1)::bigint AS stored,
       (SELECT coalesce(sum(version), 0) FROM projection_session_versions
        WHERE projector = $2 AND tenant = $1)::bigint AS visible
"""
SNAPSHOTS_PENDING = ("agentlog_projector_fold_snapshots_pending",)


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
    reference_ms: float = 0.0  # at a window's start: bench.process_cpu.reference_loop_ms just before


class SystemBench:
    def __init__(
        self, system: System, dsn: str, bootstrap: str, key: str, sessions: int, probe_dir: Path | None = None
    ) -> None:
        self.system, self.dsn, self.key = system, dsn, key
        self.prefix = f"sys-{uuid.uuid4().hex[:6]}"
        self.sessions = [f"{self.prefix}-{i}" for i in range(sessions)]
        self.group = system.env["AGENTLOG_PROJECTOR_GROUP_ID"]
        self.meter = CpuMeter(dsn, {name: _pid(c) for name, c in self.components().items()})
        self.broker_pid = listener_pid(int(bootstrap.rpartition(":")[2]))
        self.pipeline_up = True
        self.open_window: Window | None = None
        self.host_samples: list[HostTime] = []
        self.probe_dir = probe_dir
        self.fsync_samples: list[tuple[float, float]] = []  # (started, seconds) of the disk probe

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

    async def settled(self) -> float:
        """Until the read models caught up and the projector wrote the fold snapshots due; returns
        the seconds the read models took (the snapshot writer is paced, and a window's snapshots
        belong in it, not in the next window's figures)."""
        caught_up = await self.caught_up()
        await self.snapshots_idle()
        return caught_up

    async def snapshots_idle(self, timeout: float = 60) -> None:
        """Until the projector has no fold snapshot left to write: the writer is paced, and a
        window's own snapshots belong in it, not in the next one's figures."""
        port = self.system.env["AGENTLOG_PROJECTOR_METRICS_PORT"]
        deadline = time.perf_counter() + timeout
        while scrape(port, SNAPSHOTS_PENDING)[SNAPSHOTS_PENDING[0]] > 0:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the projector's fold snapshots were not all written in {timeout:.0f} s")
            await asyncio.sleep(0.01)

    async def mark(self, *, start: bool = False) -> Mark:
        """The edge of a window; at its start (`start`), with the machine's speed read just before."""
        reference = reference_loop_ms() if start else 0.0
        stored, visible = await self.progress()
        metrics = {}
        if self.pipeline_up:
            metrics.update(scrape(self.system.env["AGENTLOG_RELAY_METRICS_PORT"], RELAY_METRICS))
            metrics.update(scrape(self.system.env["AGENTLOG_PROJECTOR_METRICS_PORT"], PROJECTOR_METRICS))
        broker = _cpu(self.broker_pid)
        return Mark(
            time.perf_counter(),
            stored,
            visible,
            await self.meter.snapshot(),
            machine_busy_seconds(),
            broker,
            metrics,
            reference,
        )

    async def closed_loop(self, seconds: float) -> Window:
        before = await self.mark(start=True)
        result = await http_load.wrk_messages(
            self.system.commands_url,
            self.key,
            self.prefix,
            len(self.sessions),
            connections=CONNECTIONS,
            seconds=seconds,
        )
        at_end = await self.progress()
        caught_up = await self.settled() if self.pipeline_up else 0.0
        visible = (at_end[1] - before.visible) / seconds
        return await self._measured(
            before, seconds, result.rate, result.failed, result.generator_cpu_s, visible, caught_up
        )

    async def _window(self, before: Mark, seconds: float, rate: float, failed: int, own_cpu: float) -> Window:
        """The window from `before` until the pipeline settled (`settled`), for this process's load."""
        return await self._measured(before, seconds, rate, failed, own_cpu, 0.0, await self.settled())

    async def _measured(
        self, before: Mark, seconds: float, rate: float, failed: int, own_cpu: float, visible: float, caught_up: float
    ) -> Window:
        after = await self.mark()
        return Window(
            seconds=seconds,
            commands_per_s=rate,
            failed=failed,
            visible_per_s=visible,
            caught_up_s=caught_up,
            commands=after.stored - before.stored,
            cpu=CpuMeter.spent(before.cpu, after.cpu),
            broker_cpu=after.broker - before.broker,
            machine_busy=after.busy - before.busy,
            wall=after.at - before.at,
            metrics={k: after.metrics[k] - before.metrics.get(k, 0) for k in after.metrics},
            generator_cpu=own_cpu,
            reference_ms=before.reference_ms,
        )

    async def generator_capacity(self, generator: LoadGenerator, seconds: float) -> Window:
        """Closed loop with the open loop's generator: the capacity while it shares the cores."""
        out = Latencies()
        before, own = await self.mark(start=True), time.process_time()
        thread = self.api_thread()
        rate = await generator.closed_loop(out, CONNECTIONS, seconds)
        api_thread = thread()
        own = time.process_time() - own
        window = await self._window(before, seconds, rate, len(out.errors), own)
        window.api_thread = api_thread
        return window

    def api_thread(self) -> Callable[[], tuple[float, float] | None]:
        """From now: call the result at the load's end for the command API's event loop's shares
        of the time in between (on a core, waiting for one); None without /proc/<pid>/schedstat."""
        pid = _pid(self.system.commands)
        started, at = sched_seconds(pid), time.perf_counter()

        def shares() -> tuple[float, float] | None:
            ended, wall = sched_seconds(pid), time.perf_counter() - at
            if started is None or ended is None or wall <= 0:
                return None
            return (ended[0] - started[0]) / wall, (ended[1] - started[1]) / wall

        return shares

    async def freshness(self, generator: LoadGenerator, rate: float, seconds: float, warmup: float) -> Latencies:
        out = Latencies()
        before, own = await self.mark(start=True), time.process_time()
        sampler = asyncio.create_task(self._sample_host())
        probe = FsyncProbe(self.probe_dir) if self.probe_dir is not None else None
        if probe is not None:
            probe.start()
        async with VisibilityWatch(self.dsn, self.group, TENANT, out) as watch:
            watch_cpu = _cpu(watch.backend_pid)
            thread = self.api_thread()
            try:
                await generator.open_loop(out, rate, seconds, warmup, watch)
                api_thread = thread()
            finally:
                sampler.cancel()
                if probe is not None:
                    probe.stop()
                    self.fsync_samples = probe.samples
            deadline = time.perf_counter() + 30
            while watch.waiting and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            out.watch_backend_cpu = _cpu(watch.backend_pid) - watch_cpu
        out.generator_cpu = time.process_time() - own
        window = await self._window(before, warmup + seconds, out.achieved_rate, len(out.errors), 0.0)
        window.generator_cpu = out.generator_cpu + out.watch_backend_cpu
        window.api_thread = api_thread
        out.machine_cores_busy = window.machine_busy / window.wall
        self.open_window = window
        return out

    async def _sample_host(self) -> None:
        """/proc/stat every HOST_SAMPLE_S during the open loop, for the host's share of its tail."""
        processes = dict(self.meter.processes)
        if self.broker_pid:
            processes["Kafka broker"] = self.broker_pid
        processes["load generator"] = os.getpid()  # this process: the open loop's generator and watcher
        postgres = PostgresCpu()
        while True:
            self.host_samples.append(host_time(processes, postgres))
            await asyncio.sleep(HOST_SAMPLE_S)

    def _signal_pipeline(self, sig: signal.Signals) -> None:
        for name, component in self.components().items():
            if name != "command API":
                os.kill(_pid(component), sig)

    def pause_pipeline(self) -> None:
        """Leave the command API alone: SIGSTOP to the query API, the relay and the projector
        (they keep their connections, leases and group membership: windows alone are shorter
        than the projector's Kafka session timeout, 10 s)."""
        self._signal_pipeline(signal.SIGSTOP)
        self.pipeline_up = False

    async def resume_pipeline(self) -> None:
        """SIGCONT to what `pause_pipeline` stopped, then until it settled with what the command
        API accepted alone: that work is in neither window."""
        self._signal_pipeline(signal.SIGCONT)
        self.pipeline_up = True
        await self.settled()

    async def capacity_rounds(self, rounds: int, seconds: float) -> list[tuple[Window, Window]]:
        """`rounds` x (the whole system for `seconds`, then the command API alone for as long)."""
        out = []
        for _ in range(rounds):
            whole = await self.closed_loop(seconds)
            self.pause_pipeline()
            try:
                alone = await self.closed_loop(seconds)
            finally:
                await self.resume_pipeline()
            out.append((whole, alone))
        return out


def _pid(component: Component) -> int:
    assert component.proc is not None, f"{component.name} is not running"
    return component.proc.pid


def _cpu(pid: int | None) -> float:
    return (cpu_seconds(pid) or 0.0) if pid else 0.0


async def run(args: argparse.Namespace) -> dict:
    if http_load.wrk_path() is None:
        raise SystemExit(http_load.WRK_MISSING)
    stack = Stack.from_settings()
    with component_logs("system") as logs:
        async with scratch_database(stack.database_url()) as dsn:
            return await _run(args, stack.kafka_bootstrap(), dsn, logs)


async def _run(args: argparse.Namespace, bootstrap: str, dsn: str, logs: Path) -> dict:
    topic = f"agentlog.bench.system.{uuid.uuid4().hex[:8]}.v1"
    await kafka_probe.ensure_topic(bootstrap, topic, partitions=Settings().kafka_partitions)
    conn = await asyncpg.connect(dsn)
    key = await auth.create_key(conn, TENANT, "writer", "bench_system")
    data_directory = Path(await conn.fetchval("SHOW data_directory"))
    await conn.close()
    # the disk Postgres flushes its WAL to, when it is on this machine (a remote server's is not probed)
    probe_dir = data_directory.parent if os.access(data_directory.parent, os.W_OK) else None
    system = System(dsn, bootstrap, topic, logs, **_dev_env())
    try:
        await system.start()
        bench = SystemBench(system, dsn, bootstrap, key, args.sessions, probe_dir)
        await http_load.start_sessions(system.commands_url, key, bench.sessions)
        await bench.closed_loop(args.warmup_seconds)  # connections, plans, caches
        rounds = await bench.capacity_rounds(args.rounds, args.seconds / args.rounds)
        whole = Window.combine([w for w, _ in rounds])
        alone = Window.combine([a for _, a in rounds])
        generator = LoadGenerator(system.commands_port, key, BODY, bench.sessions)
        try:
            closed = await bench.generator_capacity(generator, args.capacity_seconds or args.seconds)
            capacity = whole.commands_per_s if args.capacity_from == "wrk" else closed.commands_per_s
            target = args.rate or capacity * args.load
            latencies = await bench.freshness(generator, target, args.latency_seconds, args.warmup_seconds)
        finally:
            generator.close()
        stages = await _stage_split(dsn, bootstrap, topic, latencies)
    finally:
        system.close()
        await drop_topics(bootstrap, topic)
    return {
        "whole": whole,
        "closed": closed,
        "alone": alone,
        "rounds": rounds,
        "target": target,
        "capacity": capacity,
        "capacity_from": args.capacity_from,
        "latencies": latencies,
        "stage_split": stages,
        "open": bench.open_window,
        "host_samples": bench.host_samples,
        "fsync_samples": bench.fsync_samples,
    }


async def _stage_split(dsn: str, bootstrap: str, topic: str, lat: Latencies) -> dict:
    """The open loop's commands taken apart by stage (bench/stage_split.py), from the wall-clock
    time of its first due command on."""
    if not lat.visible_due:
        return {}
    since = min(lat.visible_due) + lat.wall_offset - 1.0
    recorded = await stage_split.recorded_times(dsn, TENANT, since)
    handed = await stage_split.kafka_times(bootstrap, topic, since)
    return stage_split.split(lat, recorded, handed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0, help="each closed-loop phase")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="whole system and command API alone, interleaved in this many rounds of --seconds / rounds each "
        "(keep a window alone under the projector's 10 s Kafka session timeout)",
    )
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="before the first phase and the open loop")
    parser.add_argument("--capacity-seconds", type=float, help="the generator's closed loop (default: --seconds)")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="the open loop's measured window")
    parser.add_argument("--load", type=float, default=0.8, help="open-loop rate as a fraction of the capacity")
    parser.add_argument(
        "--capacity-from",
        choices=("generator", "wrk"),
        default="generator",
        help="the closed loop whose capacity --load applies to: the open loop's own generator (default; its "
        "CPU is on the machine in both phases) or wrk",
    )
    parser.add_argument("--rate", type=float, help="open-loop rate in commands/s instead of --load")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds / args.rounds >= PAUSE_LIMIT_S:
        parser.error(
            f"--seconds / --rounds must be under {PAUSE_LIMIT_S:.0f} s: a window alone pauses the projector, "
            "and its Kafka group would drop it after 10 s"
        )
    result = uvloop.run(run(args))  # the load generator shares the cores: keep its loop cheap
    figures = summary(result)
    report(result, figures, args)
    if args.json:
        print("BENCH_SYSTEM " + orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
