"""The system benchmark's figures (bench/bench_system.py): a measured window of load (`Window`),
the run's figures from its windows and latencies (`summary`, flat, for --json and for comparing
runs), and the report printed from them (`report`). Pure functions of what the run recorded:
unit-tested without the system.
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass

from bench.open_loop_host import host_summary, pct, print_host
from bench.stage_split import print_split

CONNECTIONS = 16
OVERLOADED = 0.95  # an open loop achieving less than this share of its target rate did not keep up
LATE_SENDS_MS = 10.0  # p99 send lag above this: the generator was starved of CPU (or of connections)
NOISY_CORES = 0.2  # other work above this (cores, on average) in a phase: its figures are the machine's
STAGE_SUM, STAGE_COUNT = (
    'agentlog_pipeline_stage_seconds_sum{{stage="{}"}}',
    'agentlog_pipeline_stage_seconds_count{{stage="{}"}}',
)
# the pipeline's two halves, each measured by the process where it ends (agentlog/telemetry/stages.py)
STAGES = {"append_to_kafka": "append -> Kafka acknowledged", "kafka_to_read_model": "Kafka -> read models committed"}
RELAY_METRICS = (
    "agentlog_relay_events_published_total",
    "agentlog_relay_batch_seconds_count",
    STAGE_SUM.format("append_to_kafka"),
    STAGE_COUNT.format("append_to_kafka"),
)
PROJECTOR_METRICS = (
    'agentlog_projector_events_total{outcome="applied"}',
    "agentlog_projector_batches_total",
    STAGE_SUM.format("kafka_to_read_model"),
    STAGE_COUNT.format("kafka_to_read_model"),
)


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
    generator_cpu: float = 0.0  # CPU seconds of the load generator (wrk, or this process)
    reference_ms: float = 0.0  # the machine's speed just before the window (Mark.reference_ms)
    # the command API's event loop during the load: (share of the wall time on a core, share
    # runnable but waiting for one), from /proc/<pid>/schedstat; None where not measured
    api_thread: tuple[float, float] | None = None

    @classmethod
    def combine(cls, windows: list[Window]) -> Window:
        """Several windows of one kind as one: times, counts and CPU added up, rates weighted by
        each window's length, the longest catching up, the median machine speed."""
        seconds = sum(w.seconds for w in windows)
        cpu: dict[str, tuple[float, float]] = {}
        metrics: dict[str, float] = {}
        for w in windows:
            for name, (own, pg) in w.cpu.items():
                before = cpu.get(name, (0.0, 0.0))
                cpu[name] = (before[0] + own, before[1] + pg)
            for key, value in w.metrics.items():
                metrics[key] = metrics.get(key, 0.0) + value
        return cls(
            seconds=seconds,
            commands_per_s=sum(w.commands_per_s * w.seconds for w in windows) / seconds,
            failed=sum(w.failed for w in windows),
            visible_per_s=sum(w.visible_per_s * w.seconds for w in windows) / seconds,
            caught_up_s=max(w.caught_up_s for w in windows),
            commands=sum(w.commands for w in windows),
            cpu=cpu,
            broker_cpu=sum(w.broker_cpu for w in windows),
            machine_busy=sum(w.machine_busy for w in windows),
            wall=sum(w.wall for w in windows),
            metrics=metrics,
            generator_cpu=sum(w.generator_cpu for w in windows),
            reference_ms=statistics.median(w.reference_ms for w in windows),
        )

    def others_cores(self) -> float:
        """Cores busy with work not measured here (other programs, Postgres' own background
        processes), on average over the window: the noise figure of a shared machine."""
        ours = sum(own + pg for own, pg in self.cpu.values()) + self.broker_cpu + self.generator_cpu
        return max(0.0, self.machine_busy - ours) / self.wall


def batching(metrics: dict[str, float]) -> tuple[float, float]:
    """(the relay's events per batch, the projector's events per transaction) of a window's metrics."""
    relay = metrics.get("agentlog_relay_events_published_total", 0) / max(
        1, metrics.get("agentlog_relay_batch_seconds_count", 0)
    )
    applied = metrics.get('agentlog_projector_events_total{outcome="applied"}', 0)
    return relay, applied / max(1, metrics.get("agentlog_projector_batches_total", 0))


def stage_means_ms(metrics: dict[str, float]) -> dict[str, float | None]:
    """Each pipeline stage's mean latency (ms) over a window's events, from the histograms' sum and count."""
    out: dict[str, float | None] = {}
    for stage in STAGES:
        count = metrics.get(STAGE_COUNT.format(stage), 0)
        out[stage] = metrics.get(STAGE_SUM.format(stage), 0) * 1000 / count if count else None
    return out


