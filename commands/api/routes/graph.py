"""LangGraph threads (agentlog.integrations.langgraph): checkpoints, pending writes, deletion.

A thread is a session; its first checkpoint starts it. Values arrive as the saver serialized them
(JSON as JSON, other values as the serializer's type tag and base64 bytes), so the log keeps
them losslessly. Deleting a thread is an event: the read model hides what came before it.
"""

from __future__ import annotations

from fastapi import Request

from commands import models as cmd
from commands.api.dependencies import Runner, SessionId
from commands.api.routes.writes import write_router

router = write_router("/v1/sessions/{session_id}/graph", "langgraph")


@router.post("/checkpoints")
async def put_graph_checkpoint(session_id: SessionId, body: cmd.PutGraphCheckpoint, request: Request, runner: Runner):
    """A checkpoint of the thread; the first one starts the session."""
    return await runner.run(request, "put_graph_checkpoint", session_id, [body])


@router.post("/writes")
async def put_graph_writes(session_id: SessionId, body: cmd.PutGraphWrites, request: Request, runner: Runner):
    """A task's pending writes, linked to the checkpoint it ran after."""
    return await runner.run(request, "put_graph_writes", session_id, [body])


@router.post("/delete")
async def delete_graph_thread(session_id: SessionId, body: cmd.DeleteGraphThread, request: Request, runner: Runner):
    """Hide the thread's checkpoints and writes until now (no event when there are none)."""
    return await runner.run(request, "delete_graph_thread", session_id, [body])
