"""Alembic environment: runs migrations over SQLAlchemy's asyncpg dialect, the only driver agentlog uses.

The URL comes from the config attribute `sqlalchemy.url` (set by eventstore.migrations) or
AGENTLOG_DATABASE_URL; asyncpg connects with it as given, as the services do. Migrations are plain SQL: alembic/ is the only place tables are defined.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from alembic import context

config = context.config


def _dsn() -> str:
    """The DSN as the services take it (postgresql://...); a SQLAlchemy-style postgresql+asyncpg:// too."""
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("AGENTLOG_DATABASE_URL")
    if not url:
        from eventstore.settings import DEFAULT_DATABASE_URL

        url = DEFAULT_DATABASE_URL
    return "postgresql://" + url.partition("://")[2] if url.startswith("postgresql+asyncpg://") else url


def _url() -> str:
    """The SQLAlchemy URL: its dialect alone is used (offline mode, and the engine's dialect)."""
    url = _dsn()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    # asyncpg parses the DSN, as it does for every service: whatever DSN they accept (a Unix socket
    # as ?host=/run/postgresql&port=5433, several hosts, sslmode, ...) `agentlog migrate` accepts.
    # SQLAlchemy's own parsing passed a query-string port on to asyncpg as a string, which failed.
    dsn = _dsn()
    engine = create_async_engine(
        "postgresql+asyncpg://", poolclass=NullPool, async_creator=lambda: asyncpg.connect(dsn)
    )
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
