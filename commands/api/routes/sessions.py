"""Sessions: start, close (complete, fail, cancel), and several commands applied atomically."""

from __future__ import annotations

import uuid

from fastapi import Request

from commands import models as cmd
from commands.api.dependencies import Runner, SessionId
from commands.api.requests import CommandBatchBody, StartSessionBody
from commands.api.routes.writes import write_router
from eventstore.errors import ValidationProblemError

router = write_router("/v1/sessions", "sessions")


@router.post("", status_code=201)
async def start_session(body: StartSessionBody, request: Request, runner: Runner):
    """Start a session; its id is given in the body or generated. 201 with the new version."""
    session_id = body.session_id or f"s-{uuid.uuid4().hex}"
    return await runner.run(request, "start_session", session_id, [body.command()], success_status=201)


@router.post("/{session_id}/complete")
async def complete_session(
    session_id: SessionId, request: Request, runner: Runner, body: cmd.CompleteSession | None = None
):
    return await runner.run(request, "complete_session", session_id, [body or cmd.CompleteSession()])


@router.post("/{session_id}/fail")
async def fail_session(session_id: SessionId, body: cmd.FailSession, request: Request, runner: Runner):
    return await runner.run(request, "fail_session", session_id, [body])


@router.post("/{session_id}/cancel")
async def cancel_session(
    session_id: SessionId, request: Request, runner: Runner, body: cmd.CancelSession | None = None
):
    return await runner.run(request, "cancel_session", session_id, [body or cmd.CancelSession()])


@router.post("/{session_id}/commands")
async def run_commands(session_id: SessionId, body: CommandBatchBody, request: Request, runner: Runner):
    """Several commands in order, all or nothing: one append, one new version."""
    limit = request.app.state.settings.max_commands_per_request
    if len(body.commands) > limit:
        raise ValidationProblemError(
            "too many commands", errors=[{"field": "commands", "reason": f"at most {limit} commands per request"}]
        )
    return await runner.run(request, "commands", session_id, body.commands)
