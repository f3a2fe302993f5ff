"""Session state sections: an agent changes one section with a JSON merge patch (RFC 7396)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request

from commands import models as cmd
from commands.api.dependencies import ItemId, Runner, SessionId, require_writer
from eventstore.ids import ID_MAX_LENGTH, ID_PATTERN

router = APIRouter(prefix="/v1/sessions/{session_id}/state", tags=["state"], dependencies=[Depends(require_writer)])

AgentParam = Annotated[
    str,
    Query(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="the agent making the change (owns the section)"),
]


@router.patch(
    "/{section}",
    openapi_extra={"requestBody": {"content": {"application/merge-patch+json": {"schema": {"type": "object"}}}}},
)
async def update_state_section(
    session_id: SessionId,
    section: ItemId,
    agent: AgentParam,
    changes: Annotated[cmd.Patch, Body()],
    request: Request,
    runner: Runner,
):
    """Body: the merge patch (application/merge-patch+json or application/json).

    The body is validated as a Patch here (commands/json_values.py), so a refusal names `body`."""
    command = cmd.UpdateStateSection(agent=agent, section=section, changes=changes)
    return await runner.run(request, "update_state_section", session_id, [command])
