"""An OpenAI Agents SDK `Session` on agentlog: the conversation memory of a Runner is an agentlog
session, so every item a run adds is an event, and pops and clears are events too (the log keeps
every item; reads stop showing the removed ones).

    from agents import Runner
    from agentlog.integrations.openai_agents import AgentlogSession

    session = AgentlogSession("case-42", client)          # client: an AsyncAgentlogClient
    await Runner.run(agent, "I was charged twice", session=session)

Invariants:
- The SDK's session id is the agentlog session (ids.py maps an id that is not a valid session
  id); the first add starts it. Items are stored exactly as the SDK gave them (JSON).
- Reads see this session's own writes (read-your-writes), in order, oldest first.
- `pop_item` removes exactly the item it returns: it reads the latest item at a version and pops
  it with If-Match on that version; when anything was written in between (another writer of the
  same conversation) the pop is refused and read again, so two concurrent pops never return the
  same item and never remove one they did not return.
"""

from __future__ import annotations

import contextlib
from typing import Any

from agents.memory.session import SessionABC
from agents.memory.session_settings import SessionSettings, resolve_session_limit

from agentlog.client import AsyncAgentlogClient, ConcurrencyConflictError, NotFoundError
from agentlog.integrations.ids import session_id_for

PREFIX = "oa"
POP_ATTEMPTS = 20


def conversation_session_id(session_id: str) -> str:
    """The agentlog session that holds the SDK session `session_id`."""
    return session_id_for(str(session_id), PREFIX)


class AgentlogSession(SessionABC):
    """The Agents SDK's session protocol (get_items, add_items, pop_item, clear_session) on agentlog.

    `agent` is recorded with the items this session adds; `workflow` names the session it starts;
    `session_settings` as for the SDK's own sessions (a default `limit` for get_items)."""

    def __init__(
        self,
        session_id: str,
        client: AsyncAgentlogClient,
        *,
        agent: str | None = None,
        workflow: str = "openai-agents",
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.agentlog_session_id = conversation_session_id(session_id)
        self.client = client
        self.agent = agent
        self.workflow = workflow
        self.session_settings = session_settings or SessionSettings()

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The items, oldest first; with `limit`, the latest `limit` of them."""
        wanted = resolve_session_limit(limit, self.session_settings)
        if wanted is not None and wanted <= 0:
            return []
        try:
            found = await self.client.conversation_items(self.agentlog_session_id, limit=wanted)
        except NotFoundError:
            return []
        return [entry.item for entry in found.items]

    async def add_items(self, items: list[Any]) -> None:
        if not items:
            return
        await self.client.add_conversation_items(
            self.agentlog_session_id, [dict(item) for item in items], agent=self.agent, workflow=self.workflow
        )

    async def pop_item(self) -> Any | None:
        """Remove the most recent item and return it (None when there is none)."""
        wait_for: int | None = None
        for _ in range(POP_ATTEMPTS):
            try:
                found = await self.client.conversation_items(self.agentlog_session_id, limit=1, min_version=wait_for)
            except NotFoundError:
                return None
            if not found.items:
                return None
            latest = found.items[-1]
            try:
                await self.client.pop_conversation_item(
                    self.agentlog_session_id, latest.index, expected_version=found.version
                )
            except ConcurrencyConflictError as moved:
                wait_for = moved.current_version  # read again once the read model shows it
                continue
            return latest.item
        raise RuntimeError(f"pop_item: the conversation kept changing over {POP_ATTEMPTS} attempts")

    async def clear_session(self) -> None:
        with contextlib.suppress(NotFoundError):  # never written: already clear
            await self.client.clear_conversation(self.agentlog_session_id)
