"""Tool calls of a session: request one, report its result (completed or failed)."""

from __future__ import annotations

from fastapi import Request

from commands import models as cmd
from commands.api.dependencies import ItemId, Runner, SessionId
from commands.api.requests import ToolResultBody
from commands.api.routes.writes import item_link, write_router

router = write_router("/v1/sessions/{session_id}/tool-calls", "tool calls")


@router.post("", responses=item_link("report_tool_result", "call_id"))
async def request_tool_call(session_id: SessionId, body: cmd.RequestToolCall, request: Request, runner: Runner):
    return await runner.run(request, "request_tool_call", session_id, [body])


@router.post("/{call_id}/result")
async def report_tool_result(
    session_id: SessionId, call_id: ItemId, body: ToolResultBody, request: Request, runner: Runner
):
    """The body says `"status": "completed"` (with `result`) or `"failed"` (with `error`)."""
    command = body.command(call_id)
    return await runner.run(request, command.type, session_id, [command])
