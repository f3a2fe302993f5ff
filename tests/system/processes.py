"""Whole agentlog processes for system tests and the end-to-end benchmark: start, stop, kill -9 and
wait for readiness of `agentlog serve commands|queries`, `agentlog relay` and `agentlog project`.

Invariant: every process is started by `Component.start` with its own log file per incarnation
(so readiness is judged on what *this* run logged), and `System.close` stops every process it
started, by its pid, and nothing else. Readiness is a deadline-bounded wait on an outcome (an HTTP
200 from /readyz, the relay's LEADER line, the projector's partition claim), never a sleep.
A test that stops or restarts PostgreSQL does it on a cluster of its own (`postgres_of_its_own`),
never on the shared stack.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from agentlog.stack.postgres import PostgresCluster
from eventstore import migrations
from tests.factories import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@asynccontextmanager
async def postgres_of_its_own(prefix: str = "agentlog-system-pg-") -> AsyncIterator[PostgresCluster]:
    """A PostgreSQL cluster of the caller's own on a free port, started and migrated to head;
    stopped and deleted on the way out, whatever state the test left it in."""
    # The postgres user must reach the data folder: pytest's tmp_path is private to root.
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    home.chmod(0o755)
    cluster = PostgresCluster(home=home, port=free_port())
    try:
        cluster.init()
        cluster.start()
        await cluster.wait_ready()
        await asyncio.to_thread(migrations.upgrade, cluster.dsn)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop, "immediate")
        shutil.rmtree(home, ignore_errors=True)


def system_env(database_url: str, bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    """The environment every component of one system shares: its database, topic and group."""
    group = f"agentlog.projector.test-{uuid.uuid4().hex[:8]}.v1"
    env = {
        **os.environ,
        "AGENTLOG_DATABASE_URL": database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AGENTLOG_KAFKA_TOPIC": topic,
        # A group per system: projectors of other tests on the shared broker never rebalance with it.
        "AGENTLOG_PROJECTOR_GROUP_ID": group,
        "AGENTLOG_QUERIES_PROJECTOR_GROUP": group,
        # The broker's minimum: a killed projector's partitions move to its successor in ~6 s.
        "AGENTLOG_PROJECTOR_SESSION_TIMEOUT_MS": "6000",
        "AGENTLOG_RELAY_POLL_INTERVAL_MS": "200",
        "AGENTLOG_RELAY_HEARTBEAT_MS": "200",
        "AGENTLOG_RELAY_STANDBY_RETRY_MS": "200",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class Component:
    """One agentlog process (`python -m agentlog.cli.main <argv>`), restartable after stop or kill."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        self.name, self.argv, self.env, self.log_dir, self.port = name, argv, env, log_dir, port
        self.proc: subprocess.Popen | None = None
        self.incarnation = 0
        self._terminated = False
        self.log_path = log_dir / f"{name}.0.log"

    def start(self) -> Component:
        self.incarnation += 1
        self._terminated = False
        self.log_path = self.log_dir / f"{self.name}.{self.incarnation}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agentlog", *self.argv],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a scheduling group of its own, as `agentlog dev` starts it
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown code runs, whatever was in flight is cut off."""
        assert self.proc is not None, f"{self.name} was never started"
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> None:
        """SIGTERM once: a second one may reach the process after its handlers are gone."""
        if self.proc is not None and self.running() and not self._terminated:
            self._terminated = True
            self.proc.terminate()

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit code.

        Every component exits 0 after a graceful stop (the APIs' CLI turns uvicorn's re-raised
        SIGTERM into exit 0).
        """
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    async def ready(self) -> bool:
        """True once this incarnation can do its job; raises if the process died."""
        if self.proc is None or not self.running():
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(f"{self.name} exited with {code}:\n{self.log()[-3000:]}")
        if self.port is not None:
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200
            except httpx.TransportError:
                return False
        if self.argv == ["relay"]:
            return "is now the LEADER" in self.log()
        # The projector logs its claim once the group gave it partitions ("owns [(0, ...").
        return " owns [(" in self.log()

    async def wait_ready(self, timeout: float = 45) -> Component:
        try:
            await wait_until(self.ready, timeout=timeout, message=f"{self.name} to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log()[-3000:]}") from None
        return self


class System:
    """The four processes of one agentlog deployment on one database and topic."""

    def __init__(self, database_url: str, bootstrap: str, topic: str, log_dir: Path, **env: str) -> None:
        self.commands_port, self.queries_port = free_port(), free_port()
        self.env = system_env(
            database_url,
            bootstrap,
            topic,
            AGENTLOG_COMMANDS_PORT=str(self.commands_port),
            AGENTLOG_QUERIES_PORT=str(self.queries_port),
            **env,
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        self.commands = Component("commands", ["serve", "commands"], self.env, log_dir, self.commands_port)
        self.queries = Component("queries", ["serve", "queries"], self.env, log_dir, self.queries_port)
        self.relay = Component("relay", ["relay"], self.env, log_dir)
        self.projector = Component("projector", ["project"], self.env, log_dir)
        self.components = [self.commands, self.queries, self.relay, self.projector]

    @property
    def commands_url(self) -> str:
        return f"http://127.0.0.1:{self.commands_port}"

    @property
    def queries_url(self) -> str:
        return f"http://127.0.0.1:{self.queries_port}"

    async def start(self, timeout: float = 60) -> System:
        for component in self.components:
            component.start()
        await asyncio.gather(*(c.wait_ready(timeout) for c in self.components))
        return self

    def close(self) -> dict[str, int]:
        """Stop every component this system started; their exit codes by name."""
        for component in self.components:  # all at once: they shut down in parallel
            component.terminate()
        return {component.name: component.stop() for component in self.components}

    async def __aenter__(self) -> System:
        try:
            return await self.start()
        except BaseException:
            self.close()
            raise

    async def __aexit__(self, *exc_info) -> None:
        self.close()
