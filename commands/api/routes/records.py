"""What a session records as it goes: messages, checkpoints, errors, compensations."""

from __future__ import annotations

from fastapi import Request

from commands import models as cmd
from commands.api.dependencies import Runner, SessionId
from commands.api.routes.writes import write_router

router = write_router("/v1/sessions/{session_id}", "records")


@router.post("/messages")
async def add_message(session_id: SessionId, body: cmd.AddMessage, request: Request, runner: Runner):
    return await runner.run(request, "add_message", session_id, [body])


@router.post("/checkpoints")
async def save_checkpoint(session_id: SessionId, body: cmd.SaveCheckpoint, request: Request, runner: Runner):
    return await runner.run(request, "save_checkpoint", session_id, [body])


@router.post("/errors")
async def record_error(session_id: SessionId, body: cmd.RecordError, request: Request, runner: Runner):
    return await runner.run(request, "record_error", session_id, [body])


@router.post("/compensations")
async def record_compensation(session_id: SessionId, body: cmd.RecordCompensation, request: Request, runner: Runner):
    return await runner.run(request, "record_compensation", session_id, [body])
