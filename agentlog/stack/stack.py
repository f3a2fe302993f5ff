"""`agentlog stack up|down|status`: the local Postgres and Kafka, each unless the environment
points at one of the user's own (AGENTLOG_DATABASE_URL, AGENTLOG_KAFKA_BOOTSTRAP_SERVERS).

`up` is idempotent and returns only when both answer a real client round trip; `down` stops only
what this stack started (its own data dir and recorded broker pid).

A setting that names the stack's own address (a loopback host and the stack's port, as `agentlog
dev` prints it) is the stack's service, not the user's: with the URL exported, `down` still stops
the stack and `up` starts it, unless a process the stack did not start listens on that port (then
it is the user's, left alone).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agentlog.stack import kafka_probe
from agentlog.stack.kafka import KafkaBroker
from agentlog.stack.postgres import PostgresCluster
from agentlog.stack.processes import StackError, port_in_use
from agentlog.stack.settings import StackSettings

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _loopback_port(address: str, default_port: int) -> int | None:
    """The port of a `host[:port]` whose host is a loopback one; else None."""
    address = address.strip()
    if address.startswith("["):  # [::1]:9092
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else str(default_port)
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:  # no port, or a bare IPv6 address
        host, port = address, str(default_port)
    return int(port) if host in LOOPBACK and port.isdigit() else None


def names_postgres_port(url: str, port: int) -> bool:
    """Whether a PostgreSQL URL names one loopback server on `port` (a host list, a socket
    directory or another host is not)."""
    try:
        parsed = urlsplit(url)
        named = parsed.hostname in LOOPBACK and (parsed.port or 5432) == port
    except ValueError:  # a port that is not a number, several hosts
        return False
    return named and "host=" not in parsed.query


def names_kafka_port(bootstrap: str, port: int) -> bool:
    """Whether every broker of a bootstrap list is a loopback one on `port`."""
    brokers = [b for b in bootstrap.split(",") if b.strip()]
    return bool(brokers) and all(_loopback_port(b, 9092) == port for b in brokers)


def project_home(settings: StackSettings) -> Path:
    """The stack folder: AGENTLOG_STACK_HOME, else .agentlog beside the project's pyproject.toml."""
    if settings.home.is_absolute():
        return settings.home
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.exists() and 'name = "agentlog"' in pyproject.read_text():
            return folder / settings.home
    return here / settings.home


