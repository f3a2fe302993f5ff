"""Framework values as agentlog stores them: JSON as JSON, anything else as the framework
serializer's type tag and bytes (base64).

Invariant: `load(dump(v))` gives back `v`: a value goes as JSON only when it is made of exactly
dict (str keys), list, str, int, float, bool and None, within what every store keeps unchanged
(no NUL or lone surrogate, 64-bit integers, finite floats other than -0.0, nesting at most
MAX_DEPTH), so it comes back equal and of the same types (an object's keys come back in
Postgres jsonb's order); every other value (tuples, subclasses such as enums, bytes, models,
messages) goes through the serializer and comes back as the serializer loads it.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Protocol

from agentlog.client.commands import StoredValue

MAX_DEPTH = 48
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class TypedSerializer(Protocol):
    """LangGraph's SerializerProtocol, as far as values are concerned."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]: ...

    def loads_typed(self, data: tuple[str, bytes]) -> Any: ...


def _plain_string(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_scalar(value: Any) -> bool:
    """A JSON scalar that every store keeps exactly (by exact type: an enum is not a str)."""
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is str:
        return _plain_string(value)
    if kind is int:
        return INT_MIN <= value <= INT_MAX
    if kind is float:
        return math.isfinite(value) and not (value == 0.0 and math.copysign(1.0, value) < 0)
    return False


def is_json(value: Any) -> bool:
    """Whether `value` is JSON that comes back equal and of the same types (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict:
            if depth >= MAX_DEPTH or not all(type(k) is str and _plain_string(k) for k in item):
                return False
            stack.extend((v, depth + 1) for v in item.values())
        elif kind is list:
            if depth >= MAX_DEPTH:
                return False
            stack.extend((v, depth + 1) for v in item)
        elif not is_scalar(item):
            return False
    return True


def dump(serde: TypedSerializer, value: Any, *, json_values: bool = True) -> StoredValue:
    """`value` as a StoredValue: JSON as JSON when `json_values`, else the serializer's bytes."""
    if json_values and is_json(value):
        return StoredValue(kind="json", value=value)
    tag, data = serde.dumps_typed(value)
    if tag == "empty":
        return StoredValue(kind="empty")
    return StoredValue(kind="bytes", type=tag, base64=base64.b64encode(data).decode("ascii"))


class EmptyValue(Exception):
    """A stored value of kind `empty`: the channel has a version but no value."""


def load(serde: TypedSerializer, stored: Any) -> Any:
    """The value a StoredValue (or its JSON form, or the client model) stands for."""
    kind = _field(stored, "kind")
    if kind == "json":
        return _field(stored, "value")
    if kind == "bytes":
        return serde.loads_typed((_field(stored, "type"), base64.b64decode(_field(stored, "base64"))))
    if kind == "empty":
        raise EmptyValue()
    raise ValueError(f"not a stored value: kind {kind!r}")


def _field(stored: Any, name: str) -> Any:
    return stored.get(name) if isinstance(stored, dict) else getattr(stored, name)
