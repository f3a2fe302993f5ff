"""Opaque cursors for keyset pagination: base64url of a small JSON array of the last row's keys.

Invariant: a cursor is only ever decoded into the exact shape its endpoint encoded (checked), so
a tampered or foreign cursor is a 422 naming the `cursor` field, never a 500 or another tenant's
rows (every query filters by the caller's tenant regardless of the cursor).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from eventstore.errors import ValidationProblemError


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
    ok = (isinstance(value, list) and len(value) == len(types) + 1 and value[0] == kind
          and all(isinstance(v, t) and (t is not int or 0 <= v < 2**63)
                  for v, t in zip(value[1:], types)))
    if not ok:
        raise ValidationProblemError("invalid cursor", errors=[
            {"field": "cursor", "reason": "not a cursor this endpoint issued; start without one"}])
    return value[1:]
