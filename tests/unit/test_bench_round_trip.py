"""bench/bench_round_trip.py's report: medians per connection kind and callers in flight, and the
ratios it exists for (one at a time against four in flight; Unix socket against TCP)."""

from __future__ import annotations

import pytest

from bench.bench_round_trip import report


def test_the_report_prints_medians_and_what_waiting_for_each_answer_adds(capsys: pytest.CaptureFixture[str]) -> None:
    results = {
        ("TCP", 1): [(140.0, 80.0, 250.0), (130.0, 70.0, 240.0), (999.0, 999.0, 999.0)],
        ("Unix socket", 1): [(120.0, 60.0, 210.0)] * 3,
        ("TCP", 4): [(60.0, 40.0, 64.0)] * 3,
        ("Unix socket", 4): [(48.0, 30.0, 50.0)] * 3,
    }
    report(results)
    printed = capsys.readouterr().out

    assert "TCP          1 in flight      :   140.0 us         80.0 us     250.0 us" in printed  # medians
    assert "TCP: one at a time / 4 in flight = 2.33 (client), 2.00 (backend)" in printed
    assert "Unix socket / TCP, 4 in flight: 0.80 (client), 0.75 (backend)" in printed


def test_without_a_local_socket_only_tcp_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    report({("TCP", 1): [(100.0, 50.0, 200.0)], ("TCP", 4): [(50.0, 25.0, 60.0)]})
    printed = capsys.readouterr().out

    assert "TCP: one at a time / 4 in flight = 2.00 (client), 2.00 (backend)" in printed
    assert "Unix socket" not in printed
