"""The benchmarks' log folder (bench/scratch.py component_logs): gone after a run that ended well,
kept and named after one that failed."""

from __future__ import annotations

import pytest

from bench.scratch import component_logs


def test_the_log_folder_is_deleted_after_a_run_that_ended_well() -> None:
    with component_logs("unit") as folder:
        (folder / "commands.1.log").write_text("started\n")
        assert folder.is_dir()
    assert not folder.exists()


def test_the_log_folder_is_kept_and_named_after_a_run_that_failed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError, match="the projector did not start"), component_logs("unit") as folder:
        (folder / "projector.1.log").write_text("refused\n")
        raise RuntimeError("the projector did not start")
    try:
        assert (folder / "projector.1.log").read_text() == "refused\n"
        assert str(folder) in capsys.readouterr().err
    finally:
        for log in folder.iterdir():
            log.unlink()
        folder.rmdir()
