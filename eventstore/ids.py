"""Identifiers: what a session id (and every other id a client chooses) may look like.

Invariant: an accepted id is 1-128 ASCII characters, starts with a letter or digit, and contains
only letters, digits and `._:@-` — printable, no whitespace, safe in a URL path segment, a Kafka
key, a log line and a Postgres text column. Both APIs and the command models use this one rule,
so an id that was accepted once is accepted everywhere.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

from eventstore.errors import ValidationProblemError

ID_MAX_LENGTH = 128
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
# fullmatch, not match: Python's `$` also matches before a trailing "\n", which would let
# "abc\n" through.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def _check_id(value: str) -> str:
    if _ID_RE.fullmatch(value) is None:
        raise ValueError(
            f"must be 1-{ID_MAX_LENGTH} characters of letters, digits and ._:@-, starting with a letter or digit"
        )
    return value


ID_JSON_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH, "pattern": ID_PATTERN}
"""The rule as JSON Schema, for the OpenAPI documents (the check itself is `_check_id`)."""

Identifier = Annotated[str, AfterValidator(_check_id), WithJsonSchema(ID_JSON_SCHEMA)]
"""A pydantic field type for client-chosen ids (session, call, approval, agent, tool, section)."""


def validate_session_id(value: object, *, field: str = "session_id") -> str:
    """Return `value` if it is a valid session id, else raise ValidationProblemError (422).

    For the APIs, where the id arrives in a URL path rather than inside a pydantic model.
    """
    if is_valid_id(value):
        return value  # type: ignore[return-value]
    raise ValidationProblemError(
        f"{field} is not a valid id",
        errors=[
            {
                "field": field,
                "reason": f"must match {ID_PATTERN} (at most {ID_MAX_LENGTH} characters, printable, no whitespace)",
            }
        ],
    )
