"""The exporter child of a traced process (agentlog/telemetry/export.py): reads span batches from
its stdin, encodes them (agentlog/telemetry/otlp_proto.py) and sends them with the SDK's OTLP/HTTP
exporter's client, so the endpoint, headers, timeout, compression and retries follow
OTEL_EXPORTER_OTLP_* as usual.

Input: frames of a 4-byte big-endian length and a pickle from the parent: ("resource", attributes,
schema_url) first, then ("spans", [pickled row, ...]) and ("flush", token); a flush is answered with the token
on stdout once everything before it was exported. End of input: export the rest, shut down, exit.
Run as `python -m agentlog.telemetry.exporter_process` by the parent only.
"""

from __future__ import annotations

import logging
import pickle
import signal
import sys
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from agentlog.telemetry import otlp_proto

log = logging.getLogger(__name__)

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
        links=[Link(SpanContext(t, s, remote), a) for t, s, remote, a in links],
        kind=SpanKind(kind),
        status=Status(StatusCode(code), description),
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


def _frames(stream: IO[bytes]) -> Any:
    while len(head := stream.read(4)) == 4:
        yield pickle.loads(stream.read(int.from_bytes(head, "big")))


class RowExporter:
    """The SDK's OTLPSpanExporter (OTEL_EXPORTER_OTLP_*: endpoint, headers, timeout, compression,
    retries), fed bytes from otlp_proto.encode through its HTTP client; should a later SDK release
    lose that client, through its own encoder (ReadableSpans rebuilt from the rows)."""

    def __init__(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        self.sdk = OTLPSpanExporter()
        self._client = getattr(self.sdk, "_client", None)
        self.resource = Resource({})

    def export(self, rows: list[tuple[Any, ...]]) -> None:
        if self._client is None or not hasattr(self._client, "export"):
            self.sdk.export([span(row, self.resource) for row in rows])
            return
        data = otlp_proto.encode(rows, self.resource.attributes, self.resource.schema_url)
        result = self._client.export(data)
        if not getattr(result, "success", True):
            log.warning("OTLP export of %d spans failed: %s", len(rows), getattr(result, "reason", None))


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the group: the parent's shutdown ends the input
    exporter = RowExporter()
    for message in _frames(sys.stdin.buffer):
        if message[0] == "spans":
            exporter.export([pickle.loads(row) for row in message[1]])
        elif message[0] == "flush":
            sys.stdout.write(f"{message[1]}\n")
            sys.stdout.flush()
        elif message[0] == "resource":
            exporter.resource = Resource(message[1], message[2])
    exporter.sdk.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
