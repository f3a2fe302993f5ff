"""Operations routes shared by both APIs: /healthz, /readyz, /metrics.

Invariant: /readyz is 200 {"status": "ready"} or a 503 problem with a stable code (the
AgentlogError's own, e.g. schema_behind, else infrastructure_unavailable) whose detail never
carries exception text (a driver message may name hosts, users or paths). /metrics is the
Prometheus exposition each app contributes through its `exposition` callable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from agentlog.edge.openapi import operation_id, problems
from agentlog.edge.problems import RETRY_AFTER_S, problem_body, problem_response
from agentlog.edge.responses import FastJSONResponse
from eventstore.errors import AgentlogError

logger = logging.getLogger(__name__)

ReadyCheck = Callable[[Request], Awaitable[None]]
Exposition = Callable[[Request], Awaitable[bytes]]
NOT_READY = "infrastructure_unavailable"


def not_ready_body(exc: BaseException) -> dict:
    if isinstance(exc, AgentlogError):
        return problem_body(503, exc.code, exc.detail)
    return problem_body(503, NOT_READY, f"not ready: {type(exc).__name__}")


def _status(value: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": [value]}},
        "additionalProperties": False,
    }


def ops_router(ready: ReadyCheck, exposition: Exposition) -> APIRouter:
    router = APIRouter(tags=["operations"], generate_unique_id_function=operation_id)

    @router.get(
        "/healthz",
        response_class=FastJSONResponse,
        responses={
            200: {"description": "the process serves", "content": {"application/json": {"schema": _status("ok")}}}
        },
    )
    async def healthz():
        return FastJSONResponse({"status": "ok"})

    @router.get(
        "/readyz",
        response_class=FastJSONResponse,
        responses={
            200: {"description": "ready to serve", "content": {"application/json": {"schema": _status("ready")}}},
            **problems(503),
        },
    )
    async def readyz(request: Request):
        try:
            await ready(request)
        except Exception as exc:
            logger.warning("not ready: %r", exc)  # the text goes to the log, never the answer
            return problem_response(503, not_ready_body(exc), {"Retry-After": RETRY_AFTER_S})
        return FastJSONResponse({"status": "ready"})

    @router.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"description": "Prometheus exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
        },
    )
    async def metrics(request: Request):
        return Response(await exposition(request), media_type=CONTENT_TYPE_LATEST)

    return router
