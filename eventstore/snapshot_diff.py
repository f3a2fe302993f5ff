"""A small structural diff of two JSON documents (state snapshots before and after an event).

Invariant: applying the diff to `before` gives `after`: every path that exists only in `after` is
`added`, only in `before` is `removed`, and in both with different values is `changed`. Paths are
JSON Pointers (RFC 6901). Objects are compared member by member; arrays and scalars as whole
values, because snapshot arrays are ordered memories whose items have no stable identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    added: dict[str, Any] = field(default_factory=dict)  # path -> new value
    removed: dict[str, Any] = field(default_factory=dict)  # path -> old value
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # path -> (old, new)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [{"path": p, "value": v} for p, v in self.added.items()],
            "removed": [{"path": p, "value": v} for p, v in self.removed.items()],
            "changed": [{"path": p, "from": old, "to": new} for p, (old, new) in self.changed.items()],
        }


def pointer(parent: str, key: str) -> str:
    return f"{parent}/{key.replace('~', '~0').replace('/', '~1')}"


def diff_snapshots(before: Any, after: Any) -> SnapshotDiff:
    result = SnapshotDiff()
    walk(before, after, "", result)
    return result


def walk(before: Any, after: Any, path: str, out: SnapshotDiff) -> None:
    """Add to `out` what differs between `before` and `after` under `path`."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before:
            child = pointer(path, str(key))
            if key not in after:
                out.removed[child] = before[key]
            else:
                walk(before[key], after[key], child, out)
        for key in after:
            if key not in before:
                out.added[pointer(path, str(key))] = after[key]
        return
    # bool is an int in Python: True == 1 must still count as a change of JSON value.
    if before != after or type(before) is not type(after):
        out.changed[path] = (before, after)
