"""`python -m bench` (`make bench`): every benchmark in sequence, each in its own process.

Invariant: one benchmark at a time (they measure the same 2-core machine; running them together
would measure each other), each in a fresh interpreter so no pool, loop or producer leaks from
one into the next; the exit code is non-zero if any benchmark failed, and the others still run.
Each creates and drops its own database and topics on the local stack. The services of the stack
that are not running (`agentlog stack up`) are started first and stopped at the end, as `agentlog
dev` does; ones already running, or the user's own (AGENTLOG_DATABASE_URL,
AGENTLOG_KAFKA_BOOTSTRAP_SERVERS), are used and left running.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

from agentlog.stack.processes import StackError
from agentlog.stack.stack import Stack

ROOT = Path(__file__).resolve().parent.parent

BENCHMARKS: dict[str, list[str]] = {
    # The figure users care about first: the whole system against its command API alone (~2 min).
    "system": ["bench.bench_system"],
    "append": ["bench.bench_append"],
    # what a database round trip costs here when the caller waits for each answer (~15 s)
    "roundtrip": ["bench.bench_round_trip"],
    # what tracing costs the command API: off and on (100% sampling, OTLP to a local receiver)
    "tracing": ["bench.bench_tracing"],
    # A small backlog keeps `make bench` to minutes; the figures in docs/benchmarks.md used 200,000.
    "relay": ["bench.bench_relay", "--events", "20000"],
    "projections": ["bench.bench_projections"],
    "e2e": ["bench.bench_e2e"],
    "timetravel": ["bench.bench_timetravel"],
    "rebuild": ["bench.bench_rebuild", "--events", "50000"],  # the million: --events 1000000
    "langgraph": ["bench.bench_langgraph"],
}


def run_one(name: str, argv: list[str]) -> int:
    print(f"\n=== {name}: python -m {' '.join(argv)}", flush=True)
    started = time.monotonic()
    code = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT).returncode
    print(
        f"=== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"run only these ({', '.join(BENCHMARKS)}); default: all"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    stack = Stack.from_settings()
    was_running = stack.running()
    try:
        asyncio.run(stack.up(log=lambda message: print(f"[stack] {message}", flush=True)))
    except (StackError, OSError, TimeoutError) as exc:
        print(f"python -m bench: the stack did not start: {exc}", file=sys.stderr)
        stack.stop_started(was_running)
        return 2
    try:
        failed = [name for name in (args.names or BENCHMARKS) if run_one(name, BENCHMARKS[name]) != 0]
    finally:
        if stopped := stack.stop_started(was_running):
            print(f"[stack] stopped what this run started: {', '.join(stopped)}", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
