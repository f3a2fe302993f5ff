"""What the agents knew at a point of a session, besides its sections and status: the conversation,
tool calls with their arguments and results, approvals with their decisions, model calls.

Invariant: `transcript(events)` is a pure function of a lineage (eventstore/lineage.py) cut at a
version, so `agentlog replay --to-version N` and `GET /state?at_version=N` show exactly what the
first N events say, including what a fork inherited from its source. It is not the decision state
(eventstore/state.py keeps that small, for commands); it is built for reading and may be as large
as the session. Every entry names the session and version that recorded it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventstore import events as ev
from eventstore.context import ContextIndex
from eventstore.envelope import RecordedEvent
from eventstore.registry import decode

PARTS = ("sections", "conversation", "tools", "approvals", "model_calls")
_READ = frozenset(
    cls.TYPE
    for cls in (
        ev.MessageAdded,
        ev.ToolCallRequested,
        ev.ToolCallCompleted,
        ev.ToolCallFailed,
        ev.ApprovalRequested,
        ev.ApprovalDecided,
    )
)


@dataclass
class Transcript:
    conversation: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation": self.conversation,
            "tool_calls": list(self.tool_calls.values()),
            "approvals": list(self.approvals.values()),
            "model_calls": self.model_calls,
        }


def _where(recorded: RecordedEvent) -> dict[str, Any]:
    return {"session_id": recorded.session_id, "version": recorded.version}


def _apply(t: Transcript, recorded: RecordedEvent, e: ev.Event) -> None:
    at = _where(recorded)
    match e:
        case ev.MessageAdded():
            t.conversation.append({**at, "role": e.role, "agent": e.agent, "content": e.content})
        case ev.ToolCallRequested():
            t.tool_calls[e.call_id] = {
                "call_id": e.call_id,
                "tool": e.tool,
                "agent": e.agent,
                "arguments": e.arguments,
                "status": "requested",
                "requested": at,
            }
        case ev.ToolCallCompleted() | ev.ToolCallFailed():
            call = t.tool_calls.setdefault(e.call_id, {"call_id": e.call_id})
            completed = isinstance(e, ev.ToolCallCompleted)
            call["status"] = "completed" if completed else "failed"
            call["result" if completed else "error"] = e.result if isinstance(e, ev.ToolCallCompleted) else e.error
            call["duration_ms"] = e.duration_ms
            call["finished"] = at
        case ev.ApprovalRequested():
            t.approvals[e.approval_id] = {
                "approval_id": e.approval_id,
                "action": e.action,
                "risk": e.risk,
                "requested_by": e.requested_by,
                "expires_at": e.expires_at.isoformat() if e.expires_at else None,
                "details": e.details,
                "status": "pending",
                "requested": at,
            }
        case ev.ApprovalDecided():
            approval = t.approvals.setdefault(e.approval_id, {"approval_id": e.approval_id})
            approval.update(
                status=e.decision,
                reviewer=e.reviewer,
                comment=e.comment,
                decided_at=e.decided_at.isoformat(),
                decided=at,
            )


def transcript(events: Sequence[RecordedEvent]) -> Transcript:
    t = Transcript()
    for recorded in events:
        if recorded.type in _READ:
            _apply(t, recorded, decode(recorded))
    t.model_calls = ContextIndex(events).summaries()
    return t
