"""OpenTelemetry tracing of the four processes, off unless the standard OTEL_* variables turn it on.

Invariant: with tracing off (the default) nothing of OpenTelemetry is imported, no exporter thread
or process starts and no instrumentation is installed; the code on a request's or a batch's path pays one
test of `TRACING.on`. Tracing is on in a process when `configure` found, in its environment,
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER (otlp or
console), unless OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. Then it exports spans
through an exporter child process (agentlog/telemetry/export.py; OTLP over HTTP/protobuf), samples
by OTEL_TRACES_SAMPLER (parent based, always on by default), and installs the aiokafka (and, in the
projector, asyncpg) instrumentations.

A trace crosses the Kafka hop as a W3C traceparent: the command API passes the request's context
to the append, which stores it in the outbox row; the relay continues it in a span per trace of a
batch and sends that span's context in the record headers; the projector continues it
(agentlog/telemetry/spans.py). A database query outside any span (the relay's polling, the
projector's checkpoint reads) is not traced: a root client span is dropped by the sampler.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

SWITCHES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER")


@dataclass
class Tracing:
    """Whether this process traces; set once by `configure` (module state: one process, one SDK)."""

    on: bool = False
    service: str = ""
    capture_content: bool = False


TRACING = Tracing()


class TracingUnavailableError(RuntimeError):
    """Tracing was asked for (OTEL_*) but the `agentlog[otel]` extra is not installed."""


def wanted(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """True when the environment asks for traces (the switch documented in docs/observability.md)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return any(env.get(name, "").strip() for name in SWITCHES)


def configure(
    service: str, *, database_spans: bool = False, env: dict[str, str] | os._Environ[str] = os.environ
) -> bool:
    """Set up tracing for this process if the environment asks for it; returns whether it is on.

    Called by each process's wiring point (both APIs' create_app, the relay, the projector); a
    second call in the same process (tests build several apps) keeps the first set-up.
    `database_spans`: a span per query (the asyncpg instrumentation), for the projector, whose
    apply runs a few queries per batch; the APIs trace one span per request and per append
    instead (docs/observability.md: what a span costs on the command path)."""
    if TRACING.on or not wanted(env):
        return TRACING.on
    try:
        from agentlog.telemetry import sdk
    except ImportError as exc:  # the extra is missing: say so rather than run untraced silently
        raise TracingUnavailableError(
            f"OTEL_* asks for traces but OpenTelemetry is not installed ({exc.name}): pip install 'agentlog[otel]'"
        ) from exc
    sdk.install(env.get("OTEL_SERVICE_NAME") or service, env, database_spans=database_spans)
    TRACING.on, TRACING.service = True, service
    TRACING.capture_content = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() == "true"
    log.info("tracing on: %s exports spans (%s)", service, sdk.describe(env))
    return True


@functools.cache
def fastapi_options() -> dict[str, Any]:
    """Keyword arguments for FastAPI(): its own telemetry (recent FastAPI releases) off. Once a
    tracer provider is set it would add a second server span and spans per dependency, endpoint
    and serialization; agentlog's server span (`instrument_app`) replaces them, at a lower cost."""
    from fastapi import FastAPI

    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def instrument_app(app: Any) -> None:
    """A SERVER span per HTTP request of a FastAPI app, continuing an incoming traceparent; ops
    routes (/healthz, /readyz, /metrics) untraced. Nothing when tracing is off. Added last, so it
    is the outermost layer and the span covers the whole edge (auth, limits, errors)."""
    if TRACING.on:
        from agentlog.telemetry.http import ServerSpans

        app.add_middleware(ServerSpans)
