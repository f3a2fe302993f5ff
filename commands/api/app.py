"""The command API: `create_app(settings)` is its one wiring point.

Invariant: nothing connects at import time; the lifespan opens the pool, refuses to start on a
schema that is behind, and closes the pool on shutdown. Every write route goes through the same
auth, body-size limit, handler and error mapping (commands/api/dependencies.py, agentlog/edge).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from agentlog import telemetry
from agentlog.edge import install as edge
from agentlog.edge.keys import KeyVerifier
from agentlog.edge.pool import bound_acquire
from agentlog.edge.responses import FastJSONResponse
from commands.api.dependencies import CommandRunner
from commands.api.metrics import CommandMetrics
from commands.api.routes import (
    approvals,
    conversation,
    forks,
    graph,
    model_calls,
    ops,
    records,
    sessions,
    state,
    tool_calls,
)
from commands.api.settings import CommandsSettings
from commands.handler import CommandHandler
from commands.state_cache import StateCache
from eventstore import db, outbox_wake
from eventstore.large_reads import prepare_heap_for_serving
from eventstore.migrations import ensure_schema_current
from eventstore.pricing import load_prices
from eventstore.settings import Settings
from eventstore.store import EventStore, group_commit


def create_app(settings: CommandsSettings, *, shared: Settings) -> FastAPI:
    """The command API app, wired from settings its caller built (`shared` carries the database URL)."""
    prices = load_prices(settings.prices_file)  # a bad price file stops the start, not a request

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        size = settings.pool_max_size()
        pool = bound_acquire(
            await db.create_pool(
                shared.dsn(),
                min_size=min(settings.pool_min_size, size),
                max_size=size,
                reset=db.keep_session_state,  # single statements, transaction-scoped locks
                server_settings=outbox_wake.DEFERRED,  # appends commit without the NOTIFY lock
            ),
            settings.pool_acquire_timeout_ms / 1000,
        )
        wake = outbox_wake.OutboxWake(pool)
        batcher = None
        if settings.append_batch_max > 1:
            batcher = group_commit(pool, max_batch=settings.append_batch_max, lanes=settings.append_lanes)
        try:
            async with pool.acquire() as conn:
                await ensure_schema_current(conn)
            app.state.pool = pool
            app.state.verifier = KeyVerifier(pool, ttl_s=settings.auth_cache_ttl_s)
            cache = StateCache(settings.state_cache_bytes) if settings.state_cache_bytes else None
            app.state.runner = CommandRunner(
                handler=CommandHandler(
                    EventStore(pool, wake=wake, batcher=batcher),
                    max_state_bytes=settings.max_state_bytes,
                    prices=prices,
                    cache=cache,
                ),
                verifier=app.state.verifier,
                metrics=CommandMetrics(cache, batcher),
            )
            yield
        finally:
            if batcher is not None:
                await batcher.aclose()
            await wake.aclose()
            await pool.close()

    telemetry.configure("agentlog-commands")
    app = FastAPI(
        title="agentlog command API",
        version="1",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
        **telemetry.fastapi_options(),
    )
    app.state.settings = settings
    for module in (sessions, records, tool_calls, approvals, state, model_calls, forks, graph, conversation):
        app.include_router(module.router)
    edge.install(
        app, max_body_bytes=settings.max_body_bytes, ready=ops.ready, exposition=ops.exposition, limits=settings
    )
    telemetry.instrument_app(app)
    origins = [origin.strip().rstrip("/") for origin in settings.cors_origins.split(",") if origin.strip()]
    if origins:
        # Outermost, so a preflight is answered before auth and the edge's limits. Only the listed
        # origins (the session explorer's), no cookies: the key travels in the Authorization header.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "X-Correlation-Id"],
            expose_headers=["X-Request-Id", "Location", "Retry-After"],
            allow_credentials=False,
            max_age=600,
        )
    return app


def serve(settings: CommandsSettings, *, shared: Settings) -> None:
    """Run the command API with `workers` > 1 processes on one port (`agentlog serve commands`;
    one worker runs in the shell's process main instead).

    uvicorn binds host/port from `settings` here, then starts each worker by importing the
    factory `worker_app`: that factory is the worker process's entry point, so it builds the
    worker's settings from the environment (AGENTLOG_*) itself, as every entry point does.
    """
    import uvicorn

    uvicorn.run(
        "commands.api.app:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=shared.log_level.lower(),
        access_log=False,
    )


def worker_app() -> FastAPI:
    """The entry point of one worker process of `serve`: its settings come from the environment."""
    app = create_app(CommandsSettings(), shared=Settings())
    prepare_heap_for_serving()  # the worker's process main (agentlog/cli/process.py does it for one worker)
    return app
