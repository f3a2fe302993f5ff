"""A relay process runs on idle CPU time where the machine allows it (agentlog/stack/background.py):
the process and its PostgreSQL backends on this machine are in the idle group, and with
AGENTLOG_RELAY_IDLE_CPU=false they stay where they started. The projector takes the same path
(`run_component(background=...)`). Skipped where this machine offers no idle group to join."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from agentlog.stack.background import GROUP, background_group
from tests.integration.relay_support import RelayProcess
from tests.waiting import wait_until


def _can_join() -> bool:
    group = background_group()
    return group is not None and os.access(group.parent, os.W_OK) and (group.parent / "cpu.idle").exists()


pytestmark = pytest.mark.skipif(not _can_join(), reason="no idle CPU group this process may create here")


def cpu_group(pid: int) -> str | None:
    """The process's cgroup in the hierarchy background.py uses (v1 `cpu`, else v2)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    v1 = [line.split(":", 2)[2] for line in lines if "cpu" in line.split(":", 2)[1].split(",")]
    v2 = [line.split(":", 2)[2] for line in lines if line.split(":", 2)[1] == ""]
    return (v1 or v2 or [None])[0]


async def relay_backends(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'agentlog-relay%'"
        )
    finally:
        await conn.close()
    # a server on another machine has pids that mean nothing here
    return [r["pid"] for r in rows if Path(f"/proc/{r['pid']}/comm").exists()]


async def test_relay_and_its_backends_run_in_the_idle_group(
    fresh_database_url: str, kafka_bootstrap: str, topic: str, tmp_path
) -> None:
    relay = RelayProcess(tmp_path / "relay.log", fresh_database_url, kafka_bootstrap, topic).start()
    try:
        await wait_until(relay.is_leader, timeout=60, message="the relay to lead")
        assert (cpu_group(relay.proc.pid) or "").endswith("/" + GROUP), relay.log()
        assert "runs on idle CPU time" in relay.log()
        backends = await wait_until(lambda: relay_backends(fresh_database_url), message="the relay's backends")
        # pool, listener and lock connections; each joins when it connects
        await wait_until(
            lambda: all((cpu_group(pid) or "").endswith("/" + GROUP) for pid in backends),
            message=f"backends {backends} in {GROUP}",
        )
    finally:
        assert relay.stop() == 0


async def test_idle_cpu_off_leaves_the_relay_where_it_started(
    fresh_database_url: str, kafka_bootstrap: str, topic: str, tmp_path
) -> None:
    relay = RelayProcess(tmp_path / "relay.log", fresh_database_url, kafka_bootstrap, topic, idle_cpu="false").start()
    try:
        await wait_until(relay.is_leader, timeout=60, message="the relay to lead")
        assert cpu_group(relay.proc.pid) == cpu_group(os.getpid())
        for pid in await relay_backends(fresh_database_url):
            assert not (cpu_group(pid) or "").endswith("/" + GROUP)
    finally:
        assert relay.stop() == 0
