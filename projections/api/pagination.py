"""Opaque cursors for keyset pagination: base64url of a small JSON array of the last row's keys.

Invariant: a cursor is only ever decoded into the exact shape its endpoint encoded (checked), so
a tampered or foreign cursor is a 422 naming the `query.cursor` field, never a 500 or another tenant's
rows (every query filters by the caller's tenant regardless of the cursor). No string key holds
a NUL (Postgres text refuses it), and an instant, from a cursor or a query parameter, is only
accepted when its UTC value lies within years 1..9999 (`instant`), the range Python and Postgres
timestamptz share.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any, overload

import orjson

from eventstore.errors import ValidationProblemError

CURSOR = "query.cursor"  # the field a refused cursor names (agentlog.edge.problems.field_errors' naming)
NO_NUL = r"^[^\x00]*$"
"""Pattern for free-text query parameters: anything but a NUL (Postgres text refuses it)."""


def encode(kind: str, *keys: Any) -> str:
    raw = orjson.dumps([kind, *keys])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str | None, kind: str, types: tuple[type, ...]) -> list[Any] | None:
    """The keys of `cursor` (None for no cursor); 422 unless it is a cursor of `kind`."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        value = None
    ok = (
        isinstance(value, list)
        and len(value) == len(types) + 1
        and value[0] == kind
        and all(_key_ok(v, t) for v, t in zip(value[1:], types, strict=False))
    )
    if not ok:
        raise _refused(CURSOR, "not a cursor this endpoint issued; start without one")
    return value[1:]


def _key_ok(value: Any, kind: type) -> bool:
    if not isinstance(value, kind) or isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**63
    return not isinstance(value, str) or "\x00" not in value


@overload
def instant(value: datetime | str, field: str) -> datetime: ...
@overload
def instant(value: None, field: str) -> None: ...
def instant(value: datetime | str | None, field: str) -> datetime | None:
    """`value` (a datetime or ISO 8601 text) as a datetime; 422 naming `field` if it is not one
    whose UTC value lies within years 1..9999."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.utcoffset() is not None:
            moment.astimezone(UTC)
    except (ValueError, OverflowError, TypeError):
        reason = (
            "not a cursor this endpoint issued; start without one"
            if field == CURSOR
            else "must be a date-time within years 1..9999 once converted to UTC"
        )
        raise _refused(field, reason) from None
    return moment


def _refused(field: str, reason: str) -> ValidationProblemError:
    return ValidationProblemError(
        "the request is not valid" if field != CURSOR else "invalid cursor",
        errors=[{"field": field, "reason": reason}],
    )
