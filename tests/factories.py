"""Test factories: random names (ids, topics, groups), free ports and scratch databases.

Isolation between tests (and between the people sharing one Postgres and Kafka) is by random names,
so every name a test makes comes from here: one alphabet, one length per kind, no collisions worth
a thought. A scratch database is always dropped, whatever the test did.
"""

from __future__ import annotations

import random
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg


def random_id(prefix: str, length: int = 10) -> str:
    """`prefix-<hex>`: a session id, tenant, call id or any other name that must not collide."""
    return f"{prefix}-{uuid.uuid4().hex[:length]}"


def session_id(prefix: str = "s") -> str:
    return random_id(prefix, 12)


def tenant_id(prefix: str = "t") -> str:
    return random_id(prefix, 10)


def topic_name(kind: str = "test") -> str:
    """A Kafka topic no one else uses, in the project's `agentlog.<kind>.<x>.v1` shape."""
    return f"agentlog.{kind}.{uuid.uuid4().hex[:10]}.v1"


def group_id(kind: str = "test") -> str:
    return f"agentlog.{kind}.{uuid.uuid4().hex[:8]}"


# Ports handed out by this process: a port is never given twice, even after its listener closed.
_GIVEN: set[int] = set()
_RANDOM = random.SystemRandom()  # tests seed `random`; ports must not repeat across processes alike
_BELOW_EPHEMERAL = 12_000  # how many ports below the OS's ephemeral range free_port picks from


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default range starts here


def free_port() -> int:
    """A port nothing is bound to now, below the OS's ephemeral range, never given before in this process.

    Why not bind port 0: the OS picks that port from the ephemeral range, where it also picks the
    local port of every outgoing connection. Between this call and the server's bind, the system
    under test opens dozens (pools, Kafka clients), and one that got the same port made the bind
    fail with EADDRINUSE (a projector's /metrics port, once in about twenty bench_system runs).
    Below the range no outgoing connection takes it; a race with another server's bind remains.
    """
    low = _ephemeral_low()
    candidates = range(max(1024, low - _BELOW_EPHEMERAL), low)
    for _ in range(200):
        port = _RANDOM.choice(candidates)
        if port in _GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    with socket.socket() as sock:  # a crowded range: let the OS pick
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _GIVEN.add(port)
    return port


def with_database(dsn: str, name: str) -> str:
    """The same server and credentials, another database."""
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


async def _admin(admin_dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(admin_dsn: str, prefix: str = "agentlog_t", template: str | None = None) -> str:
    """A new empty database (or a copy of `template`); returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    await _admin(admin_dsn, f'CREATE DATABASE "{name}"{clause}')
    return name


async def drop_database(admin_dsn: str, name: str) -> None:
    await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def scratch_database(
    admin_dsn: str, prefix: str = "agentlog_t", template: str | None = None
) -> AsyncIterator[str]:
    """The URL of a new database on the server of `admin_dsn`, dropped on the way out."""
    name = await create_database(admin_dsn, prefix, template)
    try:
        yield with_database(admin_dsn, name)
    finally:
        await drop_database(admin_dsn, name)
