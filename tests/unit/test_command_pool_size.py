"""The command API's pool size (commands/api/settings.py): by default three connections per core of
the machine, shared by the server's processes; an explicit AGENTLOG_COMMANDS_POOL_SIZE wins."""

from __future__ import annotations

import os

import pytest

from commands.api.settings import CommandsSettings, default_pool_size, machine_cores


@pytest.mark.parametrize(
    ("cores", "workers", "expected"),
    [(2, 1, 6), (2, 2, 3), (8, 1, 24), (8, 8, 3), (1, 1, 3), (1, 4, 2), (3, 2, 5)],
)
def test_the_default_is_three_connections_per_core_shared_by_the_workers(
    cores: int, workers: int, expected: int
) -> None:
    assert default_pool_size(workers, cores) == expected


def test_settings_without_a_pool_size_take_the_machines_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTLOG_COMMANDS_POOL_SIZE", raising=False)
    monkeypatch.setenv("AGENTLOG_COMMANDS_WORKERS", "1")
    assert CommandsSettings().pool_max_size() == default_pool_size(1, machine_cores()) == 3 * machine_cores()


def test_an_explicit_pool_size_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLOG_COMMANDS_POOL_SIZE", "17")
    assert CommandsSettings().pool_max_size() == 17


def test_machine_cores_are_the_ones_this_process_may_use() -> None:
    assert machine_cores() == len(os.sched_getaffinity(0))


def test_a_pool_size_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLOG_COMMANDS_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="pool_size"):
        CommandsSettings()
