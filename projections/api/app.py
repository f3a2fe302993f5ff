"""The query API (`agentlog serve queries`, port 8001): a FastAPI app over the read models.

Invariants: the lifespan opens the pool, refuses a schema that is behind, and owns the LISTEN
connection for read-your-writes; every error leaves as application/problem+json from the handlers
here (bad query parameters are 422 with [{field, reason}], never 500); a read-your-writes wait
that runs out is 504 `projection_behind` with the wanted and current version and a Retry-After.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from eventstore import db
from agentlog.edge.keys import KeyVerifier
from eventstore.errors import AgentlogError
from eventstore.migrations import ensure_schema_current
from eventstore.settings import Settings
from projections.api import queues as api_queues
from projections.api import sessions as api_sessions
from projections.api.deps import Reads
from projections.read_models.catalog import PROJECTIONS
from projections.settings import QueriesSettings
from projections.api.waiting import ProjectionWaiter

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def _problem(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("agentlog_queries_request_seconds", "query API request latency",
                                 ["method", "route", "status"], registry=self.registry)
        self.lag = Gauge("agentlog_projection_lag_events", "records behind the topic end (as last "
                         "seen by the projector)", ["projection"], registry=self.registry)
        self.parked = Gauge("agentlog_projection_parked_events", "parked events", ["projection"],
                            registry=self.registry)
        self.wait_refreshes = Counter("agentlog_queries_wait_refreshes", "read-your-writes refreshes: one "
                                      "version query for all waiting reads", registry=self.registry)
        self.waiting = Gauge("agentlog_queries_waiting_reads", "read-your-writes waits registered now",
                             registry=self.registry)

    async def refresh(self, reads: Reads) -> None:
        lag = await reads.pool.fetchval(
            "SELECT COALESCE(sum(GREATEST(high_watermark - next_offset, 0)), 0) FROM projection_checkpoints "
            "WHERE group_id = $1", reads.projector)
        parked = dict(await reads.pool.fetch(
            "SELECT projection, count(*) FROM projection_parked_events WHERE projector = $1 GROUP BY 1",
            reads.projector))
        for projection in PROJECTIONS:
            self.lag.labels(projection.name).set(lag)
            self.parked.labels(projection.name).set(parked.get(projection.name, 0))
        self.waiting.set(reads.waiter.waiting)


def create_app(settings: Settings | None = None, queries_settings: QueriesSettings | None = None) -> FastAPI:
    settings = settings or Settings()
    qs = queries_settings or QueriesSettings()
    metrics = _Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await db.create_pool(settings.dsn(), min_size=1, max_size=qs.pool_max_size)
        try:
            async with pool.acquire() as conn:
                await ensure_schema_current(conn)
            waiter = ProjectionWaiter(settings.dsn(), pool, qs.projector_group, qs.poll_interval_ms / 1000,
                                      refreshes=metrics.wait_refreshes)
            await waiter.start()
            app.state.reads = Reads(pool, qs.projector_group, waiter, qs)
            app.state.verifier = KeyVerifier(pool)
            try:
                yield
            finally:
                await waiter.close()
        finally:
            await pool.close()

    app = FastAPI(title="agentlog query API", version="1", lifespan=lifespan)
    app.include_router(api_sessions.router)
    app.include_router(api_queues.router)
    _install_errors(app)
    _install_ops(app, metrics)
    return app


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(AgentlogError)
    async def agentlog_error(_: Request, exc: AgentlogError):
        headers = {"Retry-After": "1"} if exc.retriable else None
        return _problem(exc.status, exc.problem(), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError):
        errors = [{"field": ".".join(str(part) for part in err["loc"][1:]) or str(err["loc"][0]),
                   "reason": err["msg"]} for err in exc.errors()]
        return _problem(422, {"type": "https://agentlog.dev/problems/invalid_input", "title": "invalid input",
                              "status": 422, "code": "invalid_input", "detail": "invalid request parameters",
                              "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _problem(exc.status_code, {"type": f"https://agentlog.dev/problems/{code}",
                                          "title": code.replace("_", " "), "status": exc.status_code,
                                          "code": code, "detail": str(exc.detail)})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        log.exception("unhandled error in the query API")
        return _problem(500, {"type": "https://agentlog.dev/problems/internal_error", "title": "internal error",
                              "status": 500, "code": "internal_error", "detail": "internal error"})


def _install_ops(app: FastAPI, metrics: _Metrics) -> None:
    @app.middleware("http")
    async def timed(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.latency.labels(request.method, route, str(response.status_code)).observe(
            time.perf_counter() - started)
        return response

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request):
        try:
            async with request.app.state.reads.pool.acquire() as conn:
                await ensure_schema_current(conn)
        except Exception as exc:  # noqa: BLE001 - not ready is an answer, not a crash
            return _problem(503, {"type": "https://agentlog.dev/problems/not_ready", "title": "not ready",
                                  "status": 503, "code": "not_ready", "detail": repr(exc)})
        return {"status": "ready"}

    @app.get("/metrics", tags=["ops"])
    async def prometheus(request: Request) -> Response:
        await metrics.refresh(request.app.state.reads)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
