"""Connection pools for agentlog processes: jsonb travels as orjson, and a pool is opened only
by a process's wiring point (never at import time).

Start-up: `wait_until_reachable` is the one place a starting component waits for PostgreSQL.
Invariant: a server that is not accepting connections (refused, starting up, shutting down, in
recovery) is waited for with backoff up to a bound and a log line per attempt; a server that
answers and says no (wrong password, missing database, no pg_hba entry) fails at once, since
waiting cannot fix a configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import orjson

from eventstore.errors import AgentlogError, InfrastructureError

log = logging.getLogger(__name__)

# What a lost or broken connection raises (a server restart, a network cut, a connection left
# mid-operation by a cancellation): the remedy is a new connection, never a verdict on the data.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.OperatorInterventionError,
)
# SQLSTATE classes that say nothing about the statement: connection, resources, operator
# intervention, system, internal. Retrying later, on a new connection, may succeed.
_INFRA_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58", "XX"})


def is_infrastructure_error(exc: BaseException) -> bool:
    """Errors that say nothing about what was written: a lost connection or a server in trouble.
    Any other PostgresError is the statement's own (a constraint, bad data)."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and sqlstate[:2] in _INFRA_SQLSTATE_CLASSES


STARTUP_BACKOFF_S = 0.5
MAX_STARTUP_BACKOFF_S = 5.0
# One attempt never outlasts this: a host that drops packets must not eat the whole wait silently.
CONNECT_ATTEMPT_TIMEOUT_S = 10.0


class DatabaseUnreachableError(InfrastructureError):
    """PostgreSQL did not accept a connection within the start-up wait."""

    code = "database_unreachable"


class DatabaseLoginError(AgentlogError):
    """PostgreSQL answered and refused us (credentials, database name, pg_hba): a configuration error."""

    code = "database_login_failed"


def _dumps(value: Any) -> str:
    # bytes are JSON encoded already (orjson never takes bytes as a value): a caller that had to
    # encode a document anyway (to measure it) does not pay for encoding it twice
    if type(value) is bytes:
        return value.decode()
    return orjson.dumps(value).decode()


ConnectionHook = Callable[[asyncpg.Connection], Awaitable[None]]
CONNECTION_HOOKS: list[ConnectionHook] = []
"""Called with every new connection of this process (pools and `connect`), after its codecs: the
shell registers process-wide ones (a background component's backends join its idle CPU group,
agentlog/stack/background.py). Best effort: a hook that fails is logged and the connection used."""


async def init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(typename, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")
    for hook in CONNECTION_HOOKS:
        try:
            await hook(conn)
        except Exception as exc:
            log.debug("connection hook %r failed: %r", hook, exc)


async def keep_session_state(conn: asyncpg.Connection) -> None:
    """A pool `reset=` that sends nothing on release, instead of asyncpg's reset query (advisory
    unlock, CLOSE ALL, UNLISTEN, RESET ALL): one round trip less per release. Only for pools whose
    connections hold transaction-scoped state alone (no LISTEN, SET, cursors or session advisory
    locks); asyncpg still rolls back a transaction left open before calling it."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=init_connection, **kwargs)


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, **kwargs)
    await init_connection(conn)
    return conn


def server_address(dsn: str) -> str:
    """Where a DSN points, as host:port for log lines: never its user or password."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    hosts = parts.netloc.rpartition("@")[2] or query.get("host", ["localhost"])[0]
    if "," in hosts or hosts.startswith("/") or hosts.rpartition(":")[2].isdigit():
        return hosts
    return f"{hosts}:{query.get('port', ['5432'])[0]}"


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def wait_until_reachable(dsn: str, wait_s: float, stop: asyncio.Event | None = None) -> bool:
    """Return True once PostgreSQL at `dsn` accepts a connection, False if `stop` is set first.

    Refusals and a server not ready yet are retried with a growing backoff for `wait_s` seconds
    (0: one attempt; an attempt may end up to CONNECT_ATTEMPT_TIMEOUT_S past the bound), then
    DatabaseUnreachableError; a login refusal is DatabaseLoginError at once.
    """
    where = server_address(dsn)
    deadline = time.monotonic() + wait_s
    backoff = STARTUP_BACKOFF_S
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=CONNECT_ATTEMPT_TIMEOUT_S)
        except CONNECTION_ERRORS as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waited = f" after waiting {wait_s:g} s (AGENTLOG_DATABASE_STARTUP_WAIT_S)" if wait_s else ""
                raise DatabaseUnreachableError(
                    f"PostgreSQL at {where} is not reachable{waited}: {_reason(exc)}"
                ) from exc
            delay = min(backoff, remaining)
            log.warning("waiting for PostgreSQL at %s: %s, retrying in %.1f s", where, _reason(exc), delay)
            if stop is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return False
            else:
                await asyncio.sleep(delay)
            backoff = min(backoff * 2, MAX_STARTUP_BACKOFF_S)
        except asyncpg.PostgresError as exc:
            raise DatabaseLoginError(f"PostgreSQL at {where} refused the connection: {_reason(exc)}") from exc
        else:
            await conn.close()
            return True