@dataclass
class Stack:
    settings: StackSettings
    postgres: PostgresCluster
    kafka: KafkaBroker

    @classmethod
    def from_settings(cls, settings: StackSettings | None = None) -> Stack:
        settings = settings or StackSettings()
        home = project_home(settings)
        return cls(
            settings=settings,
            postgres=PostgresCluster(home=home, port=settings.pg_port),
            kafka=KafkaBroker(
                home=home,
                port=settings.kafka_port,
                controller_port=settings.kafka_controller_port,
                kafka_version=settings.kafka_version,
                log4j_version=settings.log4j_version,
                heap=settings.kafka_heap,
            ),
        )

    @property
    def external_database(self) -> str | None:
        """The user's own PostgreSQL, or None when the stack's is meant (see the module's docs)."""
        return self._users(self.settings.external_database_url, names_postgres_port, self.postgres)

    @property
    def external_kafka(self) -> str | None:
        """The user's own Kafka, or None when the stack's is meant (see the module's docs)."""
        return self._users(self.settings.external_kafka, names_kafka_port, self.kafka)

    @staticmethod
    def _users(
        address: str | None, names: Callable[[str, int], bool], service: PostgresCluster | KafkaBroker
    ) -> str | None:
        # the stack's own when it names the stack's port and the stack's service runs there, or
        # nothing listens there yet (the stack's to start and stop)
        if address and names(address, service.port) and (service.is_running() or not port_in_use(service.port)):
            return None
        return address

    def database_url(self) -> str:
        # the URL given wins (its database, user and options), whoever runs the server
        return self.settings.external_database_url or self.postgres.dsn

    def kafka_bootstrap(self) -> str:
        return self.settings.external_kafka or self.kafka.bootstrap

    async def up(self, log=print) -> dict[str, float]:
        """Start what is not running; returns seconds spent per service."""
        timings: dict[str, float] = {}
        started = time.monotonic()
        if not self.external_database:
            if self.postgres.init():
                log(f"postgres: created a cluster in {self.postgres.data_dir}")
            self.postgres.start()
            await self.postgres.wait_ready()
        timings["postgres_s"] = time.monotonic() - started
        started = time.monotonic()
        if self.external_kafka:
            await kafka_probe.wait_ready(self.external_kafka, 30)
        else:
            await self._kafka_up(log)
        timings["kafka_s"] = time.monotonic() - started
        return timings

    async def _kafka_up(self, log) -> None:
        for attempt in (1, 2):
            self.kafka.start()
            try:
                await kafka_probe.wait_ready(self.kafka.bootstrap, self.settings.ready_timeout_s, self.kafka.is_running)
                return
            except (TimeoutError, RuntimeError) as exc:
                # KRaft quorum formation can time out on a busy small machine: one clean retry.
                log(f"kafka: not ready on attempt {attempt}: {exc}")
                self.kafka.stop()
                if attempt == 2:
                    raise StackError(
                        f"Kafka did not become ready: {exc}\n--- broker log tail ---\n{self.kafka.server_log_tail()}"
                    ) from exc

    def running(self) -> dict[str, bool]:
        """Which of the stack's own services run now: pass it to `stop_started` after a run."""
        return {"postgres": self.postgres.is_running(), "kafka": self.kafka.is_running()}

    def stop_started(self, was_running: dict[str, bool]) -> list[str]:
        """Stop the stack's own services that were not running at `was_running` (what a run
        started), and leave the ones that were, and the user's own, alone."""
        stopped = []
        if not self.external_kafka and not was_running["kafka"] and self.kafka.is_running():
            self.kafka.stop()
            stopped.append("kafka")
        if not self.external_database and not was_running["postgres"] and self.postgres.is_running():
            self.postgres.stop()
            stopped.append("postgres")
        return stopped

    def down(self) -> list[str]:
        stopped = []
        if not self.external_kafka and self.kafka.is_running():
            self.kafka.stop()
            stopped.append("kafka")
        if not self.external_database and self.postgres.is_running():
            self.postgres.stop()
            stopped.append("postgres")
        return stopped

    async def status(self) -> dict[str, dict]:
        return {
            "postgres": await self._postgres_status(),
            "kafka": await self._kafka_status(),
        }

    async def _postgres_status(self) -> dict:
        import asyncpg

        info = {"url": _redact(self.database_url()), "managed": not self.external_database}
        try:
            conn = await asyncpg.connect(self.database_url(), timeout=5)
            try:
                info["version"] = await conn.fetchval("SHOW server_version")
            finally:
                await conn.close()
            info["up"] = True
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            info.update(up=False, error=str(exc) or type(exc).__name__)
        if info["managed"]:
            info["pid"] = self.postgres.pid() if self.postgres.is_running() else None
        return info

    async def _kafka_status(self) -> dict:
        info = {"bootstrap": self.kafka_bootstrap(), "managed": not self.external_kafka}
        # a broker that is down is an answer here ("up": false, the error), not an ERROR log line
        client_log = logging.getLogger("aiokafka")
        level = client_log.level
        client_log.setLevel(logging.CRITICAL)
        try:
            info["round_trip_ms"] = round(
                await asyncio.wait_for(kafka_probe.round_trip(self.kafka_bootstrap()), 20) * 1000, 1
            )
            info["up"] = True
        except Exception as exc:  # status reports any failure rather than raising
            info.update(up=False, error=repr(exc))
        finally:
            client_log.setLevel(level)
        if info["managed"]:
            pid = self.kafka.pid() if self.kafka.is_running() else None
            info["pid"] = pid
            if pid:
                info["rss_mb"] = _rss_mb(pid)
        return info


def _redact(url: str) -> str:
    """Never print a password that a DSN may carry."""
    if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
        scheme, rest = url.split("//", 1)
        creds, host = rest.split("@", 1)
        return f"{scheme}//{creds.split(':', 1)[0]}:***@{host}"
    return url


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
