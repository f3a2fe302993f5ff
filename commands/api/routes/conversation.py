"""An agent SDK's conversation memory (agentlog.integrations.openai_agents): items added, the
most recent one popped, all cleared. Pop and clear are events: the log keeps every item.

The first add starts the session. A pop names the item the caller read as the most recent; with
If-Match set to the version that read answered, a concurrent add is a 409 instead of a wrong pop.
"""

from __future__ import annotations

from fastapi import Request

from commands import models as cmd
from commands.api.dependencies import Runner, SessionId
from commands.api.routes.writes import write_router

router = write_router("/v1/sessions/{session_id}/conversation", "conversation")


@router.post("/items")
async def add_conversation_items(
    session_id: SessionId, body: cmd.AddConversationItems, request: Request, runner: Runner
):
    """Items as the SDK gave them, numbered on from the session's last item."""
    return await runner.run(request, "add_conversation_items", session_id, [body])


@router.post("/pop")
async def pop_conversation_item(session_id: SessionId, body: cmd.PopConversationItem, request: Request, runner: Runner):
    """Remove the most recent item (no event when there is none)."""
    return await runner.run(request, "pop_conversation_item", session_id, [body])


@router.post("/clear")
async def clear_conversation(session_id: SessionId, body: cmd.ClearConversation, request: Request, runner: Runner):
    """Remove every item (no event when there is none)."""
    return await runner.run(request, "clear_conversation", session_id, [body])
