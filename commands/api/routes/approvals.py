"""Human-in-the-loop approvals: request one, then decide it once, before it expires."""

from __future__ import annotations

from fastapi import Request

from commands import models as cmd
from commands.api.dependencies import ItemId, Runner, SessionId
from commands.api.requests import ApprovalDecisionBody
from commands.api.routes.writes import item_link, write_router

router = write_router("/v1/sessions/{session_id}/approvals", "approvals")


@router.post("", responses=item_link("decide_approval", "approval_id"))
async def request_approval(session_id: SessionId, body: cmd.RequestApproval, request: Request, runner: Runner):
    return await runner.run(request, "request_approval", session_id, [body])


@router.post("/{approval_id}/decision")
async def decide_approval(
    session_id: SessionId, approval_id: ItemId, body: ApprovalDecisionBody, request: Request, runner: Runner
):
    return await runner.run(request, "decide_approval", session_id, [body.command(approval_id)])
