"""A session's events as they are projected: GET /v1/sessions/{id}/events, server-sent events.

Invariants: the stream is authenticated like every read (the bearer key in the Authorization
header, never in the URL: the explorer reads it with fetch, not EventSource) and scoped to the
key's tenant (another tenant's session is 404 before any byte is streamed). It sends the
session's timeline entries after `after_version` (or the Last-Event-ID header a reconnecting
client sends), oldest first, one SSE event each with `id:` = the version, so a reconnect resumes
exactly where the client stopped. It is fed by the projector's NOTIFY after each batch commit
(through the process's one LISTEN connection, projections/api/waiting.py): a notification wakes
every stream, each reads its session's new rows with one indexed query; with `follow=false` it ends once
it sent what is projected now (the Python client's `events_after`); with nothing new it sends
a keepalive comment every live_keepalive_s (and re-checks the key, so a revoked key's stream ends
within the key cache TTL after that) and ends after live_max_s (the client reconnects). At most
live_max_streams streams per process; one more is 503 overloaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from agentlog.edge.errors import OverloadedError
from agentlog.edge.keys import Principal
from agentlog.edge.openapi import AUTHENTICATED, operation_id, problems
from eventstore.errors import AgentlogError, SessionNotFoundError, ValidationProblemError
from projections.api.deps import BIGINT_MAX, Reads, SessionId, principal, reads
from projections.read_models import summaries, timeline

PAGE = 200

router = APIRouter(
    prefix="/v1/sessions",
    tags=["live"],
    responses=problems(404, 422, *AUTHENTICATED),
    generate_unique_id_function=operation_id,
)

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events: `event: timeline`, `id:` the version, `data:` one timeline entry "
        "(version, position, type, summary, agent, recorded_at) as JSON; comments as keepalives",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "description": "one server-sent event",
                    "required": ["data"],
                    "properties": {
                        "event": {"type": "string", "enum": ["timeline"]},
                        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the entry's version"},
                        "data": {"type": "string", "description": "the timeline entry as JSON"},
                    },
                }
            }
        },
    }
}


def sse(entry: dict[str, Any]) -> bytes:
    """One timeline entry as a server-sent event (JSON has no raw newline, so `data:` is one line)."""
    return b"id: %d\nevent: timeline\ndata: %s\n\n" % (entry["version"], orjson.dumps(entry))


def resume_from(after_version: int | None, last_event_id: str | None) -> int:
    if after_version is not None:
        return after_version
    if last_event_id is None or last_event_id == "":
        return 0
    if not last_event_id.isdigit() or len(last_event_id) > 19 or int(last_event_id) > BIGINT_MAX:
        raise ValidationProblemError(
            "Last-Event-ID must be a version this stream sent",
            errors=[{"field": "header.last-event-id", "reason": "must be a non-negative integer"}],
        )
    return int(last_event_id)


@router.get("/{session_id}/events", response_model=None, responses=_STREAM_DOC)
async def live_events(
    session_id: SessionId,
    request: Request,
    who: Annotated[Principal, Depends(principal)],
    r: Annotated[Reads, Depends(reads)],
    after_version: Annotated[
        int | None,
        Query(ge=0, le=BIGINT_MAX, description="send the events after this version (default: Last-Event-ID, else 0)"),
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
    follow: Annotated[
        bool, Query(description="false: send what is projected now and end (a catch-up read, the client's)")
    ] = True,
) -> StreamingResponse:
    """The session's timeline entries after a version, then each new one as it is projected."""
    start = resume_from(after_version, last_event_id)
    async with r.pool.acquire() as conn:
        if await summaries.get_session(conn, r.projector, who.tenant, session_id) is None:
            raise SessionNotFoundError(f"no session {session_id}", session_id=session_id)
    settings = r.settings
    if r.waiter.subscribers >= settings.live_max_streams:
        raise OverloadedError(f"{settings.live_max_streams} live streams are open in this process; retry later")
    authorization = request.headers.get("authorization")
    verifier = request.app.state.verifier

    async def stream() -> AsyncIterator[bytes]:
        after = start
        deadline = time.monotonic() + settings.live_max_s
        with r.waiter.subscribe() as woken:
            yield b": live\nretry: 2000\n\n"
            while True:
                woken.clear()  # before the read: a notification from now on means one more read
                async with r.pool.acquire() as conn:
                    rows = await timeline.entries(conn, who.tenant, session_id, after, PAGE)
                for row in rows:
                    entry = dict(row)
                    after = entry["version"]
                    yield sse(entry)
                if len(rows) == PAGE:
                    continue
                if not follow:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(woken.wait(), min(settings.live_keepalive_s, remaining))
                except TimeoutError:
                    try:
                        await verifier.verify(authorization)
                    except AgentlogError:
                        return  # the key was revoked: the stream ends, a reconnect is refused
                    yield b": keepalive\n\n"

    # A lost connection cancels the generator (Starlette watches for the disconnect): the
    # subscription ends with it.
    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
