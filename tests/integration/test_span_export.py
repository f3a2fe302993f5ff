"""The exporter process (agentlog/telemetry/export.py) against a real OTLP/HTTP receiver: spans
arrive as the SDK made them (ids, parent, kind, attributes, events, links, status, resource);
force_flush returns once they are exported; shutdown loses nothing that ended before it; a full
queue drops and goes on. No Postgres or Kafka: a child process and a local HTTP server."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from agentlog.telemetry.export import ExportProcess
from tests.otlp_receiver import OtlpReceiver


def _provider(receiver: OtlpReceiver, **env: str) -> tuple[TracerProvider, ExportProcess]:
    resource = Resource.create({"service.name": "agentlog-test", "team": "a"})
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    processor = ExportProcess(resource, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **env})
    provider.add_span_processor(processor)
    return provider, processor


def test_spans_arrive_as_the_sdk_made_them_and_force_flush_waits_for_the_export() -> None:
    with OtlpReceiver() as receiver:
        provider, processor = _provider(receiver)  # schedule delay 5 s: only the flush sends them
        tracer = provider.get_tracer("agentlog.test", "1.0")
        try:
            with tracer.start_as_current_span("POST /x", kind=SpanKind.SERVER, attributes={"n": 1}) as server:
                server.add_event("retry", {"attempt": 2})
                child = tracer.start_span("append", kind=SpanKind.CLIENT, attributes={"ids": [1, 2], "s": "v"})
                child.set_status(Status(StatusCode.ERROR, "boom"))
                child.end()
                tracer.start_span("apply", links=[Link(child.get_span_context(), {"why": "batch"})]).end()
            assert processor.force_flush(10_000)
            spans = {s.name: s for s in receiver.spans}
        finally:
            provider.shutdown()
    assert set(spans) == {"POST /x", "append", "apply"}
    post, append, apply = spans["POST /x"], spans["append"], spans["apply"]
    context = server.get_span_context()
    assert (post.trace_id, post.span_id, post.parent_span_id) == (
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        "",
    )
    assert post.kind == "server" and post.attributes == {"n": 1} and post.service == "agentlog-test"
    assert append.parent_span_id == post.span_id and append.kind == "client"
    assert append.attributes == {"ids": [1, 2], "s": "v"} and append.status == StatusCode.ERROR.value
    assert apply.links == [(append.trace_id, append.span_id)]
    assert post.start_ns < append.start_ns <= append.end_ns < post.end_ns


def test_shutdown_exports_every_span_that_ended_before_it() -> None:
    with OtlpReceiver(keep=False) as receiver:
        provider, processor = _provider(receiver, OTEL_BSP_MAX_QUEUE_SIZE="100000")
        tracer = provider.get_tracer("agentlog.test")
        for i in range(5000):
            tracer.start_span(f"s{i}").end()
        provider.shutdown()  # no flush before: shutdown alone must deliver them
        assert receiver.received == 5000
        assert processor.force_flush(1000) is False  # after shutdown there is nothing to flush to


def test_a_full_queue_drops_spans_and_the_rest_still_arrive(caplog: pytest.LogCaptureFixture) -> None:
    with OtlpReceiver(keep=False) as receiver:
        provider, _ = _provider(receiver, OTEL_BSP_MAX_QUEUE_SIZE="10", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="10")
        tracer = provider.get_tracer("agentlog.test")
        for i in range(5000):
            tracer.start_span(f"s{i}").end()
        provider.shutdown()
    assert 10 <= receiver.received < 5000  # bounded: what did not fit was dropped, not queued
    assert "spans dropped" in caplog.text


def test_the_append_span_written_as_a_row_arrives_as_a_child_of_the_request_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """spans.append_span under a sampled request span skips the SDK's span objects: the span that
    arrives is what the SDK's would be (parent, kind, attributes, status), its id the traceparent's."""
    from opentelemetry import context, trace

    from agentlog.telemetry import export, spans

    with OtlpReceiver() as receiver:
        provider, processor = _provider(receiver)
        monkeypatch.setattr(export, "PROCESS", processor)
        request = provider.get_tracer("agentlog.http").start_span("POST /v1/sessions", kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(request))
        try:
            with spans.append_span("s-1", 2) as ok:
                pass
            with pytest.raises(ValueError), spans.append_span("s-1", 1) as failed:
                raise ValueError("refused")
        finally:
            context.detach(token)
            request.end()
        try:
            assert processor.force_flush(10_000)
            by_id = {s.span_id: s for s in receiver.spans}
        finally:
            provider.shutdown()
    assert ok is not None and failed is not None
    trace_id, server_id = f"{request.get_span_context().trace_id:032x}", f"{request.get_span_context().span_id:016x}"
    appended, refused = by_id[ok.split("-")[2]], by_id[failed.split("-")[2]]
    assert ok.split("-")[1] == appended.trace_id == trace_id and ok.endswith(
        f"-{int(request.get_span_context().trace_flags):02x}"
    )
    assert (appended.name, appended.kind, appended.parent_span_id) == ("append", "client", server_id)
    assert appended.attributes == {
        "db.operation.name": "agentlog_append",
        "agentlog.session_id": "s-1",
        "agentlog.events": 2,
    }
    assert appended.status == 0 and refused.status == StatusCode.ERROR.value
    assert by_id[server_id].start_ns <= appended.start_ns <= appended.end_ns <= by_id[server_id].end_ns
