"""Prometheus metrics of one relay process, in a registry of its own (several relays may live in
one test process). Backlog and oldest-age gauges are refreshed from Postgres by the relay; the
per-second publish rate is `rate(agentlog_relay_events_published_total[1m])`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from agentlog.telemetry.stages import stage_histogram


class RelayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.backlog = Gauge("agentlog_relay_outbox_backlog", "outbox rows not yet published", registry=r)
        self.oldest_age = Gauge(
            "agentlog_relay_outbox_oldest_age_seconds",
            "age of the oldest unpublished outbox row",
            registry=r,
        )
        self.published = Counter("agentlog_relay_events_published", "events Kafka acknowledged", registry=r)
        self.batch_seconds = Histogram(
            "agentlog_relay_batch_seconds",
            "send + acks + delete of one batch (batches overlap)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_rows = Histogram(
            "agentlog_relay_batch_rows",
            "outbox rows per batch sent (grows with the load: adaptive batching)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.errors = Counter(
            "agentlog_relay_publish_errors",
            "failed batch publications",
            ["error", "retriable"],
            registry=r,
        )
        self.parked = Counter(
            "agentlog_relay_parked",
            "outbox rows parked because they can never be published",
            registry=r,
        )
        # recorded_at (the database's clock at the append) -> Kafka acknowledged the record
        self.append_to_kafka = stage_histogram(r).labels("append_to_kafka")
        self.leader = Gauge("agentlog_relay_leader", "1 while this process is the leader", registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        # /metrics has no auth: loopback unless the operator asks for another interface.
        start_http_server(port, addr=host, registry=self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample (for tests and the benchmark)."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def total(self, name: str) -> float:
        """Sum of a sample over all its label values."""
        return sum(s.value for m in self.registry.collect() for s in m.samples if s.name == name)
