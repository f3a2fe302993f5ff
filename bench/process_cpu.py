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
import threading
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


def _stat(pid: int | str) -> bytes | None:
    """/proc/<pid>/stat (None when the process is gone); plain os calls, because the system
    benchmark reads it for every Postgres process ten times a second while it measures."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat_ticks(stat: bytes) -> int:
    fields = stat.rpartition(b")")[2].split()  # the command name may hold spaces and parentheses
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), in clock ticks


def _stat_cpu(stat: bytes) -> float:
    return _stat_ticks(stat) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` (None when it is gone)."""
    stat = _stat(pid)
    return None if stat is None else _stat_cpu(stat)


def sched_seconds(pid: int) -> tuple[float, float] | None:
    """(seconds on a core, seconds runnable but waiting for one) of `pid`'s main thread since it
    started, from /proc/<pid>/schedstat; None when it is gone or the kernel keeps no such figures.
    For a single-threaded server (the command API's one event loop), the two over a window say how
    near it was to its limit: on a core plus waiting for one near 100 % is a thread that always had
    work, whatever the machine's other core did."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            on_core, waiting = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    return int(on_core) / 1e9, int(waiting) / 1e9


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
    processes: dict[str, float] = field(default_factory=dict)  # CPU seconds by process (group) name

    def cores_until(self, later: HostTime) -> tuple[float, float, float]:
        """(busy, iowait, steal) cores on average from this reading to `later`."""
        wall = max(later.at - self.at, 1e-9)
        return (later.busy - self.busy) / wall, (later.iowait - self.iowait) / wall, (later.steal - self.steal) / wall

    def processes_until(self, later: HostTime) -> dict[str, float]:
        """Cores each named process (group) took on average from this reading to `later`; a
        process seen in only one of the two readings counts from zero."""
        wall = max(later.at - self.at, 1e-9)
        return {name: (cpu - self.processes.get(name, 0.0)) / wall for name, cpu in later.processes.items()}


def host_time(processes: Mapping[str, int] | None = None, postgres: PostgresCpu | None = None) -> HostTime:
    """/proc/stat now; with `processes` ({name: pid}), also each one's CPU seconds, and those of
    Postgres (every process named postgres: backends, autovacuum, WAL writer, checkpointer), with
    its autovacuum workers apart as well (read by `postgres`, a fresh scan without it)."""
    ticks = _cpu_ticks()
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    steal = ticks[7] if len(ticks) > 7 else 0
    by_name: dict[str, float] = {}
    if processes is not None:
        by_name = {name: cpu_seconds(pid) or 0.0 for name, pid in processes.items()}
        by_name.update(postgres.read() if postgres is not None else postgres_cpu())
    return HostTime(time.perf_counter(), busy / CLOCK_TICKS, ticks[4] / CLOCK_TICKS, steal / CLOCK_TICKS, by_name)


class PostgresCpu:
    """CPU seconds of every process named postgres on this machine, and of its autovacuum workers
    (a subset): what Postgres as a whole does, the work nobody's connection asked for included.
    `read()` reads the stat of the processes found by the last scan of /proc, which it repeats
    at most every `rescan_s`: a full scan costs ~2 ms, and ten a second was a quarter of the
    open loop's generator. A process that starts between scans counts from the next one (from
    its CPU then, as if it had started there). One that ends keeps counting the CPU last read of
    it, so the figures never go down (an autovacuum worker ending made Postgres' share of a
    half second negative). Sums are kept in clock ticks, whole numbers: added in any order they
    give the same total (in float seconds a process ending moved it by 1e-14, down as often as up)."""

    def __init__(self, rescan_s: float = 1.0) -> None:
        self.rescan_s = rescan_s
        self._live: dict[str, tuple[int, bool]] = {}  # pid -> (CPU ticks last read, is an autovacuum worker)
        self._ended = [0, 0]  # CPU ticks of the processes that ended: all, autovacuum workers
        self._scanned = float("-inf")

    def _end(self, pid: str) -> None:
        cpu, is_autovacuum = self._live.pop(pid)
        self._ended[0] += cpu
        if is_autovacuum:
            self._ended[1] += cpu

    def _scan(self) -> None:
        found = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            stat = _stat(entry.name)
            if stat is None or stat.partition(b" (")[2].rpartition(b")")[0] != b"postgres":
                continue
            found.add(entry.name)
            if entry.name not in self._live:
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                        is_autovacuum = b"autovacuum worker" in cmdline.read()
                except OSError:
                    continue
                self._live[entry.name] = (_stat_ticks(stat), is_autovacuum)
        for pid in set(self._live) - found:
            self._end(pid)
        self._scanned = time.monotonic()

    def read(self) -> dict[str, float]:
        if time.monotonic() - self._scanned >= self.rescan_s:
            self._scan()
        for pid, (_, is_autovacuum) in list(self._live.items()):
            stat = _stat(pid)
            if stat is None:
                self._end(pid)
            else:
                self._live[pid] = (_stat_ticks(stat), is_autovacuum)
        total = self._ended[0] + sum(ticks for ticks, _ in self._live.values())
        autovacuum = self._ended[1] + sum(ticks for ticks, is_autovacuum in self._live.values() if is_autovacuum)
        return {"postgres": total / CLOCK_TICKS, "autovacuum": autovacuum / CLOCK_TICKS}


def postgres_cpu() -> dict[str, float]:
    """`PostgresCpu.read()` from a fresh scan of /proc."""
    return PostgresCpu(rescan_s=0.0).read()


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


class FsyncProbe:
    """A thread that writes 8 kB and fdatasyncs it every `interval_s` in `directory` (the Postgres
    data directory's parent: the disk its WAL is flushed to), recording (time.perf_counter() at the
    start, seconds it took) for each: what a commit waits on the disk meanwhile, so a stalled
    disk shows in the report instead of passing for the system's latency. The probe's file is
    removed when it stops."""

    def __init__(self, directory: Path, interval_s: float = 0.05) -> None:
        self.path = directory / f".agentlog-fsync-probe-{os.getpid()}"
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fsync-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        block = b"\0" * 8192
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self._stop.wait(self.interval_s):
                started = time.perf_counter()
                os.pwrite(fd, block, 0)
                os.fdatasync(fd)
                self.samples.append((started, time.perf_counter() - started))
        finally:
            os.close(fd)
