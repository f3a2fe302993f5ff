"""Session state sections: an agent changes one section with a JSON merge patch (RFC 7396)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Query, Request
from pydantic import TypeAdapter

from commands import models as cmd
from commands.api.dependencies import ItemId, Runner, SessionId
from commands.api.routes.writes import write_router
from eventstore.ids import ID_MAX_LENGTH, ID_PATTERN

_PATCH_SCHEMA = TypeAdapter(cmd.Patch).json_schema()
router = write_router("/v1/sessions/{session_id}/state", "state")

AgentParam = Annotated[
    str,
    Query(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="the agent making the change (owns the section)"),
]


@router.patch(
    "/{section}",
    openapi_extra={"requestBody": {"content": {"application/merge-patch+json": {"schema": _PATCH_SCHEMA}}}},
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
