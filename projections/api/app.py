"""The query API (`agentlog serve queries`, port 8001): a FastAPI app over the read models.

Invariants: the lifespan opens the pool, refuses a schema that is behind, and owns the LISTEN
connection for read-your-writes; every error leaves as application/problem+json from the handlers
of agentlog.edge (bad query parameters are 422 with [{field, reason}], never 500); a read-your-writes wait
that runs out is 504 `projection_behind` with the wanted and current version and a Retry-After.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlog import telemetry
from agentlog.edge import install as edge
from agentlog.edge.keys import KeyVerifier
from agentlog.edge.pool import bound_acquire
from eventstore import db
from eventstore.migrations import ensure_schema_current
from eventstore.settings import Settings
from projections.api import conversation as api_conversation
from projections.api import graph as api_graph
from projections.api import live as api_live
from projections.api import queues as api_queues
from projections.api import sessions as api_sessions
from projections.api import timetravel as api_timetravel
from projections.api import ui as api_ui
from projections.api import usage as api_usage
from projections.api.deps import Reads
from projections.api.waiting import ProjectionWaiter
from projections.read_models.catalog import PROJECTIONS
from projections.settings import QueriesSettings


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "agentlog_queries_request_seconds",
            "query API request latency",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "agentlog_projection_lag_events",
            "records behind the topic end (as last seen by the projector)",
            ["projection"],
            registry=self.registry,
        )
        self.parked = Gauge(
            "agentlog_projection_parked_events", "parked events", ["projection"], registry=self.registry
        )
        self.wait_refreshes = Counter(
            "agentlog_queries_wait_refreshes",
            "read-your-writes refreshes: one version query for all waiting reads",
            registry=self.registry,
        )
        self.waiting = Gauge(
            "agentlog_queries_waiting_reads", "read-your-writes waits registered now", registry=self.registry
        )

    async def refresh(self, reads: Reads) -> None:
        lag = await reads.pool.fetchval(
            "SELECT COALESCE(sum(GREATEST(high_watermark - next_offset, 0)), 0) FROM projection_checkpoints "
            "WHERE group_id = $1",
            reads.projector,
        )
        parked = dict(
            await reads.pool.fetch(
                "SELECT projection, count(*) FROM projection_parked_events WHERE projector = $1 GROUP BY 1",
                reads.projector,
            )
        )
        for projection in PROJECTIONS:
            self.lag.labels(projection.name).set(lag)
            self.parked.labels(projection.name).set(parked.get(projection.name, 0))
        self.waiting.set(reads.waiter.waiting)


def create_app(qs: QueriesSettings, *, shared: Settings) -> FastAPI:
    """The query API app, wired from settings its caller built (`shared` carries the database URL)."""
    settings = shared
    metrics = _Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = bound_acquire(
            await db.create_pool(settings.dsn(), min_size=1, max_size=qs.pool_max_size),
            qs.pool_acquire_timeout_ms / 1000,
        )
        try:
            async with pool.acquire() as conn:
                await ensure_schema_current(conn)
            waiter = ProjectionWaiter(
                settings.dsn(), pool, qs.projector_group, qs.poll_interval_ms / 1000, refreshes=metrics.wait_refreshes
            )
            await waiter.start()
            app.state.reads = Reads(pool, qs.projector_group, waiter, qs)
            app.state.verifier = KeyVerifier(pool, ttl_s=qs.auth_cache_ttl_s)
            try:
                yield
            finally:
                await waiter.close()
        finally:
            await pool.close()

    telemetry.configure("agentlog-queries")
    app = FastAPI(title="agentlog query API", version="1", lifespan=lifespan, **telemetry.fastapi_options())
    app.include_router(api_sessions.router)
    app.include_router(api_queues.router)
    app.include_router(api_timetravel.router)
    app.include_router(api_graph.router)
    app.include_router(api_conversation.router)
    app.include_router(api_usage.router)
    app.include_router(api_live.router)
    app.include_router(api_ui.router(qs))  # the session explorer's page (docs/ui.md)

    async def exposition(request: Request) -> bytes:
        await metrics.refresh(request.app.state.reads)
        return generate_latest(metrics.registry)

    edge.install(
        app,
        max_body_bytes=qs.max_body_bytes,
        ready=_ready,
        exposition=exposition,
        limits=qs,
    )
    app.add_middleware(_TimingMiddleware, latency=metrics.latency)
    telemetry.instrument_app(app)
    return app


async def _ready(request: Request) -> None:
    async with request.app.state.reads.pool.acquire() as conn:
        await ensure_schema_current(conn)


class _TimingMiddleware:
    """Request latency by method, route and status; pure ASGI (a BaseHTTPMiddleware would run
    the app in a separate task and get in the way of the edge's error handling)."""

    def __init__(self, app: ASGIApp, latency: Histogram) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.latency.labels(scope["method"], route, str(status)).observe(time.perf_counter() - started)
