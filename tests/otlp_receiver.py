"""A small OTLP/HTTP trace receiver for tests and the tracing benchmark: POST /v1/traces with an
ExportTraceServiceRequest (protobuf, as opentelemetry-exporter-otlp-proto-http sends it), kept
as plain span records; `render` draws one trace as a text tree (docs/observability.md).

It runs in a thread of the test process on a port the OS picked; every export is answered 200
with an empty ExportTraceServiceResponse.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace_id, span_id)
    status: int = 0


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=resource.get("service.name", ""),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        status=span.status.code,
                    )
                )
    return spans


def count(body: bytes) -> int:
    """The number of spans in an export, parsed but not turned into records (the benchmark's
    receiver shares the machine with the command API it measures: it should cost little)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)


class OtlpReceiver:
    """`with OtlpReceiver() as receiver:` serves on receiver.endpoint until the block ends."""

    def __init__(self, *, keep: bool = True) -> None:
        """`keep=False` (the benchmark): parse and count the spans, keep none."""
        self.spans: list[ReceivedSpan] = []
        self.requests = self.received = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                traces = self.path == "/v1/traces"
                spans = decode(body) if traces and keep else []
                received = len(spans) if keep else count(body) if traces else 0
                with receiver._lock:
                    receiver.spans.extend(spans)
                    receiver.received += received
                    receiver.requests += 1
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def count(self) -> int:
        with self._lock:
            return len(self.spans)


SHOWN = (
    "http.route",
    "http.response.status_code",
    "db.statement",
    "db.query.text",
    "messaging.destination.name",
    "messaging.batch.message_count",
    "gen_ai.operation.name",
    "gen_ai.conversation.id",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
)


def render(spans: list[ReceivedSpan], *, caller: str | None = None) -> str:
    """One trace as an indented tree: offset from the trace's first span, duration, service, name,
    kind and a few attributes. `caller` names the span id of a parent outside the trace's spans."""
    if not spans:
        return "(no spans)"
    origin = min(s.start_ns for s in spans)
    ids = {s.span_id for s in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in ids else ""
        children.setdefault(parent, []).append(span)
    lines = []
    if caller:
        lines.append(f"(caller's span {caller}, outside agentlog)")

    def walk(parent: str, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s.start_ns, s.name)):
            attrs = ", ".join(f"{k}={_short(span.attributes[k])}" for k in SHOWN if k in span.attributes)
            lines.append(
                f"{(span.start_ns - origin) / 1e6:8.1f} ms {(span.end_ns - span.start_ns) / 1e6:7.1f} ms  "
                f"{'  ' * depth}{span.service}: {span.name} [{span.kind}]" + (f"  {attrs}" if attrs else "")
            )
            walk(span.span_id, depth + 1)

    walk("", 1 if caller else 0)
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = str(value).replace("\n", " ")
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."
