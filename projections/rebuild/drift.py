"""The drift check of a rebuild: rebuilt rows against live rows, table by table, in SQL.

Invariants:
- Rows are matched by the table's primary key; a row is "changed" when any compared column is
  distinct (IS DISTINCT FROM, so NULLs compare). Columns that the swap recomputes itself
  (IGNORED) are not compared: they would report the swap's own bookkeeping as drift.
- A comparison covers only the rows of its Scope (all rows, some sessions, one session), the same
  scope on both sides, so sessions whose versions differ between the two sides can be left to a
  later comparison at the same version (projections/rebuild/verify.py).
- Counting is one pass over the join; the examples (first N by key) and the full listing (a
  DriftSink, e.g. a JSON-lines file) are a second pass, run only when the count found drift.
- Nothing is written: the caller's transaction decides what snapshot the comparison sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from projections.rebuild.report import Difference, TableDrift

# Columns the swap recomputes after moving the tables: has_parked_events is set from every
# projection's parked events, which a one-projection rebuild cannot know while it builds.
IGNORED: dict[str, tuple[str, ...]] = {"session_summaries_v1": ("has_parked_events",)}
PARKED = "projection_parked_events"

SHAPE = """
SELECT a.attname AS name,
       array_position(string_to_array(i.indkey::text, ' ')::int[], a.attnum::int) AS key_order
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


class DriftSink(Protocol):
    """Receives every difference found (the full report), in key order per table."""

    def write(self, difference: Difference) -> None: ...


@dataclass(frozen=True)
class TableShape:
    """What the comparison needs to know of a table: its key, the columns compared, a row filter."""

    table: str
    key: tuple[str, ...]
    compared: tuple[str, ...]
    columns: tuple[str, ...] = ()  # every column (compared and ignored), in table order
    where: str = "true"  # a fixed filter on both sides (alias x), e.g. one projection's parked rows
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.table

    @property
    def per_session(self) -> bool:
        return {"tenant", "session_id"} <= set(self.key)


@dataclass(frozen=True)
class Scope:
    """Which rows a comparison covers: an SQL condition on alias x, the same on both sides."""

    sql: str = "true"
    args: tuple[Any, ...] = ()
    sessions_only: bool = False  # tables without a session key are left out of this scope

    @staticmethod
    def everything() -> Scope:
        return Scope()

    @staticmethod
    def sessions_in(table: str) -> Scope:
        return Scope(
            f"EXISTS (SELECT 1 FROM {table} k WHERE k.tenant = x.tenant AND k.session_id = x.session_id)",
            sessions_only=True,
        )

    @staticmethod
    def sessions_not_in(table: str) -> Scope:
        return Scope(
            f"NOT EXISTS (SELECT 1 FROM {table} k WHERE k.tenant = x.tenant AND k.session_id = x.session_id)",
            sessions_only=True,
        )

    @staticmethod
    def session(tenant: str, session_id: str) -> Scope:
        return Scope("x.tenant = $1 AND x.session_id = $2", (tenant, session_id), sessions_only=True)


def literal(text: str) -> str:
    """An SQL string literal (for names from the catalog and settings, never user rows)."""
    return "'" + text.replace("'", "''") + "'"


async def shape_of(conn: asyncpg.Connection, table: str) -> TableShape:
    rows = await conn.fetch(SHAPE, f"public.{table}")
    if not rows:
        raise LookupError(f"table public.{table} does not exist")
    key = tuple(r["name"] for r in sorted((r for r in rows if r["key_order"]), key=lambda r: r["key_order"]))
    ignored = IGNORED.get(table, ())
    compared = tuple(r["name"] for r in rows if r["name"] not in ignored)
    return TableShape(table, key, compared, tuple(r["name"] for r in rows))


def parked_shape(projector: str, projection: str) -> TableShape:
    """A projection's parked events, compared by presence: parked live, or parked by the rebuild."""
    return TableShape(
        PARKED,
        ("tenant", "session_id", "version"),
        ("tenant", "session_id", "version"),
        where=f"x.projector = {literal(projector)} AND x.projection = {literal(projection)}",
        label=f"{PARKED}[{projection}]",
    )


async def shapes_for(
    conn: asyncpg.Connection, tables: Sequence[str], projector: str, projection: str
) -> list[TableShape]:
    return [*[await shape_of(conn, t) for t in tables], parked_shape(projector, projection)]


