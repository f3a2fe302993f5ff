"""The command API's pool size (commands/api/settings.py): by default three connections per core of
the machine (its CPU quota if lower), shared by the server's processes, 2 to 20; an explicit
AGENTLOG_COMMANDS_POOL_SIZE wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from commands.api import settings as settings_module
from commands.api.settings import CommandsSettings, cpu_quota_cores, default_pool_size, machine_cores


@pytest.mark.parametrize(
    ("cores", "workers", "expected"),
    [(2, 1, 6), (2, 2, 3), (6, 1, 18), (8, 8, 3), (1, 1, 3), (1, 4, 2), (3, 2, 5)],
)
def test_the_default_is_three_connections_per_core_shared_by_the_workers(
    cores: int, workers: int, expected: int
) -> None:
    assert default_pool_size(workers, cores) == expected


def test_settings_without_a_pool_size_take_the_machines_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTLOG_COMMANDS_POOL_SIZE", raising=False)
    monkeypatch.setenv("AGENTLOG_COMMANDS_WORKERS", "1")
    assert CommandsSettings().pool_max_size() == default_pool_size(1, machine_cores()) == min(20, 3 * machine_cores())


def test_an_explicit_pool_size_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLOG_COMMANDS_POOL_SIZE", "17")
    assert CommandsSettings().pool_max_size() == 17


def test_machine_cores_are_the_ones_this_process_may_use() -> None:
    quota = cpu_quota_cores()
    affinity = len(os.sched_getaffinity(0))
    assert machine_cores() == (min(affinity, quota) if quota else affinity)


def test_a_pool_size_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLOG_COMMANDS_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="pool_size"):
        CommandsSettings()


def test_a_big_machine_gets_no_more_than_twenty_connections_per_process() -> None:
    assert default_pool_size(1, 64) == 20
    assert default_pool_size(4, 64) == 20
    assert default_pool_size(16, 64) == 12


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1)],
)
def test_a_cgroup_v2_cpu_quota_gives_the_cores_it_allows(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert cpu_quota_cores(tmp_path) == expected


@pytest.mark.parametrize(("quota", "expected"), [("-1", None), ("400000", 4), ("250000", 3)])
def test_a_cgroup_v1_cpu_quota_gives_the_cores_it_allows(tmp_path: Path, quota: str, expected: int | None) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota_cores(tmp_path) == expected


def test_no_cgroup_files_mean_no_quota(tmp_path: Path) -> None:
    assert cpu_quota_cores(tmp_path) is None


def test_the_quota_caps_the_cores_of_a_container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    monkeypatch.setattr(settings_module, "CGROUP", tmp_path)
    assert settings_module.machine_cores() == 1
    assert default_pool_size(1) == 3
