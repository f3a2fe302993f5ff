"""A project-local PostgreSQL cluster for development and tests, run from the system's binaries.

The cluster lives in <home>/postgres, listens on 127.0.0.1:<port> only, and trusts local
connections (a development cluster: never expose it). `stop` acts only on this data directory.
"""

from __future__ import annotations

import asyncio
import functools
import glob
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from agentlog.stack.processes import (
    StackError,
    pid_alive,
    port_in_use,
    read_pid,
    run_as,
    service_user,
)

SERVER_CONF = """
# written by agentlog stack: sized for a 2-core development machine shared with Kafka and tests
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 256MB
work_mem = 8MB
max_wal_size = 2GB
# nothing here decodes the WAL: logical would log more per UPDATE (no prefix/suffix compression of the
# new row; 3.50 against 3.37 kB of WAL per command in bench_system's open loop)
wal_level = replica
log_min_messages = warning
log_min_duration_statement = -1
"""


def find_bindir() -> Path:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/N/bin)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    raise StackError(
        "PostgreSQL server binaries (pg_ctl, initdb) not found: install them with "
        "`apt-get install -y postgresql`, or point AGENTLOG_DATABASE_URL at a PostgreSQL of your own"
    )


@dataclass(eq=False)
class PostgresCluster:
    home: Path
    port: int
    database: str = "agentlog"
    user: str = "agentlog"

    @functools.cached_property
    def root(self) -> Path:
        """<home>/postgres, or, when we are root and the `postgres` user cannot reach <home> (a
        private temporary folder, say), a folder of its own named after <home>."""
        preferred = self.home / "postgres"
        owner = service_user()
        if not owner:
            return preferred
        self.home.mkdir(parents=True, exist_ok=True)
        if run_as(owner, ["test", "-x", str(self.home)]).returncode == 0:
            return preferred
        digest = hashlib.sha1(str(self.home.resolve()).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"agentlog-postgres-{digest}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")

    def is_running(self) -> bool:
        return pid_alive(self.pid())

    def _prepare_dirs(self, owner: str | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if owner:
            shutil.chown(self.root, owner, owner)
            probe = run_as(owner, ["test", "-w", str(self.root)])
            if probe.returncode != 0:
                raise StackError(
                    f"the '{owner}' user cannot write {self.root}; set AGENTLOG_STACK_HOME to a "
                    "folder it can reach, e.g. /var/tmp/agentlog"
                )

    def init(self) -> bool:
        """Create the cluster if it does not exist. Returns True when it was created now."""
        if (self.data_dir / "PG_VERSION").exists():
            return False
        bindir = find_bindir()
        owner = service_user()
        self._prepare_dirs(owner)
        result = run_as(
            owner,
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(SERVER_CONF)
        return True

    def start(self, timeout_s: float = 60.0) -> None:
        if self.is_running():
            return
        if port_in_use(self.port):
            raise StackError(
                f"port {self.port} is taken by another program, not by agentlog's PostgreSQL in "
                f"{self.data_dir}; free it or choose another with AGENTLOG_STACK_PG_PORT"
            )
        bindir = find_bindir()
        owner = service_user()
        result = run_as(
            owner,
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(timeout_s)),
                "-o",
                f"-p {self.port} -k {self.data_dir}",
                "start",
            ],
        )
        if result.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise StackError(f"PostgreSQL did not start:\n{result.stdout}{result.stderr}\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        if not self.is_running():
            return
        run_as(service_user(), [str(find_bindir() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Ready means a real round trip, and the agentlog database exists."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                conn = await asyncpg.connect(
                    host="127.0.0.1", port=self.port, user=self.user, database="postgres", timeout=5
                )
                try:
                    exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
                    if not exists:
                        await conn.execute(f'CREATE DATABASE "{self.database}"')
                    return
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError) as exc:
                last = exc
                await asyncio.sleep(0.2)
        raise StackError(f"PostgreSQL on port {self.port} not ready after {timeout_s:.0f}s: {last}")
