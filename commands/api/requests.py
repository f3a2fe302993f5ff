"""HTTP request bodies of the command API, and how each becomes a command.

Invariant: a body that parses maps to exactly one list of commands (commands/models.py) with the
ids taken from the URL; bodies forbid unknown fields, so a typo is a 422, never silently dropped.
Most endpoints take the command model itself as the body; the models here exist where the URL
carries part of the command or the body has its own shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from commands import models as cmd
from eventstore.events import Decision
from eventstore.ids import Identifier


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StartSessionBody(cmd.StartSession):
    """POST /v1/sessions: the start command plus an optional client-chosen session id."""

    session_id: Identifier | None = None

    def command(self) -> cmd.StartSession:
        return cmd.StartSession(**self.model_dump(exclude={"session_id"}))


class ToolCallCompletedBody(Body):
    status: Literal["completed"]
    result: cmd.Result = None
    duration_ms: cmd.DurationMs | None = None

    def command(self, call_id: str) -> cmd.CompleteToolCall:
        return cmd.CompleteToolCall(call_id=call_id, result=self.result, duration_ms=self.duration_ms)


class ToolCallFailedBody(Body):
    status: Literal["failed"]
    error: cmd.Text
    duration_ms: cmd.DurationMs | None = None
    retriable: bool = False

    def command(self, call_id: str) -> cmd.FailToolCall:
        return cmd.FailToolCall(
            call_id=call_id, error=self.error, duration_ms=self.duration_ms, retriable=self.retriable
        )


ToolResultBody = Annotated[ToolCallCompletedBody | ToolCallFailedBody, Field(discriminator="status")]


class ApprovalDecisionBody(Body):
    decision: Decision
    reviewer: cmd.Name
    comment: cmd.ShortText | None = None

    def command(self, approval_id: str) -> cmd.DecideApproval:
        return cmd.DecideApproval(
            approval_id=approval_id, decision=self.decision, reviewer=self.reviewer, comment=self.comment
        )


def _each_names_its_type(schema: dict[str, Any]) -> None:
    """In a batch, `type` picks the command: required there, though a single-command body may
    leave it out (so the command models' own schemas do not require it)."""
    schema["items"]["required"] = ["type"]


class CommandBatchBody(Body):
    """POST /v1/sessions/{id}/commands: applied in order, atomically (one append or nothing)."""

    commands: list[cmd.AnyCommand] = Field(
        min_length=1,
        max_length=1000,
        description="at most AGENTLOG_COMMANDS_MAX_COMMANDS_PER_REQUEST (default 100) commands",
        json_schema_extra=_each_names_its_type,
    )
