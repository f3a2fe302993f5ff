"""JSON merge patch (RFC 7396): how a StateSectionUpdated event changes a state section.

Invariant: `apply_merge_patch` never mutates its arguments and shares no mutable containers with
them, so a value folded into a frozen SessionState cannot be changed later through an event or a
caller's dict. Applying the same patch twice gives the same value as applying it once.
"""

from __future__ import annotations

import copy
from typing import Any

_MISSING = object()
# JSON scalars: copy.deepcopy returns them as they are
_IMMUTABLE = frozenset({str, int, float, bool})


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Return `target` with `patch` applied, per RFC 7396 section 2.

    An object patch merges key by key and a `null` member removes the key; any other patch
    (array, string, number, true/false, null) replaces the target entirely.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def merge_patch_in_place(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """`target` becomes `apply_merge_patch(target, patch)` for an object patch, changed in place:
    only for a value the caller owns alone, nested objects included (a fold's own copy)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif type(value) in _IMMUTABLE:
            target[key] = value  # nothing to copy: what deepcopy would give back
        elif isinstance(value, dict) and isinstance(current := target.get(key), dict):
            merge_patch_in_place(current, value)
        else:
            target[key] = apply_merge_patch(None, value)


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Top-level keys whose value differs between two section values (for audit and diffs)."""
    keys = before.keys() | after.keys()
    return sorted(key for key in keys if before.get(key, _MISSING) != after.get(key, _MISSING))
