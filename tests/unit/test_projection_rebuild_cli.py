"""`agentlog projections rebuild`: arguments refused before any connection, the progress line, the
drift report as people read it."""

from __future__ import annotations

import argparse
import io

import pytest

from agentlog.cli.main import main
from agentlog.cli.rebuild import render_rebuild, sessions_of
from projections.read_models.catalog import BY_NAME
from projections.rebuild.job import ProjectionRebuild, RebuildProgress, UnknownProjectionError
from projections.rebuild.progress import ProgressLine, render
from projections.rebuild.report import Difference, DriftReport, TableDrift


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


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["rebuild", "approvals", "--verify-only", "--accept-drift"], "--accept-drift has nothing to accept"),
        (["rebuild", "approvals", "--session", "s1", "--source", "kafka"], "--source kafka rebuilds whole"),
        (["rebuild", "approvals", "--tenant", "t1"], "--tenant goes with --session"),
        (["rebuild", "all", "--session", "s1"], "--session rebuilds one projection at a time"),
        (["rollback", "all"], "unknown projection 'all'"),
        (["rebuild", "approvals", "--sessions-from", "/nonexistent/list"], "no such file /nonexistent/list"),
        (["rebuild", "approvals", "--examples", "-1"], "--examples must be >= 0"),
        (["rollback", "approvals", "--verify-only"], "--verify-only only apply to rebuild"),
        (["status", "--source", "kafka"], "--source only apply to rebuild"),
    ],
)
def test_projection_rebuild_cli_refuses_options_that_do_not_go_together(argv, reason, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # never reached
    assert main(["projections", *argv]) == 2
    assert reason in capsys.readouterr().err


def test_projection_rebuild_cli_reads_sessions_from_a_file(tmp_path) -> None:
    listing = tmp_path / "sessions"
    listing.write_text("case-1\n  # a comment\nt2 case-2  # trailing comment\n\ncase-1\n")
    args = argparse.Namespace(session=["case-0"], sessions_from=str(listing), tenant=None)
    assert sessions_of(args) == [(None, "case-0"), (None, "case-1"), ("t2", "case-2")]
    listing.write_text("t1 case-1 extra\n")
    with pytest.raises(ValueError, match="'ID' or 'TENANT ID'"):
        sessions_of(args)


def test_projection_rebuild_cli_renders_a_drift_report_for_people() -> None:
    changed = Difference(
        "tool_calls_v1", "changed", {"tenant": "t1", "call_id": "c1"}, columns={"error": {"old": "x", "new": None}}
    )
    gone = Difference("tool_calls_v1", "only_live", {"tenant": "t1", "call_id": "c9"}, row={"tenant": "t1"})
    table = TableDrift("tool_calls_v1", live_rows=3, rebuilt_rows=2, only_live=1, changed=4, examples=[changed, gone])
    report = DriftReport([table], full_report="/tmp/drift.jsonl")
    text = render_rebuild({"projection": "tool_calls", "status": "drift_refused", "drift": report.as_dict()})
    assert text.splitlines() == [
        "tool_calls: drift found, nothing swapped (rerun with --accept-drift to swap it anyway)",
        "drift: 5 differences",
        "  tool_calls_v1: live 3 rows, rebuilt 2 rows; 4 changed, 1 only live, 0 only rebuilt",
        "    changed tenant=t1 call_id=c1: error: 'x' -> null",
        "    only in live (the swap removes it): tenant=t1 call_id=c9",
        "    ... and 3 more",
        "  full report: /tmp/drift.jsonl",
    ]


def test_projection_rebuild_drift_report_merges_scopes_keeping_the_first_examples_by_key() -> None:
    def changed(version: int) -> Difference:
        return Difference("t", "changed", {"tenant": "a", "version": version}, columns={"c": {"old": 1, "new": 2}})

    report = DriftReport(examples_per_table=2)
    report.add([TableDrift("t", live_rows=5, changed=2, examples=[changed(10), changed(30)])])
    report.add([TableDrift("t", live_rows=1, changed=1, examples=[changed(9)]), TableDrift("u")])
    (t, u) = report.tables
    assert (t.changed, t.live_rows, [d.key["version"] for d in t.examples]) == (3, 6, [9, 10])
    assert (u.differences, report.differences, report.clean) == (0, 3, False)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_projection_rebuild_progress_on_a_terminal_is_a_bar_with_counts_rate_and_eta() -> None:
    stream = _Terminal()
    line = ProgressLine(stream)
    progress = RebuildProgress("tool_calls", events_done=250, events_total=1000)
    progress.started -= 10
    line(progress)
    progress.events_done, progress.phase = 1000, "swapping"
    line(progress)
    line.finish("tool_calls: swapped")
    shown = stream.getvalue()
    assert "tool_calls (building)" in shown and "250/1000 events" in shown and "ETA 0:00:30" in shown
    assert "tool_calls (swapping)" in shown and "1000/1000 events 100%" in shown
    assert shown.endswith("tool_calls: swapped\n")


def test_projection_rebuild_progress_off_a_terminal_writes_a_line_at_each_phase() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream, interval=3600, clock=lambda: 5.0)
    progress = RebuildProgress("approvals", events_done=2, events_total=2)
    line(progress)
    progress.phase = "verifying"
    line(progress)
    line(progress)
    assert [text.endswith("(verifying)") for text in stream.getvalue().splitlines()] == [False, True]
