"""`agentlog dev` as a user runs it, pointed at running services (AGENTLOG_DATABASE_URL,
AGENTLOG_KAFKA_BOOTSTRAP_SERVERS): it uses them instead of starting a stack, prints a development
key that works, serves both APIs, and on Ctrl-C stops its own children and nothing else."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from agentlog.stack import kafka_probe
from tests.system.processes import ROOT, free_port, port_open, system_env
from tests.waiting import wait_until

pytestmark = pytest.mark.system


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _command_of(pid: int) -> str:
    """What an `agentlog` child runs: its arguments after `-m agentlog` (Linux /proc)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return " ".join(argv[argv.index("agentlog") + 1 :]).strip()


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[16])  # field 19 of proc(5)


def _autogroup_nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])  # "/autogroup-123 nice 0"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _dev_key(stdout: Path) -> str | None:
    lines = stdout.read_text().splitlines() if stdout.exists() else []
    for i, line in enumerate(lines[:-1]):
        if "development API key" in line:
            return lines[i + 1].strip()
    return None


class DevRun:
    """`python -m agentlog.cli.main dev` in the background, its stdout and stderr in files."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.stdout, self.stderr = folder / "dev.out", folder / "dev.err"
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agentlog", "dev"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        return f"--- stdout\n{self.stdout.read_text()}\n--- stderr\n{self.stderr.read_text()[-4000:]}"

    def running(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"agentlog dev exited with {self.proc.returncode}\n{self.output()}")
        return True

    def close(self) -> None:
        if self.proc.poll() is None:  # only when the test failed before its own SIGINT
            children = _children(self.proc.pid)  # read before the kill: a dead parent lists none
            self.proc.kill()
            self.proc.wait(10)
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def _serves_metrics(url: str, prefix: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            r = await client.get(url)
    except httpx.TransportError:
        return False
    return r.status_code == 200 and prefix in r.text


async def _services_up(database_url: str, bootstrap: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
    assert await kafka_probe.round_trip(bootstrap) >= 0


async def test_dev_uses_running_services_serves_both_apis_and_sigint_stops_only_its_children(
    fresh_database_url: str,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    # A topic nobody created yet: a first run, where dev must create it before the projector subscribes.
    topic = f"agentlog.test.{uuid.uuid4().hex[:10]}.v1"
    ports = {"commands": free_port(), "queries": free_port(), "relay": free_port(), "projector": free_port()}
    # Free ports instead of dev's fixed defaults: other runs on this machine may hold those.
    env = system_env(
        fresh_database_url,
        kafka_bootstrap,
        topic,
        AGENTLOG_STACK_HOME=str(tmp_path / "stack"),
        AGENTLOG_COMMANDS_PORT=str(ports["commands"]),
        AGENTLOG_QUERIES_PORT=str(ports["queries"]),
        AGENTLOG_RELAY_METRICS_PORT=str(ports["relay"]),
        AGENTLOG_PROJECTOR_METRICS_PORT=str(ports["projector"]),
    )
    commands, queries = (f"http://127.0.0.1:{ports[name]}" for name in ("commands", "queries"))
    dev = DevRun(env, tmp_path)
    try:
        key = await wait_until(
            lambda: dev.running() and _dev_key(dev.stdout), timeout=60, message="the development key on stdout"
        )
        assert key.startswith("al_") and (tmp_path / "stack" / "dev-api-key").read_text().strip() == key
        # Regression: the URLs were printed before the APIs listened, so a user's first request
        # right after the announcement was refused. Once announced, both answer without waiting.
        for url in (commands, queries):
            assert await _ready(url), f"{url} announced but not ready"
        for name in ("relay", "projector"):
            url = f"http://127.0.0.1:{ports[name]}/metrics"
            assert url in dev.stdout.read_text()
            await wait_until(
                lambda url=url, name=name: dev.running() and _serves_metrics(url, f"agentlog_{name}_"),
                timeout=60,
                message=url,
            )
        children = _children(dev.proc.pid)
        assert len(children) == 4, children  # both APIs, the relay and the projector
        # the relay and the projector are background work: the APIs go first on shared cores
        niceness = {_command_of(pid): _niceness(pid) for pid in children}
        assert niceness == {"serve commands": 0, "serve queries": 0, "relay": 10, "project": 10}, niceness
        # each its own session: where the kernel schedules by session (autogroup), each component is
        # weighed like one PostgreSQL backend, not all of them as one share of the terminal's session
        assert all(os.getsid(pid) == pid for pid in children), children
        if Path("/proc/self/autogroup").exists():
            groups = {_command_of(pid): _autogroup_nice(pid) for pid in children}
            assert groups == {"serve commands": 0, "serve queries": 0, "relay": 10, "project": 10}, groups
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            r = await client.post(f"{commands}/v1/sessions", json={"session_id": "dev-case", "workflow": "demo"})
            assert r.status_code == 201, r.text
            r = await client.get(
                f"{queries}/v1/sessions/dev-case", params={"min_version": r.json()["version"], "wait_ms": 20000}
            )
            assert r.status_code == 200, r.text
            assert (r.json()["session_id"], r.json()["status"], r.json()["version"]) == ("dev-case", "open", 1)

        dev.proc.send_signal(signal.SIGINT)
        assert dev.proc.wait(30) == 0, dev.output()
        assert not [pid for pid in children if _alive(pid)]
        assert not [name for name, port in ports.items() if port_open(port)]
        await _services_up(fresh_database_url, kafka_bootstrap)  # it did not stop what it did not start
        # A first run on a fresh topic: the projector used to subscribe before the relay created
        # it and log "Topic ... not found in cluster metadata" at ERROR on a healthy start.
        output = dev.stdout.read_text() + dev.stderr.read_text()
        errors = [line for line in output.splitlines() if " ERROR " in line]
        assert not errors, errors
    finally:
        dev.close()
