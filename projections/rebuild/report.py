"""The drift report of a rebuild: what the swap would change, per table, for people and for tools.

Invariants:
- "old" is the live value, "new" the rebuilt one: the report reads as "the swap would change old
  to new". A row only in live would disappear; a row only in the rebuild would appear.
- Counts are exact; examples are the first N differences of each table in key order; the full
  listing goes to a JSON-lines file (one difference a line) when asked for.
- A report is clean when no table has a difference; only then does a rebuild swap without
  --accept-drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

PARKED_PREFIX = "projection_parked_events["


@dataclass
class Difference:
    table: str
    kind: str  # only_live | only_rebuilt | changed
    key: dict[str, Any]
    columns: dict[str, dict[str, Any]] | None = None  # changed: {column: {"old": live, "new": rebuilt}}
    row: dict[str, Any] | None = None  # only_live / only_rebuilt: the whole row

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class TableDrift:
    table: str
    live_rows: int = 0
    rebuilt_rows: int = 0
    only_live: int = 0
    only_rebuilt: int = 0
    changed: int = 0
    examples: list[Difference] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return self.only_live + self.only_rebuilt + self.changed

    def add(self, other: TableDrift, limit: int) -> None:
        """Fold another scope's comparison of the same table into this one."""
        self.live_rows += other.live_rows
        self.rebuilt_rows += other.rebuilt_rows
        self.only_live += other.only_live
        self.only_rebuilt += other.only_rebuilt
        self.changed += other.changed
        merged = sorted([*self.examples, *other.examples], key=lambda d: _sort_key(d.key))
        self.examples = merged[:limit]

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "examples"}
        out["differences"] = self.differences
        out["examples"] = [d.as_dict() for d in self.examples]
        return out


def _sort_key(key: dict[str, Any]) -> tuple:
    """Key order as SQL sorts it (numbers as numbers), NULLs last."""
    return tuple((v is None, v if isinstance(v, int | float) else str(v)) for v in key.values())


@dataclass
class DriftReport:
    tables: list[TableDrift] = field(default_factory=list)
    examples_per_table: int = 10
    sessions_rechecked: int = 0  # sessions compared again at the swap (they moved during the rebuild)
    seconds: float = 0.0
    full_report: str | None = None  # path of the JSON-lines listing, when one was written

    @property
    def differences(self) -> int:
        return sum(t.differences for t in self.tables)

    @property
    def clean(self) -> bool:
        return self.differences == 0

    def add(self, found: Iterable[TableDrift]) -> None:
        by_name = {t.table: t for t in self.tables}
        for table in found:
            if table.table in by_name:
                by_name[table.table].add(table, self.examples_per_table)
            else:
                self.tables.append(table)
                by_name[table.table] = table

    def set_totals(self, totals: dict[str, tuple[int, int]]) -> None:
        """Whole-table row counts (live, rebuilt), replacing the per-scope sums."""
        for table in self.tables:
            if table.table in totals:
                table.live_rows, table.rebuilt_rows = totals[table.table]

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "differences": self.differences,
            "sessions_rechecked": self.sessions_rechecked,
            "seconds": round(self.seconds, 3),
            "full_report": self.full_report,
            "tables": [t.as_dict() for t in self.tables],
        }


def render(report: dict[str, Any]) -> str:
    """The drift report (as `DriftReport.as_dict()` gives it) for a person: a line per table with
    its counts, then its examples."""
    lines = []
    for t in report["tables"]:
        if t["table"].startswith(PARKED_PREFIX) and not t["differences"]:
            continue  # parked events are bookkeeping: shown only when they differ
        lines.append(
            f"  {t['table']}: live {t['live_rows']} rows, rebuilt {t['rebuilt_rows']} rows; "
            f"{t['changed']} changed, {t['only_live']} only live, {t['only_rebuilt']} only rebuilt"
        )
        lines += [f"    {_describe(d)}" for d in t["examples"]]
        if t["differences"] > len(t["examples"]):
            lines.append(f"    ... and {t['differences'] - len(t['examples'])} more")
    if report.get("full_report"):
        lines.append(f"  full report: {report['full_report']}")
    return "\n".join(lines)


def _describe(d: dict[str, Any]) -> str:
    key = " ".join(f"{k}={v}" for k, v in d["key"].items())
    if d["kind"] == "changed":
        changes = ", ".join(f"{c}: {_short(v['old'])} -> {_short(v['new'])}" for c, v in d["columns"].items())
        return f"changed {key}: {changes}"
    where = (
        "only in live (the swap removes it)" if d["kind"] == "only_live" else "only in the rebuild (the swap adds it)"
    )
    return f"{where}: {key}"


def _short(value: Any, width: int = 60) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


class JsonLinesSink:
    """Writes every difference as one JSON line (the full report behind --drift-report FILE)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._file: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.written = 0

    def write(self, difference: Difference) -> None:
        self._file.write(orjson.dumps(difference.as_dict()).decode() + "\n")
        self.written += 1

    def close(self) -> None:
        self._file.close()
