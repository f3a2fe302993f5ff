"""What the command API contributes to the shared ops routes (agentlog/edge/ops.py): readiness is
a pool connection within the acquire timeout and a current schema; metrics are its own registry."""

from __future__ import annotations

from fastapi import Request

from eventstore.migrations import ensure_schema_current


async def ready(request: Request) -> None:
    async with request.app.state.pool.acquire() as conn:
        await ensure_schema_current(conn)


async def exposition(request: Request) -> bytes:
    return request.app.state.runner.metrics.exposition()
