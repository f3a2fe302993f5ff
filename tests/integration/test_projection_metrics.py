"""The projector's own /metrics (AGENTLOG_PROJECTOR_METRICS_PORT), scraped over HTTP as Prometheus
would: event outcomes match what was fed, lag drops to 0 once caught up, the port is freed on stop."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventstore import db
from tests.factories import free_port
from tests.integration.projection_support import append, produce, running_projector, settings, support_case
from tests.waiting import wait_until


@pytest.fixture
async def fresh_pool(fresh_database_url: str):
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of the endpoint as {(name, sorted labels): value}; {} while it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
    except httpx.TransportError:
        return {}
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _events(samples: dict, outcome: str) -> float:
    return samples.get(("agentlog_projector_events_total", (("outcome", outcome),)), -1)


def _behind(samples: dict) -> dict[str, float]:
    return {
        dict(labels)["partition"]: value
        for (name, labels), value in samples.items()
        if name == "agentlog_projector_records_behind"
    }


async def _caught_up(port: int, consumed: int) -> dict:
    samples = await _scrape(port)
    done = _events(samples, "applied") + _events(samples, "duplicate") + _events(samples, "gap_filled")
    behind = _behind(samples)
    return samples if done >= consumed and behind and not any(behind.values()) else {}


async def _sessions(pool, n: int) -> list:
    recorded = []
    for _ in range(n):
        recorded += await append(pool, "t1", "s-" + uuid.uuid4().hex[:8], support_case())
    return recorded


async def test_projector_metrics_count_applied_and_duplicate_events_and_lag_reaches_zero(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    recorded = await _sessions(fresh_pool, 3)
    await produce(kafka_bootstrap, topic, [*recorded, recorded[4]])  # Kafka delivers one event twice
    port = free_port()
    async with running_projector(fresh_pool, kafka_bootstrap, topic, settings(batch_size=10, metrics_port=port)):
        samples = await wait_until(
            lambda: _caught_up(port, len(recorded) + 1),
            timeout=30,
            message="every record counted and no partition behind",
        )
    assert _events(samples, "applied") == len(recorded)
    assert _events(samples, "duplicate") == 1
    assert _events(samples, "gap_filled") == 0 and _events(samples, "parked") == 0
    batches = samples[("agentlog_projector_batches_total", ())]
    assert batches >= (len(recorded) + 1) / 10
    assert samples[("agentlog_projector_batch_seconds_count", ())] == batches
    assert samples[("agentlog_projector_last_applied_position", ())] == max(r.position for r in recorded)
    assert samples[("agentlog_projector_rebalances_total", ())] >= 1
    assert set(_behind(samples)) == {"0", "1", "2"}
    assert await _scrape(port) == {}, "the metrics server outlived its projector"


async def test_projector_metrics_count_gap_filled_events_when_kafka_lacks_a_record(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    recorded = await _sessions(fresh_pool, 1)
    fed = [r for r in recorded if r.version != 3]
    await produce(kafka_bootstrap, topic, fed)
    port = free_port()
    async with running_projector(fresh_pool, kafka_bootstrap, topic, settings(metrics_port=port)):
        samples = await wait_until(
            lambda: _caught_up(port, len(recorded)), timeout=30, message="the gap filled and no partition behind"
        )
    assert (_events(samples, "applied"), _events(samples, "gap_filled")) == (len(fed), 1)
    assert _events(samples, "duplicate") == 0
