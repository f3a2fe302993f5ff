"""Versions of a projection (projection_versions, migration 0006) and the fingerprint of its code.

Invariants:
- Per (projector, projection): at most one live and one retired version (unique indexes). Version
  1 is what the projector built from the migrations; it is recorded when it is first replaced.
- A swap makes its build the next version and the live one retired (a retired one before it is
  dropped: one old version is kept); a rollback exchanges live and retired; drop-old drops the
  retired one. Each runs in the transaction that moves the tables, so the registry never names
  tables that are not where it says.
- The fingerprint hashes the handler code a build ran (each handler's module source and byte
  code, plus the event models and upcasters that decode what it gets): two builds with the same
  fingerprint give the same rows from the same log. A rebuild resumes a shadow only with the
  same fingerprint, and its summary says whether the handlers changed since the live version.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

import asyncpg

from projections.read_models.projection import Projection

KNOWN = """
INSERT INTO projection_versions (projector, projection, version, status, source)
SELECT $1, $2, 1, 'live', 'projector'
WHERE NOT EXISTS (SELECT 1 FROM projection_versions WHERE projector = $1 AND projection = $2)
"""
SET_STATUS = """
UPDATE projection_versions SET status = $4, changed_at = now()
WHERE projector = $1 AND projection = $2 AND status = $3 RETURNING version
"""
ADD = """
INSERT INTO projection_versions (projector, projection, version, status, source, fingerprint, events, drift)
SELECT $1, $2, COALESCE(max(version), 0) + 1, 'live', $3, $4, $5, $6
FROM projection_versions WHERE projector = $1 AND projection = $2
RETURNING version
"""
LIST = """
SELECT projection, version, status, source, fingerprint, events, drift, created_at, changed_at
FROM projection_versions WHERE projector = $1 AND status <> 'dropped' ORDER BY projection, version
"""
# Modules whose code decides what a handler receives (decoding, upcasting), hashed with each build.
DECODING_MODULES = ("eventstore.events", "eventstore.upcasting", "eventstore.registry")


def fingerprint(build: Sequence[Projection]) -> str:
    digest = hashlib.sha256()
    for name in DECODING_MODULES:
        digest.update(_module_source(name))
    for projection in build:
        digest.update(f"{projection.name}:{','.join(projection.tables)}".encode())
        for event_type, handler in sorted(projection.handlers.items(), key=lambda item: item[0].TYPE):
            digest.update(event_type.TYPE.encode())
            digest.update(f"{handler.__module__}.{getattr(handler, '__qualname__', '')}".encode())
            digest.update(_module_source(handler.__module__))
            code = getattr(handler, "__code__", None)
            digest.update(code.co_code if code is not None else repr(handler).encode())
    return digest.hexdigest()[:16]


@cache
def _module_source(name: str) -> bytes:
    module = sys.modules.get(name)
    try:
        return inspect.getsource(module).encode() if module is not None else b""
    except (OSError, TypeError):  # no source (a frozen or generated module): byte code stands alone
        return b""


async def _known(conn: asyncpg.Connection, projector: str, projection: str) -> None:
    await conn.execute(KNOWN, projector, projection)


async def record_swap(
    conn: asyncpg.Connection,
    projector: str,
    projection: str,
    *,
    source: str,
    fingerprint: str,
    events: int,
    drift: dict[str, Any] | None,
) -> tuple[int, int | None, int | None]:
    """The build just swapped in becomes live: returns (new version, now retired, dropped)."""
    await _known(conn, projector, projection)
    dropped = await conn.fetchval(SET_STATUS, projector, projection, "retired", "dropped")
    retired = await conn.fetchval(SET_STATUS, projector, projection, "live", "retired")
    version = await conn.fetchval(ADD, projector, projection, source, fingerprint, events, drift)
    return version, retired, dropped


async def record_rollback(conn: asyncpg.Connection, projector: str, projection: str) -> tuple[int, int]:
    """Exchange live and retired: returns (now live, now retired). Three steps, because the unique
    indexes are checked row by row."""
    was_live = await conn.fetchval(SET_STATUS, projector, projection, "live", "dropped")
    now_live = await conn.fetchval(SET_STATUS, projector, projection, "retired", "live")
    await conn.execute(
        "UPDATE projection_versions SET status = 'retired', changed_at = now() "
        "WHERE projector = $1 AND projection = $2 AND version = $3",
        projector,
        projection,
        was_live,
    )
    return now_live, was_live


async def record_drop(conn: asyncpg.Connection, projector: str, projection: str) -> int | None:
    return await conn.fetchval(SET_STATUS, projector, projection, "retired", "dropped")


async def live_fingerprint(conn: asyncpg.Connection | asyncpg.Pool, projector: str, projection: str) -> str | None:
    return await conn.fetchval(
        "SELECT fingerprint FROM projection_versions WHERE projector = $1 AND projection = $2 AND status = 'live'",
        projector,
        projection,
    )


async def listing(conn: asyncpg.Connection | asyncpg.Pool, projector: str) -> dict[str, dict[str, Any]]:
    """{projection: {"live": version, "retired": version or None, ...}} (version 1 when unrecorded)."""
    out: dict[str, dict[str, Any]] = {}
    for row in await conn.fetch(LIST, projector):
        entry = out.setdefault(row["projection"], {"live": 1, "retired": None})
        entry[row["status"]] = row["version"]
        if row["status"] == "live":
            entry.update(source=row["source"], fingerprint=row["fingerprint"], live_since=row["changed_at"])
    return out
