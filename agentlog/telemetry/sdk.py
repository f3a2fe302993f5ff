"""The OpenTelemetry SDK of one process: tracer provider, exporter, sampler, instrumentations.

Imported only once tracing is on (agentlog/telemetry/__init__.py), so a process with tracing off
never loads the SDK. Everything here follows the standard OTEL_* variables; what agentlog adds is
the service name default and the rule that a database query outside any span is not traced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes


class UntracedRootQueries(Sampler):
    """The environment's sampler, except that a client span with no parent (a database query
    outside a request, a publish or an apply: polling, heartbeats, start-up) is dropped."""

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"UntracedRootQueries{{{self._delegate.get_description()}}}"


def _processor(env: dict[str, str] | os._Environ[str], resource: Resource) -> SpanProcessor:
    """OTLP: the exporter child process (agentlog/telemetry/export.py); console: the SDK's batch
    processor in this process (a debugging aid, its cost does not matter)."""
    kind = (env.get("OTEL_TRACES_EXPORTER") or "otlp").strip().lower()
    if kind == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())  # queue, size, delay: OTEL_BSP_*
    if kind != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={kind!r}: agentlog exports with 'otlp', 'console' or 'none'")
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise ValueError(f"OTLP protocol {protocol!r}: agentlog[otel] ships the http/protobuf exporter only")
    from agentlog.telemetry import export

    export.PROCESS = export.ExportProcess(resource, env)  # the child's OTLP exporter: OTEL_EXPORTER_OTLP_*
    return export.PROCESS


def describe(env: dict[str, str] | os._Environ[str]) -> str:
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "default"
    return f"exporter {env.get('OTEL_TRACES_EXPORTER') or 'otlp'}, endpoint {endpoint}"


def install(service: str, env: dict[str, str] | os._Environ[str], *, database_spans: bool) -> None:
    """Set the global tracer provider and install the aiokafka instrumentation (and, with
    `database_spans`, the asyncpg one)."""
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

    resource = Resource.create({"service.name": service})
    provider = TracerProvider(
        resource=resource,
        # the query rule only matters where queries are traced (the APIs' path stays one call shorter)
        sampler=UntracedRootQueries(_get_from_env_or_default()) if database_spans else _get_from_env_or_default(),
    )
    provider.add_span_processor(_processor(env, resource))
    trace.set_tracer_provider(provider)
    if database_spans:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().instrument(tracer_provider=provider)
    AIOKafkaInstrumentor().instrument(tracer_provider=provider)
