"""Prometheus metrics of one projector process, in a registry of its own (several projectors may
live in one test process), served on AGENTLOG_PROJECTOR_METRICS_PORT when set.

Events are counted only once their batch committed (a rolled-back batch counts nothing), by
outcome: `applied` (a Kafka record applied to the read models), `gap_filled` (a missing version read
from the events table and applied), `duplicate` (a record at or below the session's applied version,
skipped) and `parked` (a (projection, event) that failed every attempt; its event still counts as
applied or gap_filled, because the other projections applied it). `records_behind` is the
consumer's high-water mark minus the stored position, per partition this instance owns.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agentlog.telemetry.stages import stage_histogram
from eventstore.envelope import RecordedEvent
from projections.projector.applier import BatchResult

OUTCOMES = ("applied", "duplicate", "gap_filled", "parked")


class ProjectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "agentlog_projector_events",
            "events handled by committed batches, by outcome",
            ["outcome"],
            registry=r,
        )
        for outcome in OUTCOMES:  # every outcome exported from the start, at 0
            self.events.labels(outcome)
        self.batches = Counter("agentlog_projector_batches", "batches committed", registry=r)
        self.batch_seconds = Histogram(
            "agentlog_projector_batch_seconds",
            "one batch: checkpoint move + apply + commit",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.records_behind = Gauge(
            "agentlog_projector_records_behind",
            "high-water mark minus stored position",
            ["partition"],
            registry=r,
        )
        self.last_position = Gauge(
            "agentlog_projector_last_applied_position",
            "highest events.position this process applied",
            registry=r,
        )
        self.rebalances = Counter(
            "agentlog_projector_rebalances",
            "partition assignments received",
            registry=r,
        )
        self.retries = Counter(
            "agentlog_projector_retries",
            "batches or seeks that failed (Postgres or Kafka away) and are retried from the stored positions",
            registry=r,
        )
        stage = stage_histogram(r)
        # the record's Kafka timestamp (the relay sent it) -> the batch committed
        self.kafka_to_read_model = stage.labels("kafka_to_read_model")
        # the event's recorded_at (the append) -> the batch committed: end to end
        self.append_to_read_model = stage.labels("append_to_read_model")
        self._last_position = 0
        self._server: WSGIServer | None = None

    def watch_snapshots(self, writer: SnapshotCounts) -> None:
        """Export the fold snapshot writer's counts (read when scraped): snapshots written, and
        sessions whose due snapshots are not written yet (the writer is paced, so after a burst of
        crossings they are written over the next seconds)."""
        self.registry.register(_SnapshotCollector(writer))

    def record_batch(self, result: BatchResult, seconds: float) -> None:
        self.batches.inc()
        self.batch_seconds.observe(seconds)
        self.events.labels("applied").inc(result.applied - result.gap_filled)
        self.events.labels("gap_filled").inc(result.gap_filled)
        self.events.labels("duplicate").inc(result.duplicates)
        self.events.labels("parked").inc(len(result.parked))
        if result.max_position > self._last_position:
            self._last_position = result.max_position
            self.last_position.set(result.max_position)

    def record_stages(self, records: Iterable[Sequence[Any]], events: Sequence[RecordedEvent]) -> None:
        """The per-stage latency of a committed batch: Kafka records (timestamps in ms) and their events."""
        now = time.time()
        for partition in records:
            for record in partition:
                self.kafka_to_read_model.observe(max(0.0, now - record.timestamp / 1000))
        for event in events:
            self.append_to_read_model.observe(max(0.0, now - event.recorded_at.timestamp()))

    def set_behind(self, partition: int, records: int) -> None:
        self.records_behind.labels(str(partition)).set(max(records, 0))

    def forget_partition(self, partition: int) -> None:
        """A revoked partition is another instance's lag now; stop reporting it."""
        with contextlib.suppress(KeyError):
            self.records_behind.remove(str(partition))

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        # /metrics has no auth: loopback unless the operator asks for another interface.
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        """Stop serving; blocks up to the server's 0.5 s poll, so async callers run it in a thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample (for tests and the benchmark)."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0


class SnapshotCounts(Protocol):
    written: int

    @property
    def unwritten(self) -> int: ...


class _SnapshotCollector:
    def __init__(self, writer: SnapshotCounts) -> None:
        self._writer = writer

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield CounterMetricFamily(
            "agentlog_projector_fold_snapshots", "fold snapshots written", value=self._writer.written
        )
        yield GaugeMetricFamily(
            "agentlog_projector_fold_snapshots_pending",
            "sessions whose due fold snapshots are not written yet",
            value=self._writer.unwritten,
        )
