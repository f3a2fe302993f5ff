"""What a command may carry as free-form JSON or as an instant: only values every store accepts.

Invariant: a value that passes `check_json` is stored unchanged by Postgres jsonb, by orjson (the
envelope on Kafka) and by every read model: no NUL character or lone surrogate in a string or key (jsonb refuses
U+0000, UTF-8 has no surrogates), no NaN/Infinity (JSON has none; json.loads turns NaN, Infinity and 1e400 into floats that
would be stored as null), no integer outside 64 bits (orjson cannot write it), nesting at most
MAX_DEPTH deep (events, snapshots and audit rows wrap the value in a few more levels, and orjson
stops at 255), and at most the caller's size in bytes. An instant passes `check_instant` when its
UTC value lies within years 1..9999: the range Python (asyncpg decodes into datetime) and
Postgres timestamptz (4713 BC..294276 AD) share, bar its first and last microsecond, which asyncpg
writes as -infinity and infinity and reads back as naive datetimes.

A refusal is a ValueError whose message names the path inside the value and the reason, so the
edge answers 422 invalid_input naming the field and where in it.

`same_json` is equality of JSON values, which Python's == is not: True == 1 == 1.0 in Python,
but `true` and `1` are different JSON values (1 and 1.0 are the same number). Numbers compare as
the decimals their JSON text writes, as jsonb keeps them: the float 3.747113283042022e16 is
stored as 37471132830420220 and read back as that integer, which Python's == holds unequal to the
float (whose binary value is ...224).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
NUL = "\x00"


def _where(path: tuple[Any, ...]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".") or "(top level)"


def _string_problem(text: str) -> str | None:
    if NUL in text:
        return "must not contain the NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain a lone UTF-16 surrogate (U+D800..U+DFFF): not valid UTF-8"
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT_MIN <= value <= INT_MAX else "integer outside the 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number (not NaN or Infinity)"
    return f"not a JSON value ({type(value).__name__})"


def find_problem(value: Any) -> tuple[tuple[Any, ...], str] | None:
    """(path, reason) of the first part of `value` no store accepts unchanged; None if all do.

    Iterative, so a hostile nesting depth costs no recursion."""
    stack: list[tuple[tuple[Any, ...], Any, int]] = [((), value, 1)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return path, f"nested deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return path, "object keys must be strings"
                    key_problem = _string_problem(key)
                    if key_problem is not None:
                        shown = key.encode("utf-8", "backslashreplace").decode().replace(NUL, "\\u0000")
                        return (*path, shown), f"key {key_problem}"
                    stack.append(((*path, key), child, depth + 1))
            else:
                stack.extend(((*path, i), child, depth + 1) for i, child in enumerate(item))
            continue
        problem = _scalar_problem(item)
        if problem is not None:
            return path, problem
    return None


def check_json(value: Any, max_bytes: int) -> Any:
    """`value` unchanged if every store keeps it as is and it is at most `max_bytes` as JSON."""
    found = find_problem(value)
    if found is not None:
        path, reason = found
        raise ValueError(f"at {_where(path)}: {reason}")
    size = len(orjson.dumps(value))
    if size > max_bytes:
        raise ValueError(f"must be at most {max_bytes} bytes as JSON")
    return value


# asyncpg's sentinels for timestamptz -infinity and infinity (its datetime.min and datetime.max).
_DRIVER_INFINITIES = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


def check_instant(value: datetime) -> datetime:
    """`value` unchanged if it is time-zone aware and its UTC value lies within years 1..9999,
    strictly after 0001-01-01T00:00:00Z and before 9999-12-31T23:59:59.999999Z."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a time-zone offset")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must lie within years 1..9999 once converted to UTC") from None
    if utc in _DRIVER_INFINITIES:
        # Stored, it would come back as -infinity/infinity, a naive datetime, not this instant.
        raise ValueError(
            "must lie within years 1..9999 once converted to UTC, strictly between "
            "0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z"
        )
    return value


def _decimal(number: int | float) -> Decimal:
    # repr is the shortest text that reads back as the float: the digits JSON (and jsonb) get.
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def same_json(a: Any, b: Any) -> bool:
    """Whether two parsed JSON values are the same JSON value: numbers as decimals, a boolean
    never equal to a number, objects key by key, arrays item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b if type(a) is type(b) else _decimal(a) == _decimal(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
