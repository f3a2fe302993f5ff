"""agentlog's OTLP encoder of span rows (agentlog/telemetry/otlp_proto.py) writes what the SDK's
encoder writes: for spans of every shape agentlog makes (server and client spans, a remote parent,
trace state, attributes of each type, events, links, error status, several scopes), both parse to
equal ExportTraceServiceRequest messages."""

from __future__ import annotations

from opentelemetry import context, propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from agentlog.telemetry import otlp_proto
from agentlog.telemetry.export import row
from agentlog.telemetry.exporter_process import span as rebuilt


class Kept(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _spans() -> tuple[list[ReadableSpan], Resource]:
    resource = Resource.create({"service.name": "agentlog-test", "team": "a", "replicas": 2})
    kept = Kept()
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(kept)
    http, app = provider.get_tracer("agentlog.http"), provider.get_tracer("agentlog", "1.2", "https://schema")
    caller = propagate.extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "vendor=x"}
    )
    server = http.start_span("POST /v1/sessions", context=caller, kind=SpanKind.SERVER)
    token = context.attach(trace.set_span_in_context(server))
    append = app.start_span("append", kind=SpanKind.CLIENT, attributes={"agentlog.session_id": "s-1", "n": 0})
    append.set_attributes({"ok": True, "no": False, "ratio": 0.25, "neg": -3, "big": 2**62, "ids": [1, 2, 3]})
    append.set_attribute("names", ("a", "é", ""))
    append.add_event("retry", {"attempt": 2})
    append.set_status(Status(StatusCode.ERROR, "ConcurrencyError"))
    append.end()
    app.start_span(
        "projector apply", links=[Link(append.get_span_context(), {"why": "batch"}), Link(caller_context(caller))]
    ).end()
    context.detach(token)
    server.set_attribute("http.response.status_code", 201)
    server.set_status(Status(StatusCode.OK))
    server.end()
    app.start_span("root", kind=SpanKind.PRODUCER).end()
    return kept.spans, resource


def caller_context(caller: context.Context) -> trace.SpanContext:
    return trace.get_current_span(caller).get_span_context()


def _parse(data: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    return request


def test_rows_encode_to_what_the_sdk_encodes() -> None:
    spans, resource = _spans()
    ours = _parse(otlp_proto.encode([row(s) for s in spans], resource.attributes, resource.schema_url))
    sdk = _parse(encode_spans(spans).SerializeToString())
    assert len(ours.resource_spans[0].scope_spans) == 2
    assert ours == sdk, f"ours:\n{ours}\nsdk:\n{sdk}"


def test_rows_rebuild_into_spans_the_sdk_encodes_alike() -> None:
    """The exporter process's fallback path (an SDK without the HTTP client it feeds)."""
    spans, resource = _spans()
    again = [rebuilt(row(s), resource) for s in spans]
    assert _parse(encode_spans(again).SerializeToString()) == _parse(encode_spans(spans).SerializeToString())


def test_the_exporter_process_sends_these_bytes_through_the_sdk_exporters_client() -> None:
    """The pinned SDK still has the HTTP client the exporter process feeds (else it falls back)."""
    from agentlog.telemetry.exporter_process import RowExporter

    exporter = RowExporter()
    try:
        assert callable(getattr(exporter._client, "export", None))
    finally:
        exporter.sdk.shutdown()
