"""Operations: liveness, readiness (a database round trip and a current schema), metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from agentlog.edge.problems import problem_response
from agentlog.edge.responses import FastJSONResponse
from eventstore.errors import AgentlogError, InfrastructureError
from eventstore.migrations import ensure_schema_current

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz():
    return FastJSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request):
    try:
        async with request.app.state.pool.acquire(timeout=2.0) as conn:
            await ensure_schema_current(conn)
    except AgentlogError as exc:
        return problem_response(503, {**exc.problem(), "status": 503})
    except Exception as exc:  # any failure to reach the database means "not ready"
        error = InfrastructureError(f"database unavailable: {type(exc).__name__}")
        return problem_response(503, error.problem())
    return FastJSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request):
    return Response(request.app.state.runner.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