def _sides(shape: TableShape, live: str, rebuilt: str, scope: Scope) -> str:
    where = f"({shape.where}) AND ({scope.sql})"
    on = " AND ".join(f"l.{k} = r.{k}" for k in shape.key)
    return (
        f"WITH l AS (SELECT * FROM {live}.{shape.table} x WHERE {where}), "
        f"r AS (SELECT * FROM {rebuilt}.{shape.table} x WHERE {where}) "
        f"SELECT {{select}} FROM l FULL JOIN r ON {on}"
    )


def _changed(shape: TableShape) -> str:
    left = ", ".join(f"l.{c}" for c in shape.compared)
    right = ", ".join(f"r.{c}" for c in shape.compared)
    return f"ROW({left}) IS DISTINCT FROM ROW({right})"


def count_sql(shape: TableShape, live: str, rebuilt: str, scope: Scope) -> str:
    k = shape.key[0]
    select = (
        f"count(l.{k}) AS live_rows, count(r.{k}) AS rebuilt_rows, "
        f"count(*) FILTER (WHERE r.{k} IS NULL) AS only_live, "
        f"count(*) FILTER (WHERE l.{k} IS NULL) AS only_rebuilt, "
        f"count(*) FILTER (WHERE l.{k} IS NOT NULL AND r.{k} IS NOT NULL AND {_changed(shape)}) AS changed"
    )
    return _sides(shape, live, rebuilt, scope).format(select=select)


def _as_json(alias: str, shape: TableShape) -> str:
    pairs = ", ".join(f"{literal(c)}, {alias}.{c}" for c in shape.compared)
    return f"CASE WHEN {alias}.{shape.key[0]} IS NULL THEN NULL ELSE jsonb_build_object({pairs}) END"


def rows_sql(shape: TableShape, live: str, rebuilt: str, scope: Scope, limit: int | None) -> str:
    k = shape.key[0]
    select = f"{_as_json('l', shape)} AS live, {_as_json('r', shape)} AS rebuilt"
    order = ", ".join(f"COALESCE(l.{c}, r.{c})" for c in shape.key)
    sql = _sides(shape, live, rebuilt, scope).format(select=select)
    sql += f" WHERE r.{k} IS NULL OR l.{k} IS NULL OR {_changed(shape)} ORDER BY {order}"
    return sql + (f" LIMIT {int(limit)}" if limit is not None else "")


def difference(shape: TableShape, live: dict | None, rebuilt: dict | None) -> Difference:
    """One row's difference: the key, and the whole row (one side only) or the changed columns."""
    side = live if live is not None else rebuilt
    assert side is not None
    key = {k: side[k] for k in shape.key}
    row = {c: side[c] for c in shape.compared}  # in table order (jsonb orders keys by length)
    if rebuilt is None:
        return Difference(shape.name, "only_live", key, row=row)
    if live is None:
        return Difference(shape.name, "only_rebuilt", key, row=row)
    columns = {c: {"old": live[c], "new": rebuilt[c]} for c in shape.compared if live[c] != rebuilt[c]}
    return Difference(shape.name, "changed", key, columns=columns)


@dataclass
class Comparison:
    """Compares `rebuilt` against `live` (schema names) for a set of tables."""

    live: str
    rebuilt: str
    examples: int = 10
    sink: DriftSink | None = None
    seconds: float = field(default=0.0)

    async def table(self, conn: asyncpg.Connection, shape: TableShape, scope: Scope) -> TableDrift:
        if scope.sessions_only and not shape.per_session:
            return TableDrift(shape.name)
        counts = await conn.fetchrow(count_sql(shape, self.live, self.rebuilt, scope), *scope.args)
        drift = TableDrift(
            shape.name,
            live_rows=counts["live_rows"],
            rebuilt_rows=counts["rebuilt_rows"],
            only_live=counts["only_live"],
            only_rebuilt=counts["only_rebuilt"],
            changed=counts["changed"],
        )
        if drift.differences == 0:
            return drift
        if self.sink is None:
            rows = await conn.fetch(rows_sql(shape, self.live, self.rebuilt, scope, self.examples), *scope.args)
            drift.examples = [difference(shape, r["live"], r["rebuilt"]) for r in rows]
            return drift
        # The full listing streams through a server-side cursor (the caller's transaction).
        async for r in conn.cursor(rows_sql(shape, self.live, self.rebuilt, scope, None), *scope.args):
            found = difference(shape, r["live"], r["rebuilt"])
            self.sink.write(found)
            if len(drift.examples) < self.examples:
                drift.examples.append(found)
        return drift

    async def tables(self, conn: asyncpg.Connection, shapes: Sequence[TableShape], scope: Scope) -> list[TableDrift]:
        return [await self.table(conn, shape, scope) for shape in shapes]
