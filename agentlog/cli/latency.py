"""The per-stage latency part of `agentlog status`: the `agentlog_pipeline_stage_seconds`
histograms (agentlog/telemetry/stages.py) read from each process's /metrics, summarised.

The command API serves /metrics on its own port; the relay and the projector on
AGENTLOG_RELAY_METRICS_PORT / AGENTLOG_PROJECTOR_METRICS_PORT when set (`agentlog dev` sets
9464 / 9465). Each process counts since it started; a process that does not answer is reported as
unreachable, never guessed at. With several command API workers, /metrics is one worker's.
"""

from __future__ import annotations

import math
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agentlog.telemetry.stages import STAGE_METRIC, STAGES


def metrics_urls() -> dict[str, str | None]:
    """Where each process serves /metrics, from the same settings the processes read."""
    from commands.api.settings import CommandsSettings
    from outbox.settings import RelaySettings
    from projections.settings import ProjectorSettings

    def url(host: str, port: int | None) -> str | None:
        if port is None:
            return None
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/metrics"

    commands, relay, projector = CommandsSettings(), RelaySettings(), ProjectorSettings()
    return {
        "command API": url(commands.host, commands.port),
        "relay": url(relay.metrics_host, relay.metrics_port),
        "projector": url(projector.metrics_host, projector.metrics_port),
    }


def summarise(exposition: str) -> dict[str, dict[str, Any]]:
    """{stage: {count, mean_ms, p50_ms, p90_ms, p99_ms}} of the stage histograms in one exposition."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != STAGE_METRIC:
            continue
        for sample in family.samples:
            stage = sample.labels.get("stage", "")
            if sample.name.endswith("_bucket"):
                buckets.setdefault(stage, []).append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                sums[stage] = sample.value
    out = {}
    for stage, cumulative in buckets.items():
        cumulative.sort()
        count = cumulative[-1][1] if cumulative else 0.0
        if not count:
            continue
        out[stage] = {
            "count": int(count),
            "mean_ms": round(1000 * sums.get(stage, 0.0) / count, 2),
            **{f"p{q}_ms": _quantile(cumulative, count, q / 100) for q in (50, 90, 99)},
        }
    return out


def _quantile(cumulative: list[tuple[float, float]], count: float, q: float) -> float | None:
    """Linear interpolation within the bucket holding the q-quantile (Prometheus' histogram_quantile)."""
    rank, lower, below = q * count, 0.0, 0.0
    for upper, seen in cumulative:
        if seen >= rank:
            if math.isinf(upper):
                return round(1000 * lower, 2)  # beyond the last finite bucket: its bound, a floor
            share = (rank - below) / (seen - below) if seen > below else 1.0
            return round(1000 * (lower + (upper - lower) * share), 2)
        lower, below = upper, seen
    return None


def stage_latency(timeout_s: float = 2.0) -> dict[str, Any]:
    """{"stages": {stage: summary and its source}, "unreachable": {process: reason}}."""
    stages: dict[str, Any] = {}
    unreachable: dict[str, str] = {}
    for process, url in metrics_urls().items():
        if url is None:
            unreachable[process] = "no metrics port set"
            continue
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                text = response.read().decode()
        except OSError as exc:
            unreachable[process] = f"{url}: {getattr(exc, 'reason', exc)}"
            continue
        for stage, summary in summarise(text).items():
            stages[stage] = {**summary, "source": url}
    ordered = {stage: stages[stage] for stage in STAGES if stage in stages}
    return {"stages": ordered, "unreachable": unreachable}


def render(latency: dict[str, Any]) -> list[str]:
    lines = []
    for stage, s in latency.get("stages", {}).items():
        lines.append(
            f"latency  {stage:<21} {s['count']:>8} events  p50 {_ms(s['p50_ms'])}  p90 {_ms(s['p90_ms'])}  "
            f"p99 {_ms(s['p99_ms'])}  mean {_ms(s['mean_ms'])}"
        )
    for process, reason in latency.get("unreachable", {}).items():
        lines.append(f"latency  {process}: not measured ({reason})")
    return lines


def _ms(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:7.1f} ms"
