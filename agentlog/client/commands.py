"""Commands as a client sends them: the items of an atomic batch (`run_commands`), and the bodies
of the one-command endpoints, from one definition each.

Invariant: a command serialises to exactly the JSON the command API's models take (the field
names and `type` of the public contract); fields left unset are not sent, so the server's
defaults and limits apply. The client does not repeat the server's limits: the command API is
the one judge of a command, and its refusal comes back as a typed error (errors.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["user", "assistant", "system", "tool"]
Risk = Literal["low", "medium", "high", "critical"]
Decision = Literal["approved", "rejected"]


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str

    def item(self) -> dict[str, Any]:
        """This command as an item of POST /v1/sessions/{id}/commands."""
        return self.model_dump(mode="json", exclude_none=True)

    def body(self) -> dict[str, Any]:
        """This command as the body of its own endpoint (the URL names it, so no `type`)."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"type"})


class StartSession(Command):
    type: Literal["start_session"] = "start_session"
    workflow: str | None = None
    title: str | None = None
    agents: tuple[str, ...] | None = None
    allow_shared_sections: bool | None = None
    metadata: dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    started_by: str | None = None


class AddMessage(Command):
    type: Literal["add_message"] = "add_message"
    role: Role
    content: str
    agent: str | None = None


class RequestToolCall(Command):
    type: Literal["request_tool_call"] = "request_tool_call"
    tool: str
    arguments: dict[str, Any] | None = None
    call_id: str | None = None
    agent: str | None = None


class CompleteToolCall(Command):
    type: Literal["complete_tool_call"] = "complete_tool_call"
    call_id: str
    result: Any = None
    duration_ms: int | None = None


class FailToolCall(Command):
    type: Literal["fail_tool_call"] = "fail_tool_call"
    call_id: str
    error: str
    duration_ms: int | None = None
    retriable: bool | None = None


class UpdateStateSection(Command):
    """An RFC 7396 merge patch of one section by the agent that owns it."""

    type: Literal["update_state_section"] = "update_state_section"
    agent: str
    section: str
    changes: dict[str, Any]


class SaveCheckpoint(Command):
    type: Literal["save_checkpoint"] = "save_checkpoint"
    name: str
    step: int | None = None


class RequestApproval(Command):
    type: Literal["request_approval"] = "request_approval"
    action: str
    requested_by: str
    risk: Risk | None = None
    approval_id: str | None = None
    expires_at: datetime | None = None
    details: dict[str, Any] | None = None


class DecideApproval(Command):
    type: Literal["decide_approval"] = "decide_approval"
    approval_id: str
    decision: Decision
    reviewer: str
    comment: str | None = None


class RecordError(Command):
    type: Literal["record_error"] = "record_error"
    message: str
    agent: str | None = None
    kind: str | None = None
    details: dict[str, Any] | None = None


class RecordCompensation(Command):
    type: Literal["record_compensation"] = "record_compensation"
    step: str
    reason: str | None = None
    agent: str | None = None


class CompleteSession(Command):
    type: Literal["complete_session"] = "complete_session"
    outcome: str | None = None
    summary: str | None = None


class FailSession(Command):
    type: Literal["fail_session"] = "fail_session"
    reason: str


class CancelSession(Command):
    type: Literal["cancel_session"] = "cancel_session"
    reason: str | None = None
    by: str | None = None
