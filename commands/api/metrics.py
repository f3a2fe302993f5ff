"""Prometheus metrics of one command API app, in its own registry (two apps never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from agentlog.telemetry.stages import stage_histogram

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class CommandMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "agentlog_commands_total",
            "Commands handled, by command and outcome (ok, replayed or the problem code)",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "agentlog_commands_append_seconds",
            "Time to load, decide and append one request",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # a request received -> its append committed (or its no-op answered)
        self.stage = stage_histogram(self.registry).labels("command")

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