def summary(r: dict) -> dict:
    """The figures of one run, flat (for --json and for comparing runs)."""
    whole, closed, alone, lat, opened = r["whole"], r["closed"], r["alone"], r["latencies"], r["open"]
    m = whole.metrics
    closed_batching, open_batching = batching(m), batching(opened.metrics)
    per = {name: (own + pg) * 1000 / whole.commands for name, (own, pg) in whole.cpu.items()}
    pipeline = sum(sum(whole.cpu[n]) for n in ("relay", "projector")) + whole.broker_cpu
    overloaded = lat.achieved_rate < OVERLOADED * r["target"]
    system_open = sum(sum(v) for v in opened.cpu.values()) + opened.broker_cpu

    def latency(values: list[float], p: float) -> float | None:
        return None if overloaded else pct(values, p)  # no percentile of an overloaded run

    return {
        "commands_per_s": whole.commands_per_s,
        "alone_commands_per_s": alone.commands_per_s,
        "ratio": whole.commands_per_s / alone.commands_per_s,
        "ratio_rounds": [w.commands_per_s / a.commands_per_s for w, a in r.get("rounds", [])],
        "rates_rounds": [(w.commands_per_s, a.commands_per_s) for w, a in r.get("rounds", [])],
        "reference_loop_ms_rounds": [(w.reference_ms, a.reference_ms) for w, a in r.get("rounds", [])],
        "visible_per_s": whole.visible_per_s,
        "caught_up_s": whole.caught_up_s,
        "relay_events_per_batch": closed_batching[0],
        "projector_events_per_transaction": closed_batching[1],
        "open_loop_relay_events_per_batch": open_batching[0],
        "open_loop_projector_events_per_transaction": open_batching[1],
        "cpu_ms_per_command": {**per, "kafka broker": whole.broker_cpu * 1000 / whole.commands},
        "cpu_ms_per_command_total": sum(per.values()) + whole.broker_cpu * 1000 / whole.commands,
        "alone_cpu_ms_per_command": sum(sum(v) for v in alone.cpu.values()) * 1000 / alone.commands,
        # the command path's own cost (process + backends) in the whole system against alone: the
        # same work on cores it shares with the pipeline
        "command_path_cpu_ms": {
            "whole": per.get("command API", 0.0),
            "alone": sum(alone.cpu.get("command API", (0.0, 0.0))) * 1000 / alone.commands,
        },
        "pipeline_cpu_ms_per_event": pipeline * 1000 / whole.commands,
        "wrk_cpu_ms_per_command": whole.generator_cpu * 1000 / whole.commands,
        "generator_capacity_per_s": closed.commands_per_s,
        "generator_closed_cpu_ms_per_command": closed.generator_cpu * 1000 / max(1, closed.commands),
        "generator_closed_cores": closed.generator_cpu / closed.wall,
        "open_loop_capacity_from": r["capacity_from"],
        "open_loop_capacity_per_s": r["capacity"],
        "open_loop_rate": r["target"],
        "open_loop_achieved": lat.achieved_rate,
        "open_loop_overloaded": overloaded,
        "open_loop_noisy": opened.others_cores() > NOISY_CORES,
        "open_loop_stage_ms": stage_means_ms(opened.metrics),
        "open_loop_stage_split": {} if overloaded else r.get("stage_split", {}),
        "api_thread": {"capacity (generator)": closed.api_thread, "open loop": opened.api_thread},
        "open_loop_host": host_summary(lat, r.get("host_samples", []), r.get("fsync_samples")),
        "accepted_p50_ms": latency(lat.accepted, 0.5),
        "accepted_p99_ms": latency(lat.accepted, 0.99),
        "visible_p50_ms": latency(lat.visible, 0.5),
        "visible_p99_ms": latency(lat.visible, 0.99),
        "visible_max_ms": latency(lat.visible, 1.0),
        "pipeline_p50_ms": latency(lat.after_accept, 0.5),
        "pipeline_p99_ms": latency(lat.after_accept, 0.99),
        "send_lag_p99_ms": pct(lat.send_lag, 0.99),
        "visible_n": len(lat.visible),
        "errors": len(lat.errors) + whole.failed + closed.failed + alone.failed,
        "machine_cores_busy": whole.machine_busy / whole.wall,
        "open_loop_machine_cores_busy": lat.machine_cores_busy,
        "open_loop_generator_cpu_ms_per_command": (lat.generator_cpu + lat.watch_backend_cpu) * 1000 / max(1, lat.sent),
        "open_loop_watch_backend_cpu_ms_per_command": lat.watch_backend_cpu * 1000 / max(1, lat.sent),
        "open_loop_generator_cores": (lat.generator_cpu + lat.watch_backend_cpu) / opened.wall,
        "open_loop_system_cpu_ms_per_command": system_open * 1000 / max(1, opened.commands),
        "reference_loop_ms": {
            "capacity (wrk)": whole.reference_ms,
            "capacity (generator)": closed.reference_ms,
            "open loop": opened.reference_ms,
            "alone": alone.reference_ms,
        },
        "others_cores": {
            "capacity (wrk)": whole.others_cores(),
            "capacity (generator)": closed.others_cores(),
            "open loop": opened.others_cores(),
            "alone": alone.others_cores(),
        },
    }


