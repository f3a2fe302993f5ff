"""Tracing's switch (the standard OTEL_* variables), the GenAI spans of recorded model calls with
and without content capture, the relay's per-trace spans of a batch, and the per-stage latency
summary `agentlog status` prints."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from agentlog import telemetry
from agentlog.cli.latency import summarise
from agentlog.telemetry import spans
from agentlog.telemetry.stages import stage_histogram
from eventstore.events import MessageAdded, ModelCallRecorded, ModelRequest, ModelResponse, ModelUsage

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SERVICE_NAME": "agent", "OTEL_RESOURCE_ATTRIBUTES": "team=a"}, False),
    ],
)
def test_tracing_is_on_only_when_the_otel_variables_ask_for_traces(env, on) -> None:
    assert telemetry.wanted(env) is on


def test_configure_with_tracing_off_stays_off() -> None:
    assert telemetry.configure("agentlog-test", env={}) is telemetry.TRACING.on is False


@pytest.fixture
def exported(monkeypatch) -> InMemorySpanExporter:
    """spans.py's tracer on a provider of this test's own (the global one is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(spans, "_tracer", provider.get_tracer("agentlog"))
    return exporter


def _call(**changes) -> ModelCallRecorded:
    fields = {
        "call_id": "m1",
        "agent": "billing",
        "provider": "openai",
        "model": "gpt-4o",
        "request": ModelRequest(
            system="Be brief.", messages=[{"role": "user", "content": "refund?"}], parameters={"temperature": 0.2}
        ),
        "response": ModelResponse(content="Refund issued.", finish_reason="stop"),
        "usage": ModelUsage(input_tokens=180, output_tokens=20, cached_tokens=120),
        "latency_ms": 700,
    }
    return ModelCallRecorded(**{**fields, **changes})


def test_model_call_span_follows_the_genai_conventions_without_content_by_default(exported, monkeypatch) -> None:
    monkeypatch.setattr(telemetry.TRACING, "capture_content", False)
    spans.model_call_spans([MessageAdded(role="user", content="hi"), _call()], "case-42", 10_000_000_000)
    (span,) = exported.get_finished_spans()
    assert span.name == "chat gpt-4o"
    assert (span.start_time, span.end_time) == (9_300_000_000, 10_000_000_000)  # lasts the call's latency
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.conversation.id": "case-42",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.id": "m1",
        "gen_ai.provider.name": "openai",
        "gen_ai.agent.name": "billing",
        "gen_ai.usage.input_tokens": 180,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.request.temperature": 0.2,
    }


def test_model_call_span_carries_the_messages_when_content_capture_is_on(exported, monkeypatch) -> None:
    monkeypatch.setattr(telemetry.TRACING, "capture_content", True)
    spans.model_call_spans([_call(response=ModelResponse(error="rate limited"))], "case-42", 10_000_000_000)
    (span,) = exported.get_finished_spans()
    assert span.attributes["gen_ai.input.messages"] == '[{"role":"user","content":"refund?"}]'
    assert span.attributes["gen_ai.system_instructions"] == '"Be brief."'
    assert span.attributes["gen_ai.output.messages"] == '[{"role":"assistant","content":null}]'
    assert span.status.status_code.name == "ERROR"


def test_relay_batch_opens_one_span_per_trace_and_the_records_carry_it_on(exported) -> None:
    other = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"
    batch = spans.PublishSpans("agentlog.sessions.v1")
    headers = [batch.header(PARENT, 1), batch.header(PARENT, 2), batch.header(other, 3)]
    batch.end()
    first, second = exported.get_finished_spans()
    assert (first.parent.span_id, second.parent.span_id) == (0xB7AD6B7169203331, 0xC7AD6B7169203331)
    assert first.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert first.attributes["messaging.batch.message_count"] == 2
    assert headers[0] == headers[1] == f"00-{first.context.trace_id:032x}-{first.context.span_id:016x}-01".encode()
    assert headers[2].decode().split("-")[2] == f"{second.context.span_id:016x}"


def test_stage_summary_estimates_quantiles_from_the_buckets() -> None:
    registry = CollectorRegistry()
    stages = stage_histogram(registry)
    for seconds in [0.002] * 50 + [0.02] * 40 + [0.2] * 10:
        stages.labels("append_to_kafka").observe(seconds)
    stages.labels("command")  # a stage with nothing observed is left out
    summary = summarise(generate_latest(registry).decode())
    assert list(summary) == ["append_to_kafka"]
    s = summary["append_to_kafka"]
    assert s["count"] == 100 and s["mean_ms"] == pytest.approx(29.0, abs=0.01)
    assert 1.0 <= s["p50_ms"] <= 2.5 and 10.0 <= s["p90_ms"] <= 25.0 and 100.0 <= s["p99_ms"] <= 250.0


def test_append_span_without_the_exporter_process_is_an_sdk_span(exported) -> None:
    """The console exporter (or no current request span): the append span goes through the SDK."""
    assert spans.export.PROCESS is None
    with spans.append_span("case-42", 3) as traceparent:
        pass
    (span,) = exported.get_finished_spans()
    ids = span.context
    assert traceparent == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}"
    assert span.name == "append" and span.attributes["agentlog.events"] == 3
