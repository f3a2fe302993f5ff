"""OTLP protobuf encoding of span rows (agentlog/telemetry/export.py `row`), written out by hand.

Why: the SDK's encoder builds a protobuf object per span, attribute and value before serialising
them, some 20 µs a span; the exporter process spends most of its CPU there, on a machine it shares
with the command API. This writes the same ExportTraceServiceRequest bytes directly (about a
quarter of that). tests/integration/test_span_export.py checks it against the SDK's encoder: both
parse to equal messages.

Only the fields agentlog's spans carry: ids, trace state, parent, name, kind, times, attributes
(str, bool, int, float, bytes and sequences of them), events, links, status and the span flags
(parent is remote); no dropped counts (agentlog's spans stay under the SDK's limits).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200  # SpanFlags: the parent's is_remote is known / true


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # int64: negative values as their two's complement, 10 bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _field(field: int, payload: bytes) -> bytes:
    """A length-delimited field (bytes, string, message)."""
    return _tag(field, 2) + _varint(len(payload)) + payload


def _text(field: int, text: str) -> bytes:
    return _field(field, text.encode()) if text else b""


def _any(value: Any) -> bytes:
    """An AnyValue message (the oneof is written even when its value is the default)."""
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(1, value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if isinstance(value, Sequence):
        return _field(5, b"".join(_field(1, _any(item)) for item in value))
    return b"" if value is None else _field(1, str(value).encode())


_keys: dict[str, bytes] = {}  # an attribute key's encoded field: the same few keys on every span


def _key(key: str) -> bytes:
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _field(1, key.encode())
        if len(_keys) < 4096:
            _keys[key] = encoded
    return encoded


def _attributes(field: int, attributes: Mapping[str, Any]) -> bytes:
    return b"".join(_field(field, _key(key) + _field(2, _any(value))) for key, value in attributes.items())


def _span(row: tuple[Any, ...]) -> bytes:
    (name, trace_id, span_id, _flags, state, parent_id, parent_remote, kind, start, end, attributes) = row[:11]
    code, description, _scope, events, links = row[11:]
    trace = trace_id.to_bytes(16, "big")
    out = [
        b"\x0a\x10" + trace,
        b"\x12\x08" + span_id.to_bytes(8, "big"),
        _text(3, state),
        b"\x22\x08" + parent_id.to_bytes(8, "big") if parent_id else b"",
        _text(5, name),
        b"\x30" + _varint(kind + 1),  # SDK SpanKind.INTERNAL is 0, OTLP's SPAN_KIND_INTERNAL 1
        b"\x39" + _FIXED64(start),
        b"\x41" + _FIXED64(end),
        _attributes(9, attributes),
    ]
    for event_name, timestamp, event_attributes in events:
        out.append(_field(11, b"\x09" + _FIXED64(timestamp) + _text(2, event_name) + _attributes(3, event_attributes)))
    for link_trace, link_span, link_remote, link_attributes in links:
        body = b"\x0a\x10" + link_trace.to_bytes(16, "big") + b"\x12\x08" + link_span.to_bytes(8, "big")
        flags = HAS_IS_REMOTE | (IS_REMOTE if link_remote else 0)
        out.append(_field(13, body + _attributes(4, link_attributes) + b"\x35" + _FIXED32(flags)))
    out.append(_field(15, _text(2, description or "") + (b"\x18" + _varint(code) if code else b"")))
    out.append(b"\x85\x01" + _FIXED32(HAS_IS_REMOTE | (IS_REMOTE if parent_remote else 0)))  # field 16, fixed32
    return b"".join(out)


def encode(rows: Iterable[tuple[Any, ...]], resource: Mapping[str, Any], schema_url: str = "") -> bytes:
    """One ExportTraceServiceRequest: one ResourceSpans, a ScopeSpans per instrumentation scope."""
    by_scope: dict[tuple[str, str | None, str], list[bytes]] = {}
    for row in rows:
        by_scope.setdefault(row[13], []).append(_field(2, _span(row)))
    scopes = []
    for (name, version, scope_schema), spans in by_scope.items():
        scope = _field(1, _text(1, name) + _text(2, version or ""))
        scopes.append(_field(2, scope + b"".join(spans) + _text(3, scope_schema or "")))
    body = _field(1, _attributes(1, resource)) + b"".join(scopes) + _text(3, schema_url)
    return _field(1, body)
