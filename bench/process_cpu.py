"""CPU time of the system benchmark's processes, read from /proc: each process's own utime + stime,
and that of the Postgres backends serving its connections (found by matching the process's TCP
client ports with `pg_stat_activity.client_port`).

Invariant: read-only; nothing here signals or changes a process. A backend that appears during a
window counts from zero (its start-up is part of the cost), one that ends during it counts nothing
of it (pools keep their connections, so that is rare); Linux only (/proc), on the machine that runs Postgres (a remote server's backends
are not visible and count 0).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BACKENDS = """
SELECT pid, client_port FROM pg_stat_activity
WHERE datname = current_database() AND client_port IS NOT NULL AND pid <> pg_backend_pid()
"""


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` (None when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        entries = list(os.scandir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError):
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _tcp_sockets() -> list[tuple[int, int, str]]:
    """(inode, local port, state) of every TCP socket of this network namespace."""
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            sockets.append((int(parts[9]), int(parts[1].rpartition(":")[2], 16), parts[3]))
    return sockets


def client_ports(pid: int) -> set[int]:
    inodes = _socket_inodes(pid)
    return {port for inode, port, _ in _tcp_sockets() if inode in inodes}


def listener_pid(port: int) -> int | None:
    """The process listening on TCP `port` here (e.g. the Kafka broker), or None."""
    listening = {inode for inode, local, state in _tcp_sockets() if local == port and state == "0A"}
    if not listening:
        return None
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _socket_inodes(int(entry.name)) & listening:
            return int(entry.name)
    return None


@dataclass
class Snapshot:
    """CPU seconds by process name: the process itself, and each of its backends by pid."""

    own: dict[str, float] = field(default_factory=dict)
    backends: dict[str, dict[int, float]] = field(default_factory=dict)


class CpuMeter:
    """`await meter.snapshot()` before and after a window; `meter.spent(a, b)` is the difference."""

    def __init__(self, dsn: str, processes: Mapping[str, int]) -> None:
        self._dsn, self.processes = dsn, dict(processes)

    async def snapshot(self) -> Snapshot:
        snap = Snapshot()
        conn = await asyncpg.connect(self._dsn)
        try:
            by_port = {r["client_port"]: r["pid"] for r in await conn.fetch(BACKENDS)}
        finally:
            await conn.close()
        for name, pid in self.processes.items():
            snap.own[name] = cpu_seconds(pid) or 0.0
            backends = {by_port[port] for port in client_ports(pid) if port in by_port}
            snap.backends[name] = {b: cpu for b in backends if (cpu := cpu_seconds(b)) is not None}
        return snap

    @staticmethod
    def spent(before: Snapshot, after: Snapshot) -> dict[str, tuple[float, float]]:
        """{name: (own seconds, its backends' seconds)} spent between two snapshots."""
        out = {}
        for name, own in after.own.items():
            earlier = before.backends.get(name, {})
            backends = sum(cpu - earlier.get(pid, 0.0) for pid, cpu in after.backends[name].items())
            out[name] = (own - before.own.get(name, 0.0), backends)
        return out


def _cpu_ticks() -> list[int]:
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait), from /proc/stat."""
    ticks = _cpu_ticks()
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS


@dataclass(frozen=True)
class HostTime:
    """Seconds (all cores, since boot) of /proc/stat's busy, iowait and steal: subtract two of
    them for a window. Steal is time the hypervisor gave this VM's CPUs to others; iowait is idle
    time with a disk I/O outstanding (an fsync stalled behind the host's disk, for one)."""

    at: float  # time.perf_counter() when read
    busy: float
    iowait: float
    steal: float

    def cores_until(self, later: HostTime) -> tuple[float, float, float]:
        """(busy, iowait, steal) cores on average from this reading to `later`."""
        wall = max(later.at - self.at, 1e-9)
        return (later.busy - self.busy) / wall, (later.iowait - self.iowait) / wall, (later.steal - self.steal) / wall


def host_time() -> HostTime:
    ticks = _cpu_ticks()
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    steal = ticks[7] if len(ticks) > 7 else 0
    return HostTime(time.perf_counter(), busy / CLOCK_TICKS, ticks[4] / CLOCK_TICKS, steal / CLOCK_TICKS)


def reference_loop_ms(runs: int = 5) -> float:
    """How fast the machine runs Python right now: the best of `runs` CPU times of one fixed loop
    (2,000,000 additions), in ms; lower is faster. On a shared host it moves with the neighbours'
    load (61-94 ms within ten minutes on 2026-12-03), and every CPU-per-command figure moves with
    it, so a benchmark prints it beside them."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return best * 1000
