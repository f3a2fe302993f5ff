"""What tracing costs the command API: commands/s with tracing off and on (100% sampling, OTLP
over HTTP to a receiver on this machine), alternated in one run, against the raw limit of the
same rows measured just before each load.

Phases (BENCH_PHASE_S seconds each, default 5), `--rounds` times (default 2), alternating so a
drift of the shared machine hits both alike:
  raw   16 writers insert an append's rows with plain SQL (bench/bench_append.py's raw phase);
  off   wrk, 16 connections, POST /messages to `agentlog serve commands` without OTEL_*;
  on    the same with OTEL_EXPORTER_OTLP_ENDPOINT set (a server span and an append span per command,
        the traceparent written to the outbox row), exported to a receiver in this process that
        parses every ExportTraceServiceRequest and counts its spans (tests/otlp_receiver.py).
Goal: on costs under 15% of off. Needs wrk (`apt-get install -y wrk`).
Run: `python -m bench.bench_tracing` (DSN: AGENTLOG_DATABASE_URL or the default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import uuid
from dataclasses import dataclass

import asyncpg

from agentlog.edge.keys import create_key
from bench import http_load
from bench.bench_append import PHASE_S, WRITERS, raw_phase
from bench.http_load import LoadResult
from bench.process_cpu import CLOCK_TICKS, cpu_seconds
from bench.scratch import scratch_database
from eventstore import db
from eventstore.settings import Settings
from tests.otlp_receiver import OtlpReceiver

RING = 256
OFF = {name: "" for name in os.environ if name.startswith("OTEL_")}  # an inherited OTEL_* must not turn it on


@dataclass
class Run:
    result: LoadResult
    raw: float  # the raw limit measured just before
    cpu_ms: float  # CPU of the command API process per command (the figure a busy machine blurs least)
    child_cpu_ms: float  # CPU of its child processes (the span exporter process) per command
    loop_cpu_ms: float  # of cpu_ms, the serving (event loop) thread's; the rest is its other threads'


async def _load(dsn: str, pool: asyncpg.Pool, key: str, env: dict[str, str]) -> Run:
    async with http_load.ApiServer(dsn, workers=1, env=env) as server:
        prefix = f"trace-{uuid.uuid4().hex[:6]}"
        await http_load.start_sessions(server.url, key, [f"{prefix}-{i}" for i in range(RING)])
        raw = await raw_phase(pool)
        pid = server.pid
        before, children_before, loop_before = cpu_seconds(pid) or 0.0, _children_cpu(pid), _thread_cpu(pid)
        result = await http_load.wrk_messages(server.url, key, prefix, RING, connections=WRITERS, seconds=PHASE_S)
        # the exporter's queue drains within its 5 s schedule: wait for it, its CPU is part of the cost
        await asyncio.sleep(0 if env is OFF else 5.5)
        cpu = (cpu_seconds(pid) or 0.0) - before
        children = _children_cpu(pid) - children_before
        loop = _thread_cpu(pid) - loop_before
        commands = result.rate * PHASE_S
        per = 1000 / commands if commands else float("nan")
        return Run(result, raw, cpu * per, children * per, loop * per)


def _thread_cpu(pid: int) -> float:
    """CPU seconds of `pid`'s main thread (uvicorn's event loop with one worker)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children_cpu(pid: int) -> float:
    """CPU seconds of `pid`'s live child processes (the exporter process of a traced command API)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(child) for child in f.read().split()]
    except OSError:
        return 0.0
    return sum(cpu_seconds(child) or 0.0 for child in children)


async def main(rounds: int) -> int:
    if http_load.wrk_path() is None:
        print(http_load.WRK_MISSING, file=sys.stderr)
        return 1
    async with scratch_database(Settings().dsn()) as dsn:
        pool = await db.create_pool(dsn, min_size=WRITERS, max_size=WRITERS)
        try:
            key = await create_key(pool, "bench", "writer")
            await raw_phase(pool)  # warm-up
            with OtlpReceiver(keep=False) as receiver:
                on_env = {**OFF, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER": "always_on"}
                runs: dict[str, list[Run]] = {"off": [], "on": []}
                for _ in range(rounds):
                    runs["off"].append(await _load(dsn, pool, key, OFF))
                    runs["on"].append(await _load(dsn, pool, key, on_env))
                spans, exports = receiver.received, receiver.requests
        finally:
            await pool.close()
    _report(runs, spans, exports)
    return 0


def _report(runs: dict[str, list[Run]], spans: int, exports: int) -> None:
    print(
        f"cores: {os.cpu_count()}  connections: {WRITERS}  phase: {PHASE_S:.0f} s  server: {http_load.server_stack()}"
    )
    for label in ("off", "on"):
        for run in runs[label]:
            r = run.result
            print(
                f"tracing {label:3s}: {r.rate:7.0f} commands/s  ratio {r.rate / run.raw:.2f} of raw {run.raw:.0f} "
                f"measured just before  p50 {r.p50_ms:.1f} ms  p99 {r.p99_ms:.1f} ms  failed {r.failed}  "
                f"CPU {run.cpu_ms:.2f} ms/command (loop thread {run.loop_cpu_ms:.2f}; + {run.child_cpu_ms:.2f} in child processes)"
            )
    off = statistics.mean(run.result.rate for run in runs["off"])
    on = statistics.mean(run.result.rate for run in runs["on"])
    off_ratio = statistics.mean(run.result.rate / run.raw for run in runs["off"])
    on_ratio = statistics.mean(run.result.rate / run.raw for run in runs["on"])
    off_cpu = statistics.mean(run.cpu_ms for run in runs["off"])
    on_cpu = statistics.mean(run.cpu_ms for run in runs["on"])
    child_cpu = statistics.mean(run.child_cpu_ms for run in runs["on"])
    print(f"mean: off {off:.0f} commands/s, on {on:.0f} commands/s: tracing costs {1 - on / off:.1%} (goal < 15%)")
    print(f"      against raw: off {off_ratio:.2f}, on {on_ratio:.2f}: {1 - on_ratio / off_ratio:.1%} of the ratio")
    print(
        f"      CPU per command: off {off_cpu:.2f} ms, on {on_cpu:.2f} ms: +{on_cpu / off_cpu - 1:.1%}, i.e. "
        f"{1 - off_cpu / on_cpu:.1%} fewer commands per CPU second; on, child processes (the span exporter): "
        f"{child_cpu:.2f} ms"
    )
    print(f"receiver: {spans} spans in {exports} OTLP exports")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tracing", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs (default 2)")
    sys.exit(asyncio.run(main(parser.parse_args().rounds)))
