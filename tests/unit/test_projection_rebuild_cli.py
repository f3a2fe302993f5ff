"""`agentlog projections rebuild`: an unknown name is refused before any connection; the progress line."""

from __future__ import annotations

import io

import pytest

from agentlog.cli.main import main
from projections.read_models.catalog import BY_NAME
from projections.rebuild.job import ProjectionRebuild, RebuildProgress, UnknownProjectionError
from projections.rebuild.progress import ProgressLine, render


def test_projection_rebuild_refuses_an_unknown_name_with_the_known_ones() -> None:
    with pytest.raises(UnknownProjectionError) as caught:
        ProjectionRebuild(None, "sessions")  # type: ignore[arg-type] - refused before using the pool
    assert caught.value.extra["known"] == list(BY_NAME)
    assert "session_summaries" in str(caught.value)


def test_projection_rebuild_cli_exits_2_on_an_unknown_name(capsys, monkeypatch) -> None:
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["projections", "rebuild", "nope", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown projection 'nope'" in captured.err and "tool_stats" in captured.err


def test_projection_rebuild_progress_line_shows_done_total_rate_and_eta() -> None:
    progress = RebuildProgress("tool_calls", events_done=250, events_total=1000)
    progress.started -= 10  # 25 events/s so far
    line = render(progress)
    assert line.startswith("tool_calls [######......")
    assert "250/1000 events" in line and "25%" in line and "25 ev/s" in line and "ETA 0:00:30" in line


def test_projection_rebuild_progress_line_off_a_terminal_writes_whole_lines() -> None:
    stream = io.StringIO()
    # A clock just after boot: the first line must show even though `now` < interval.
    line = ProgressLine(stream, interval=3600, clock=lambda: 5.0)
    line(RebuildProgress("approvals", events_done=1, events_total=2))
    line(RebuildProgress("approvals", events_done=2, events_total=2))  # within the interval: not shown
    line.finish("approvals: swapped")
    assert stream.getvalue().count("\n") == 2 and "\r" not in stream.getvalue()
    assert stream.getvalue().endswith("approvals: swapped\n")
