"""The exporter child of a traced process (agentlog/telemetry/export.py): reads span batches from
its stdin, rebuilds them as SDK spans and exports them with the SDK's OTLP/HTTP exporter, so the
endpoint, headers, timeout, compression and retries follow OTEL_EXPORTER_OTLP_* as usual.

Input: frames of a 4-byte big-endian length and a pickle from the parent: ("resource", attributes,
schema_url) first, then ("spans", rows) and ("flush", token); a flush is answered with the token
on stdout once everything before it was exported. End of input: export the rest, shut down, exit.
Run as `python -m agentlog.telemetry.exporter_process` by the parent only.
"""

from __future__ import annotations

import pickle
import signal
import sys
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

_scopes: dict[tuple[str, str | None, str], InstrumentationScope] = {}
_flags = {0: TraceFlags(0), 1: TraceFlags(1)}


def span(row: tuple[Any, ...], resource: Resource) -> ReadableSpan:
    """The inverse of export.row."""
    (name, trace_id, span_id, flags, state, parent_id, parent_remote, kind, start, end, attributes) = row[:11]
    code, description, scope_key, events, links = row[11:]
    trace_flags = _flags.get(flags) or TraceFlags(flags)
    scope = _scopes.get(scope_key)
    if scope is None:
        scope = _scopes[scope_key] = InstrumentationScope(*scope_key)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, False, trace_flags, TraceState.from_header([state]) if state else None),
        parent=SpanContext(trace_id, parent_id, parent_remote, trace_flags) if parent_id else None,
        resource=resource,
        attributes=attributes,
        events=[Event(n, a, t) for n, t, a in events],
        links=[Link(SpanContext(t, s, False), a) for t, s, a in links],
        kind=SpanKind(kind),
        status=Status(StatusCode(code), description),
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


def _frames(stream: IO[bytes]) -> Any:
    while len(head := stream.read(4)) == 4:
        yield pickle.loads(stream.read(int.from_bytes(head, "big")))


def main() -> int:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the group: the parent's shutdown ends the input

    exporter = OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*
    resource = Resource({})
    for message in _frames(sys.stdin.buffer):
        if message[0] == "spans":
            exporter.export([span(row, resource) for row in message[1]])
        elif message[0] == "flush":
            sys.stdout.write(f"{message[1]}\n")
            sys.stdout.flush()
        elif message[0] == "resource":
            resource = Resource(message[1], message[2])
    exporter.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
