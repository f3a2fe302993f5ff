"""The host's share of the system benchmark's open-loop tail (bench/bench_system.py): from /proc
samples of the machine and of each process, and from the disk probe's flushes (bench/process_cpu.py),
the open loop's worst half second and what the machine, its processes and its disk did then.
Pure functions of recorded samples: unit-tested on scripted timelines."""

from __future__ import annotations

import statistics

from bench.open_loop import Latencies
from bench.process_cpu import HostTime

STALL_BUCKET_S = 0.5  # the open loop's answers grouped by their send time to find its worst stretch
DISK_STALL_S = 0.05  # a probe flush longer than this is a disk stall: every commit waited as long
# A stall's wake: the commands queued behind it are answered over the next second or so (at 80 %
# load the system has a fifth of its capacity to spare for the backlog), so their latencies are
# the stall's too.
STALL_WAKE_S = 1.0
SLOW_S = 0.1  # the goal's bound on command -> visible


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")


def host_summary(lat: Latencies, samples: list[HostTime], fsyncs: list[tuple[float, float]] | None = None) -> dict:
    """The host's share of the open loop's measured window, and its worst half second: the stretch
    whose answers had the highest median, with what the machine did meanwhile (busy, waiting on the
    disk, taken by the hypervisor) and which processes took its cores, in cores on average; with
    `fsyncs` (the disk probe's (started, seconds)), how long an 8 kB fdatasync took over the window
    and at worst in that half second: what every commit waited on the disk then."""
    if not lat.accepted_due or len(samples) < 2:
        return {}
    start, end = min(lat.accepted_due), max(lat.accepted_due)

    def around(lo: float, hi: float) -> tuple[HostTime, HostTime]:
        before = [x for x in samples if x.at <= lo] or samples[:1]
        after = [x for x in samples if x.at >= hi] or samples[-1:]
        return before[-1], after[0]

    def cores(lo: float, hi: float) -> tuple[float, float, float]:
        first, last = around(lo, hi)
        return first.cores_until(last)

    buckets: dict[int, list[float]] = {}
    for due, latency in zip(lat.accepted_due, lat.accepted, strict=True):
        buckets.setdefault(int((due - start) / STALL_BUCKET_S), []).append(latency)
    worst = max(buckets, key=lambda b: statistics.median(buckets[b]))
    lo = start + worst * STALL_BUCKET_S
    _, iowait, steal = cores(start, end)
    w_busy, w_iowait, w_steal = cores(lo, lo + STALL_BUCKET_S)
    w_first, w_last = around(lo, lo + STALL_BUCKET_S)
    named = w_first.processes_until(w_last)
    # autovacuum is counted within postgres; the rest of the busy cores went to processes not named
    named["anything else"] = max(0.0, w_busy - sum(v for k, v in named.items() if k != "autovacuum"))
    w_processes = sorted(named.items(), key=lambda item: -item[1])
    disk = {}
    window = [took for at, took in fsyncs or () if start <= at <= end]
    if window:
        # the second before the worst half second too: a stall's backlog is answered after it
        around_worst = [took for at, took in fsyncs or () if lo - 1.0 <= at < lo + STALL_BUCKET_S]
        disk = {
            "fsync_p50_ms": pct(window, 0.50),
            "fsync_p99_ms": pct(window, 0.99),
            "fsync_max_ms": max(window) * 1000,
            "fsync_over_50ms": sum(took > DISK_STALL_S for took in window),
            "worst_fsync_max_ms": max(around_worst, default=0.0) * 1000,
            **_stall_tail(lat, [(at, took) for at, took in fsyncs or () if took > DISK_STALL_S]),
        }
    return {
        **disk,
        "iowait_cores": iowait,
        "steal_cores": steal,
        "worst_at_s": worst * STALL_BUCKET_S,
        "worst_p50_ms": statistics.median(buckets[worst]) * 1000,
        "worst_max_ms": max(buckets[worst]) * 1000,
        "worst_busy_cores": w_busy,
        "worst_iowait_cores": w_iowait,
        "worst_steal_cores": w_steal,
        "worst_processes": dict(w_processes),
    }


def _stall_tail(lat: Latencies, stalls: list[tuple[float, float]]) -> dict:
    """The commands visible after more than SLOW_S, how many of them were due during a disk stall
    or its wake (STALL_WAKE_S after it), and the p99 of command -> visible of the commands due
    outside them: what the system did when the disk did not stall (a diagnosis; the goal's figure
    is the p99 of all)."""
    if not lat.visible_due:
        return {}
    spans = [(at, at + took + STALL_WAKE_S) for at, took in stalls]

    def in_stall(due: float) -> bool:
        return any(begin <= due < end for begin, end in spans)

    slow = [due for due, latency in zip(lat.visible_due, lat.visible, strict=True) if latency > SLOW_S]
    outside = [latency for due, latency in zip(lat.visible_due, lat.visible, strict=True) if not in_stall(due)]
    return {
        "slow_visible": len(slow),
        "slow_visible_in_stalls": sum(in_stall(due) for due in slow),
        "visible_outside_stalls": len(outside),
        "visible_p99_outside_stalls_ms": pct(outside, 0.99),
    }


def print_host(host: dict) -> None:
    """The report's lines of `host_summary`'s figures (none without them)."""
    if not host:
        return
    print(
        f"  host                   : the hypervisor took {host['steal_cores']:.2f} cores (steal), "
        f"{host['iowait_cores']:.2f} cores waited on the disk (iowait), on average"
    )
    print(
        f"  worst half second      : from {host['worst_at_s']:.1f} s, answers p50 {host['worst_p50_ms']:.1f} "
        f"max {host['worst_max_ms']:.1f} ms; the machine {host['worst_busy_cores']:.2f} cores busy, "
        f"{host['worst_iowait_cores']:.2f} iowait, {host['worst_steal_cores']:.2f} steal"
    )
    if host.get("worst_processes"):
        print(
            "    its cores went to    : "
            + ", ".join(f"{name} {cores:.2f}" for name, cores in host["worst_processes"].items())
            + " (autovacuum is part of postgres)"
        )
    if "fsync_p99_ms" in host:
        print(
            f"  disk                   : an 8 kB write + fdatasync beside Postgres every 50 ms took p50 "
            f"{host['fsync_p50_ms']:.2f} p99 {host['fsync_p99_ms']:.1f} max {host['fsync_max_ms']:.1f} ms, "
            f"{host['fsync_over_50ms']} over 50 ms; at worst {host['worst_fsync_max_ms']:.1f} ms in the worst "
            "half second or the second before it (every commit waits for such a flush)"
        )
    if host.get("slow_visible_in_stalls"):
        print(
            f"  the disk's share       : {host['slow_visible_in_stalls']} of the {host['slow_visible']} commands "
            f"visible after more than {SLOW_S * 1000:.0f} ms were due in a stall or the {STALL_WAKE_S:.0f} s after it; "
            f"the {host['visible_outside_stalls']} commands due elsewhere: command -> visible p99 "
            f"{host['visible_p99_outside_stalls_ms']:.1f} ms (a diagnosis: the goal counts every command)"
        )
