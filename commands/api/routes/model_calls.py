"""Model calls of a session and the agent's context compactions: what `agentlog context` rebuilds.

A request may reference messages the session already holds instead of repeating them
(eventstore/message_refs.py); the decider refuses a reference that does not resolve (422 naming
the item), so every recorded request can be rebuilt exactly.
"""

from __future__ import annotations

from fastapi import Request

from commands import models as cmd
from commands.api.dependencies import Runner, SessionId
from commands.api.routes.writes import write_router

router = write_router("/v1/sessions/{session_id}", "model calls")


@router.post("/model-calls")
async def record_model_call(session_id: SessionId, body: cmd.RecordModelCall, request: Request, runner: Runner):
    """One model call: request (messages, tools, parameters), response, usage and latency."""
    return await runner.run(request, "record_model_call", session_id, [body])


@router.post("/compactions")
async def compact_context(session_id: SessionId, body: cmd.CompactContext, request: Request, runner: Runner):
    """The agent replaced `replaced` in its context by `replacement` (a summary, or nothing)."""
    return await runner.run(request, "compact_context", session_id, [body])
