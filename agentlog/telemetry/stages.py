"""The per-stage latency of the pipeline, one Prometheus histogram name in every process.

`agentlog_pipeline_stage_seconds{stage}`, each stage measured where it ends:
- `command` (command API): a request received -> its append committed;
- `append_to_kafka` (relay): the event's `recorded_at` (database clock) -> Kafka acknowledged it;
- `kafka_to_read_model` (projector): the record's Kafka timestamp (the relay's clock when it sent
  it) -> the read models committed it;
- `append_to_read_model` (projector): `recorded_at` -> the read models committed it (end to end).
Stages that span processes compare clocks of different hosts; on one host they agree.
Prometheus only: it costs one observation per event and does not depend on tracing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

STAGE_METRIC = "agentlog_pipeline_stage_seconds"
STAGES = ("command", "append_to_kafka", "kafka_to_read_model", "append_to_read_model")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def stage_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        STAGE_METRIC,
        "Per-stage latency of an event: command -> append -> Kafka -> read model",
        ["stage"],
        buckets=BUCKETS,
        registry=registry,
    )
