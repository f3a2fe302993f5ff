"""bench/stage_split.py: the open loop's commands taken apart by stage, on scripted timelines."""

from __future__ import annotations

import pytest

from bench.open_loop import Latencies
from bench.stage_split import print_split, split


def timeline(commands: list[tuple[float, float, float, float]]) -> tuple[Latencies, dict, dict]:
    """Commands as (scheduled, appended, handed to Kafka, visible), wall seconds."""
    lat = Latencies(wall_offset=1000.0)  # perf_counter = wall - 1000
    recorded, handed = {}, {}
    for i, (scheduled, appended, sent, seen) in enumerate(commands):
        key = (f"s{i}", 3)
        lat.visible_keys.append(key)
        lat.visible_due.append(scheduled - 1000.0)
        lat.visible.append(seen - scheduled)
        recorded[key], handed[key] = appended, sent
    return lat, recorded, handed


def test_the_stages_add_up_to_command_to_visible_and_the_slowest_are_taken_apart() -> None:
    # 99 commands: 2 ms to appended, 20 ms in the relay, 15 ms on to the read models; one slow
    # command waited 80 ms in the command API and 50 ms in the projector.
    fast = [(t, t + 0.002, t + 0.022, t + 0.037) for t in (float(i) for i in range(99))]
    lat, recorded, handed = timeline([*fast, (200.0, 200.080, 200.100, 200.150)])

    s = split(lat, recorded, handed)

    assert s["n"] == s["of"] == 100
    assert s["stages"]["to appended"]["p50"] == pytest.approx(2.0, abs=1e-6)
    assert s["stages"]["in the relay"]["p50"] == pytest.approx(20.0, abs=1e-6)
    assert s["stages"]["to the read models"]["p50"] == pytest.approx(15.0, abs=1e-6)
    slow = s["slowest"]
    assert slow["command -> visible"] == pytest.approx(150.0, abs=1e-6)
    assert (slow["to appended"], slow["in the relay"], slow["to the read models"]) == pytest.approx(
        (80.0, 20.0, 50.0), abs=1e-6
    )


def test_commands_without_a_record_are_left_out_and_nothing_matched_is_empty() -> None:
    lat, recorded, handed = timeline([(10.0, 10.001, 10.030, 10.040), (11.0, 11.001, 11.030, 11.040)])
    del handed[("s1", 3)]

    s = split(lat, recorded, handed)

    assert (s["n"], s["of"]) == (1, 2)
    assert split(lat, {}, handed) == {}


def test_the_report_names_each_stage_and_the_tail(capsys: pytest.CaptureFixture[str]) -> None:
    lat, recorded, handed = timeline([(10.0, 10.001, 10.030, 10.040)])

    print_split(split(lat, recorded, handed))
    print_split({})

    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "in the relay p50 29.0" in out[0] and "(1 of 1 commands matched)" in out[0]
    assert (
        out[1].strip().startswith("the slowest 1 %        : 40.0 ms on average = 1.0 to appended + 29.0 in the relay")
    )
