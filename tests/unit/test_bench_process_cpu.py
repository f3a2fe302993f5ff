"""bench/process_cpu.py's reading of Postgres' CPU from /proc, on processes of this test named
"postgres" (prctl PR_SET_NAME sets the name /proc/<pid>/stat shows), so no server is needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.process_cpu import PostgresCpu, cpu_seconds, postgres_cpu, sched_seconds
from tests.waiting import wait_until_sync

# a child that names itself postgres, says so, then spins until killed
SPIN_AS_POSTGRES = """
import ctypes, sys
ctypes.CDLL(None).prctl(15, b"postgres", 0, 0, 0)
print("named", flush=True)
while True:
    pass
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def spinning_postgres() -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", SPIN_AS_POSTGRES], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"named\n"
    return child


def cpu_of(pid: int, at_least: float) -> float:
    """The CPU seconds of `pid` once they reach `at_least`."""
    return wait_until_sync(
        lambda: (cpu := cpu_seconds(pid) or 0.0) >= at_least and cpu, message=f"{at_least} s of CPU in {pid}"
    )


def test_postgres_cpu_counts_a_process_named_postgres_from_the_scan_that_finds_it() -> None:
    cached = PostgresCpu(rescan_s=3600)
    before = cached.read()["postgres"]  # the scan: other Postgres processes of the machine, if any
    child = spinning_postgres()
    try:
        spun = cpu_of(child.pid, 0.3)
        # not scanned again: the new process is not counted (others may have moved a little)
        assert cached.read()["postgres"] - before < spun / 2
        fresh = postgres_cpu()["postgres"]
        spent = cpu_seconds(child.pid) or 0.0
        assert fresh - before >= spent - 0.02  # a fresh scan counts all of it
        rescanning = PostgresCpu(rescan_s=0.0)
        first = rescanning.read()["postgres"]
        target = cpu_of(child.pid, spent + 0.1)
        assert rescanning.read()["postgres"] - first >= target - spent - 0.02
        assert rescanning.read()["autovacuum"] == 0.0
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds(child.pid) is None


def test_a_postgres_process_that_ends_keeps_the_cpu_last_read_of_it() -> None:
    reader = PostgresCpu(rescan_s=0.0)
    child = spinning_postgres()
    try:
        cpu_of(child.pid, 0.2)
        with_child = reader.read()["postgres"]
    finally:
        child.kill()
        child.wait()
    assert reader.read()["postgres"] >= with_child  # not down by the child's 0.2 s
    assert PostgresCpu(rescan_s=0.0).read()["postgres"] <= with_child - 0.1  # a new reader never saw it


def test_sched_seconds_counts_a_spinning_process_on_a_core_and_a_gone_one_as_none() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        first = sched_seconds(proc.pid)
        assert first is not None
        now = wait_until_sync(
            lambda: (seen := sched_seconds(proc.pid)) is not None and seen[0] - first[0] >= 0.05 and seen,
            message="the spinning process to run 50 ms",
        )
        assert now[1] >= first[1] >= 0
    finally:
        proc.kill()
        proc.wait()
    assert sched_seconds(proc.pid) is None
