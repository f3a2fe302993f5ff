"""Applies the alembic migrations (`agentlog migrate`) and refuses to run services on a schema
that is behind: every service calls `ensure_schema_current` on start."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from eventstore.errors import SchemaBehindError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(dsn: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", dsn.replace("%", "%%"))
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads: {heads}; merge them")
    return heads[0]


async def current_revision(conn: asyncpg.Connection) -> str | None:
    exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    if not exists:
        return None
    return await conn.fetchval("SELECT version_num FROM alembic_version")


async def ensure_schema_current(conn: asyncpg.Connection) -> None:
    current, head = await current_revision(conn), head_revision()
    if current != head:
        raise SchemaBehindError(
            f"the database schema is at {current or 'nothing'}, this code needs {head}: "
            "run `agentlog migrate` first",
            current=current,
            required=head,
        )


def run_script(sql: str) -> None:
    """Run a multi-statement SQL script inside a migration, in the migration's transaction.

    asyncpg prepares every statement it is given with arguments, and a prepared statement holds one
    command; a script without arguments goes over the simple query protocol instead.
    """
    from alembic import op
    from sqlalchemy.util import await_

    raw = op.get_bind().connection.driver_connection
    await_(raw.execute(sql))