def report(r: dict, s: dict, args: argparse.Namespace) -> None:
    whole, alone, lat = r["whole"], r["alone"], r["latencies"]
    others = ", ".join(f"{phase} {cores:.2f}" for phase, cores in s["others_cores"].items())
    print(
        f"whole system as `agentlog dev` runs it: {args.sessions} sessions, {CONNECTIONS} connections, "
        f"{args.seconds:.0f} s per closed-loop phase (whole and alone in {args.rounds} rounds); {os.cpu_count()} cores, {s['machine_cores_busy']:.2f} busy on "
        "average (anything else running on the machine included)"
    )
    print(f"cores busy with other work (not this benchmark's processes): {others}")
    speed = ", ".join(f"{phase} {ms:.0f}" for phase, ms in s["reference_loop_ms"].items())
    print(
        f"machine speed before each phase (a fixed Python loop, best of 5, ms; lower is faster, and CPU per "
        f"command moves with it): {speed}"
    )
    print(
        f"commands accepted        : {s['commands_per_s']:8.0f}/s   command API alone {s['alone_commands_per_s']:.0f}/s"
        f"   ratio {s['ratio']:.2f} (goal >= 0.8)"
    )
    if s["ratio_rounds"]:
        rounds = ", ".join(
            f"{ratio:.2f} ({whole:.0f}|{alone:.0f}/s, {whole_ms:.0f}|{alone_ms:.0f} ms)"
            for ratio, (whole, alone), (whole_ms, alone_ms) in zip(
                s["ratio_rounds"], s["rates_rounds"], s["reference_loop_ms_rounds"], strict=True
            )
        )
        print(f"  per round, whole|alone interleaved (commands/s, machine speed before each): {rounds}")
    print(
        f"events visible           : {s['visible_per_s']:8.0f}/s during the load; caught up "
        f"{s['caught_up_s']:.2f} s after it stopped"
    )
    print(
        f"batching under load      : relay {s['relay_events_per_batch']:.1f} events/batch, projector "
        f"{s['projector_events_per_transaction']:.1f} events/transaction"
    )
    print(
        f"load generators          : wrk {s['wrk_cpu_ms_per_command']:.3f} ms CPU per command; the open loop's "
        f"{s['generator_closed_cpu_ms_per_command']:.3f} closed, {s['open_loop_generator_cpu_ms_per_command']:.3f} "
        f"open (its watcher's Postgres backend {s['open_loop_watch_backend_cpu_ms_per_command']:.3f} included)"
    )
    print(
        f"capacity with the open loop's generator: {s['generator_capacity_per_s']:.0f}/s (closed loop, "
        f"{CONNECTIONS} connections, the generator using {s['generator_closed_cores']:.2f} cores; wrk "
        f"{s['commands_per_s']:.0f}/s)"
    )
    label = "fixed rate" if args.rate else f"at {args.load:.0%} of {s['open_loop_capacity_from']}"
    print(
        f"open loop {label}: {s['open_loop_rate']:.0f}/s target (warm-up {args.warmup_seconds:.0f} s, then "
        f"{args.latency_seconds:.0f} s measured), {s['open_loop_achieved']:.0f}/s achieved, n={s['visible_n']}, "
        f"errors={s['errors']}"
    )
    print(
        f"  machine                : {s['open_loop_machine_cores_busy']:.2f} cores busy, the generator "
        f"{s['open_loop_generator_cores']:.2f} of them; the system {s['open_loop_system_cpu_ms_per_command']:.3f} ms "
        f"CPU per command; sends up to {s['send_lag_p99_ms']:.1f} ms late (p99, counted in the latencies)"
    )
    print(
        f"  batching               : relay {s['open_loop_relay_events_per_batch']:.1f} events/batch, projector "
        f"{s['open_loop_projector_events_per_transaction']:.1f} events/transaction (warm-up and catching up included)"
    )
    if s["open_loop_overloaded"]:
        print(
            f"  OVERLOADED: {s['open_loop_achieved']:.0f}/s achieved < {OVERLOADED:.0%} of the {s['open_loop_rate']:.0f}/s "
            "target: the machine did not keep up, so the latencies measure a growing queue, not the system at this "
            "load; no percentiles reported (see `cores busy with other work` above)"
        )
    else:
        print(f"  command -> accepted    : p50 {s['accepted_p50_ms']:6.1f} ms  p99 {s['accepted_p99_ms']:6.1f} ms")
        print(
            f"  command -> visible     : p50 {s['visible_p50_ms']:6.1f} ms  p99 {s['visible_p99_ms']:6.1f} ms  "
            f"max {s['visible_max_ms']:.1f} ms  (goal p99 <= 100)"
        )
        print(
            f"  accepted -> visible    : p50 {s['pipeline_p50_ms']:6.1f} ms  p99 {s['pipeline_p99_ms']:6.1f} ms  "
            "(relay + Kafka + projector, and the batching windows)"
        )
        stages = [f"{STAGES[k]} {v:.1f} ms" for k, v in s["open_loop_stage_ms"].items() if v is not None]
        if stages:
            print(
                f"  pipeline stages        : {', '.join(stages)} (means, from the relay's and the projector's "
                "own histograms; warm-up and catching up included)"
            )
        print_split(s["open_loop_stage_split"])
        thread = s["api_thread"]
        if thread["open loop"] is not None:
            on, waiting = thread["open loop"]
            closed_note = ""
            if thread["capacity (generator)"] is not None:
                c_on, c_waiting = thread["capacity (generator)"]
                closed_note = f" (closed loop at capacity: {c_on:.0%}, {c_waiting:.0%})"
            print(
                f"  command API's loop     : on a core {on:.0%}, waiting for one {waiting:.0%} of the open loop"
                f"{closed_note}: one thread serves every command; busy {on + waiting:.0%} of the time, it has "
                f"{max(0.0, 1 - on - waiting):.0%} left for a burst or a slower host"
            )
        print_host(s["open_loop_host"])
        if s["open_loop_noisy"]:
            print(
                f"  note: other work kept {s['others_cores']['open loop']:.2f} cores busy during the open loop (more "
                f"than {NOISY_CORES}): these latencies are the shared machine's, not the system's at this load"
            )
        if s["send_lag_p99_ms"] > LATE_SENDS_MS:
            print(
                f"  note: commands went out up to {s['send_lag_p99_ms']:.0f} ms after their due time (p99; the "
                f"scheduler's own step is 2 ms): the generator waited for a core or for a free connection; the "
                "latencies above include that wait"
            )
    # the open loop's commands arrive one by one, not in the closed loop's bursts: fewer per wake-up,
    # smaller batches; this says which process pays for it
    opened = r["open"]
    per_open = max(1, opened.commands)
    print("CPU per command (ms)     :   process  its Postgres backends   (capacity phase, wrk | open loop)")
    for name, (own, pg) in whole.cpu.items():
        o_own, o_pg = opened.cpu.get(name, (0.0, 0.0))
        print(
            f"  {name:22s} : {own * 1000 / whole.commands:9.3f}  {pg * 1000 / whole.commands:9.3f}"
            f"   | {o_own * 1000 / per_open:9.3f}  {o_pg * 1000 / per_open:9.3f}"
        )
    print(
        f"  {'Kafka broker (shared)':22s} : {whole.broker_cpu * 1000 / whole.commands:9.3f}"
        f"   {'':9s}   | {opened.broker_cpu * 1000 / per_open:9.3f}"
    )
    print(
        f"  total                  : {s['cpu_ms_per_command_total']:9.3f}   command API alone "
        f"{s['alone_cpu_ms_per_command']:.3f} (process + backends)"
    )
    print(
        f"delivery pipeline        : {s['pipeline_cpu_ms_per_event']:.3f} ms CPU per event (relay + projector + "
        "their backends + broker; goal <= 0.3)"
    )
    path = s["command_path_cpu_ms"]
    print(
        f"whole against alone      : per command, the pipeline {s['pipeline_cpu_ms_per_event']:.3f} ms more, and the "
        f"command path itself {path['whole'] - path['alone']:+.3f} ms ({path['whole']:.3f} against {path['alone']:.3f} "
        "alone: the same work on cores it shares)"
    )
    if alone.failed or whole.failed or r["closed"].failed:
        print(f"failed answers: whole {whole.failed}, generator capacity {r['closed'].failed}, alone {alone.failed}")
    for error in sorted(set(lat.errors))[:5]:
        print(f"  open-loop error: {error}")
