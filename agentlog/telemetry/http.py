"""The SERVER span of each HTTP request of both APIs, as a plain ASGI middleware.

Why not opentelemetry-instrumentation-fastapi: measured on this code (docs/observability.md) it
added 0.4-0.6 ms of CPU per request, more than a whole command costs without tracing, which alone
broke the goal of tracing costing under 15% of command throughput. This span carries what that
instrumentation's does for a trace (the route as its name, method, path, status; an incoming W3C
traceparent/tracestate continued) and nothing else. Imported only when tracing is on.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
_tracer = trace.get_tracer("agentlog.http")


class ServerSpans:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode(): value.decode() for name, value in scope["headers"] if name in (b"traceparent", b"tracestate")
        }
        method = scope["method"]
        status = 500

        async def sent(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # start_span and attach by hand: start_as_current_span's context managers cost a third more
        span = _tracer.start_span(method, context=propagate.extract(carrier) if carrier else None, kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, sent)
        finally:
            context.detach(token)
            route = getattr(scope.get("route"), "path", None)
            attributes: dict[str, Any] = {
                "http.request.method": method,
                "url.path": scope["path"],
                "http.response.status_code": status,
            }
            if route is not None:
                span.update_name(f"{method} {route}")
                attributes["http.route"] = route
            span.set_attributes(attributes)  # one call: each takes the span's lock
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
