"""bench_pipeline --windows: the split of each component's CPU into a cost per batch and a cost per
event, from runs at several relay windows (no services: figures as the runs report them)."""

from __future__ import annotations

import pytest

from bench.bench_pipeline import COMPONENTS, split_costs, split_report


def run_at(batch: float, per_batch: dict[str, float], per_event: dict[str, float]) -> dict:
    figures = {key: per_event[key] + per_batch[key] / batch for _, key in COMPONENTS}
    return figures | {
        "relay_events_per_batch": batch,
        "pipeline_ms": sum(figures.values()),
        "visible_p50_ms": 30.0,
        "visible_p99_ms": 60.0,
    }


def test_split_recovers_the_cost_per_batch_and_per_event() -> None:
    # relay 1.2 ms per batch + 0.02 ms per event: at 28.8, 57 and 112 events per batch
    points = [(b, 0.02 + 1.2 / b) for b in (28.8, 57.0, 112.0)]
    per_batch, per_event = split_costs(points)
    assert per_batch == pytest.approx(1.2)
    assert per_event == pytest.approx(0.02)


def test_split_needs_two_batch_sizes() -> None:
    assert split_costs([(50.0, 0.1)]) is None
    assert split_costs([(50.0, 0.1), (50.0, 0.12)]) is None
    assert split_costs([(0.0, 0.1), (50.0, 0.12)]) is None  # a run that published nothing


def test_report_gives_the_floor_batching_cannot_lower() -> None:
    keys = [key for _, key in COMPONENTS]
    per_batch = dict(zip(keys, (1.2, 0.0, 1.6, 0.8, 1.5), strict=True))
    per_event = dict(zip(keys, (0.020, 0.010, 0.076, 0.035, 0.014), strict=True))
    report = split_report([(w, run_at(b, per_batch, per_event)) for w, b in ((20, 28.8), (40, 57.0), (80, 112.0))])
    assert "projector    :  1.600 per batch, 0.076 per event" in report
    assert "pipeline     :  5.100 per batch, 0.155 per event: the floor" in report
    assert "  40 ms:   57.0" in report


def test_report_says_when_it_cannot_split() -> None:
    keys = [key for _, key in COMPONENTS]
    one = run_at(57.0, dict.fromkeys(keys, 1.0), dict.fromkeys(keys, 0.01))
    assert "needs runs with at least two different batch sizes" in split_report([(40, one), (40, one)])
