"""`install(app, ...)`: the one call that gives an API the whole HTTP edge.

Invariant: both APIs get the same layers in the same order, outermost first: request id (so every
answer, errors included, carries X-Request-Id), the unexpected-error catch-all, the in-flight bound
(before the body is read; ops routes exempt), the body limit, the JSON media-type check, then
FastAPI with the shared exception handlers and ops routes. The per-key rate limit is checked where
the key is known, in `agentlog.edge.auth.authenticate`, with the limiter installed here.
The OpenAPI document is finished by agentlog.edge.openapi (every answer as it is sent).
"""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI

from agentlog.edge import openapi, problems
from agentlog.edge.body_limit import BodyLimitMiddleware
from agentlog.edge.errors import RateLimitedError
from agentlog.edge.in_flight import InFlightLimitMiddleware
from agentlog.edge.media_type import JsonMediaTypeMiddleware
from agentlog.edge.ops import Exposition, ReadyCheck, ops_router
from agentlog.edge.rate_limit import RateLimiter, TenantRateLimit, rate_limited_response
from agentlog.edge.request_ids import RequestIdMiddleware

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class LimitSettings(Protocol):
    """The backpressure settings both APIs carry (AGENTLOG_COMMANDS_* / AGENTLOG_QUERIES_*)."""

    rate_limit_per_s: float
    rate_limit_burst: int
    rate_limit_by_tenant: dict[str, TenantRateLimit]
    max_in_flight: int


def install(
    app: FastAPI,
    *,
    max_body_bytes: int,
    ready: ReadyCheck,
    exposition: Exposition,
    limits: LimitSettings | None = None,
) -> None:
    problems.install(app)
    openapi.install(app)
    app.add_exception_handler(RateLimitedError, rate_limited_response)
    app.state.rate_limiter = (
        None
        if limits is None
        else RateLimiter.from_settings(limits.rate_limit_per_s, limits.rate_limit_burst, limits.rate_limit_by_tenant)
    )
    ops = ops_router(ready, exposition)
    app.include_router(ops)
    # add_middleware wraps: the last added is the outermost
    app.add_middleware(JsonMediaTypeMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    if limits is not None and limits.max_in_flight:
        app.add_middleware(
            InFlightLimitMiddleware,
            max_in_flight=limits.max_in_flight,
            exempt_paths=[route.path for route in ops.routes],  # type: ignore[attr-defined]
        )
    app.add_middleware(problems.UnexpectedErrorMiddleware)
    app.add_middleware(RequestIdMiddleware)
