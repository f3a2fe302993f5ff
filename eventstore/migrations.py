"""Applies the alembic migrations (`agentlog migrate`) and refuses to run services on a schema
that is behind: every service calls `ensure_schema_current` on start.

Where the migrations are: in a source checkout, the alembic/ folder beside the packages (so each
checkout or worktree runs its own); installed from a wheel, the package eventstore.schema_migrations
(the same folder, mapped by pyproject.toml). The alembic configuration is built here, with no ini file,
so an installed agentlog needs nothing outside site-packages.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import asyncpg
from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic import command
from eventstore.errors import SchemaBehindError

MIGRATIONS_PACKAGE = "eventstore.schema_migrations"


def script_location() -> Path:
    """The folder holding env.py and versions/: the checkout's alembic/ if this module runs from a
    checkout, else the installed package. The checkout comes first because an editable install maps
    the package to one checkout, and a second worktree must not run the first one's migrations."""
    checkout = Path(__file__).resolve().parent.parent / "alembic"
    if (checkout / "env.py").is_file() and (checkout / "versions").is_dir():
        return checkout
    # The package has no __init__.py (alembic/ must not shadow the alembic library in a checkout),
    # so files() gives a namespace's MultiplexedPath; a file inside it is a plain path.
    return Path(str(resources.files(MIGRATIONS_PACKAGE).joinpath("env.py"))).parent


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
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
    revision: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
    return revision


async def ensure_schema_current(conn: asyncpg.Connection) -> None:
    current, head = await current_revision(conn), head_revision()
    if current != head:
        raise SchemaBehindError(
            f"the database schema is at {current or 'nothing'}, this code needs {head}: run `agentlog migrate` first",
            current=current,
            required=head,
        )


def run_script(sql: str) -> None:
    """Run a multi-statement SQL script inside a migration, in the migration's transaction.

    asyncpg prepares every statement it is given with arguments, and a prepared statement holds one
    command; a script without arguments goes over the simple query protocol instead.
    """
    from sqlalchemy.util import await_

    from alembic import op

    raw = op.get_bind().connection.driver_connection
    assert raw is not None, "migrations run on a live asyncpg connection"
    await_(raw.execute(sql))
