"""`install(app, ...)`: the one call that gives an API the whole HTTP edge.

Invariant: both APIs get the same layers in the same order, outermost first: request id (so every
answer, errors included, carries X-Request-Id), the unexpected-error catch-all, the body limit, the
JSON media-type check, then FastAPI with the shared exception handlers and ops routes.
"""

from __future__ import annotations

from fastapi import FastAPI

from agentlog.edge import problems
from agentlog.edge.body_limit import BodyLimitMiddleware
from agentlog.edge.media_type import JsonMediaTypeMiddleware
from agentlog.edge.ops import Exposition, ReadyCheck, ops_router
from agentlog.edge.request_ids import RequestIdMiddleware

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def install(
    app: FastAPI,
    *,
    max_body_bytes: int,
    ready: ReadyCheck,
    exposition: Exposition,
    bare_locations: tuple[str, ...] = ("body",),
) -> None:
    problems.install(app, bare_locations=bare_locations)
    app.include_router(ops_router(ready, exposition))
    # add_middleware wraps: the last added is the outermost
    app.add_middleware(JsonMediaTypeMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(problems.UnexpectedErrorMiddleware)
    app.add_middleware(RequestIdMiddleware)
