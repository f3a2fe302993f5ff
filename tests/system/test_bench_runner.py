"""`python -m bench` (`make bench`) on a machine whose stack is not running: it starts the stack's
services that are not running, runs the benchmarks against them, and stops what it started, and
only that. (Before, every benchmark ended in a traceback: connection refused.)"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

import bench.__main__ as bench_runner
from agentlog.stack import kafka_probe
from agentlog.stack.stack import Stack
from tests.system.processes import free_port, port_open

pytestmark = pytest.mark.system

PROBE = ["tests.system.bench_probe"]


@pytest.fixture
def own_postgres_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str):
    """A stack home whose PostgreSQL is not running (a free port); Kafka is the tests' own, named
    by AGENTLOG_KAFKA_BOOTSTRAP_SERVERS, so it counts as the user's and must be left alone."""
    monkeypatch.setenv("AGENTLOG_STACK_HOME", str(tmp_path / "stack"))
    monkeypatch.setenv("AGENTLOG_STACK_PG_PORT", str(free_port()))
    monkeypatch.setenv("AGENTLOG_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.delenv("AGENTLOG_DATABASE_URL", raising=False)
    monkeypatch.setitem(bench_runner.BENCHMARKS, "probe", PROBE)
    stack = Stack.from_settings()
    try:
        yield stack
    finally:
        if stack.postgres.is_running():
            stack.postgres.stop("immediate")
        shutil.rmtree(stack.postgres.root, ignore_errors=True)  # /var/tmp when the service user is another


async def test_bench_starts_the_postgres_it_needs_and_stops_it_afterwards(
    own_postgres_home: Stack, kafka_bootstrap: str, capfd: pytest.CaptureFixture[str]
) -> None:
    stack = own_postgres_home
    assert not port_open(stack.postgres.port)
    code = await asyncio.to_thread(bench_runner.main, ["probe"])  # it runs its own event loop
    out = capfd.readouterr().out
    assert code == 0, out
    assert f"probe: postgres answered on port {stack.postgres.port}" in out
    assert "stopped what this run started: postgres" in out
    assert not stack.postgres.is_running() and not port_open(stack.postgres.port)
    assert await kafka_probe.round_trip(kafka_bootstrap) > 0  # the user's Kafka still serves


async def test_bench_leaves_a_running_stack_running(
    services: Stack, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(bench_runner.BENCHMARKS, "probe", PROBE)
    running = services.running()
    code = await asyncio.to_thread(bench_runner.main, ["probe"])
    out = capfd.readouterr().out
    assert code == 0, out
    assert "probe: postgres answered" in out and "stopped what this run started" not in out
    assert services.running() == running
    assert await kafka_probe.round_trip(services.kafka_bootstrap()) > 0
