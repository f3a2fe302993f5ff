"""Commands as a client sends them: the items of an atomic batch (`run_commands`), and the bodies
of the one-command endpoints, from one definition each.

Invariant: a command serialises to exactly the JSON the command API's models take (the field
names and `type` of the public contract); fields left unset (None) are not sent, so the server's
defaults apply. The client validates nothing itself: the command API is the one judge of a
command, and its refusal (field and reason) comes back as an InvalidRequestError, the same for a
wrong type as for a limit. The type hints serve the type checker.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Literal

Role = Literal["user", "assistant", "system", "tool"]
Risk = Literal["low", "medium", "high", "critical"]
Decision = Literal["approved", "rejected"]


@dataclass(frozen=True, kw_only=True)
class Command:
    type: ClassVar[str]

    def item(self) -> dict[str, Any]:
        """This command as an item of POST /v1/sessions/{id}/commands."""
        return {"type": self.type, **self.body()}

    def body(self) -> dict[str, Any]:
        """This command as the body of its own endpoint (the URL names it, so no `type`)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class StartSession(Command):
    type: ClassVar[str] = "start_session"
    workflow: str | None = None
    title: str | None = None
    agents: list[str] | None = None
    allow_shared_sections: bool | None = None
    metadata: dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    started_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class AddMessage(Command):
    type: ClassVar[str] = "add_message"
    role: Role
    content: str
    agent: str | None = None


@dataclass(frozen=True, kw_only=True)
class RequestToolCall(Command):
    type: ClassVar[str] = "request_tool_call"
    tool: str
    arguments: dict[str, Any] | None = None
    call_id: str | None = None
    agent: str | None = None


@dataclass(frozen=True, kw_only=True)
class CompleteToolCall(Command):
    type: ClassVar[str] = "complete_tool_call"
    call_id: str
    result: Any = None  # JSON null is the API's default too, so leaving it out is the same
    duration_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class FailToolCall(Command):
    type: ClassVar[str] = "fail_tool_call"
    call_id: str
    error: str
    duration_ms: int | None = None
    retriable: bool | None = None


@dataclass(frozen=True, kw_only=True)
class UpdateStateSection(Command):
    """An RFC 7396 merge patch of one section by the agent that owns it."""

    type: ClassVar[str] = "update_state_section"
    agent: str
    section: str
    changes: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class SaveCheckpoint(Command):
    type: ClassVar[str] = "save_checkpoint"
    name: str
    step: int | None = None


@dataclass(frozen=True, kw_only=True)
class RequestApproval(Command):
    type: ClassVar[str] = "request_approval"
    action: str
    requested_by: str
    risk: Risk | None = None
    approval_id: str | None = None
    expires_at: datetime | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class DecideApproval(Command):
    type: ClassVar[str] = "decide_approval"
    approval_id: str
    decision: Decision
    reviewer: str
    comment: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordError(Command):
    type: ClassVar[str] = "record_error"
    message: str
    agent: str | None = None
    kind: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class RecordCompensation(Command):
    type: ClassVar[str] = "record_compensation"
    step: str
    reason: str | None = None
    agent: str | None = None


@dataclass(frozen=True, kw_only=True)
class CompleteSession(Command):
    type: ClassVar[str] = "complete_session"
    outcome: str | None = None
    summary: str | None = None


@dataclass(frozen=True, kw_only=True)
class FailSession(Command):
    type: ClassVar[str] = "fail_session"
    reason: str


@dataclass(frozen=True, kw_only=True)
class CancelSession(Command):
    type: ClassVar[str] = "cancel_session"
    reason: str | None = None
    by: str | None = None
