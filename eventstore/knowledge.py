"""What the agents knew up to a version, folded one event at a time and stored in parts beside the
fold snapshots, so the transcript views and `agentlog context` start there instead of version 1.

Invariant: `Knowledge.of(lineage)` holds the transcript (eventstore/transcript.py: the
conversation, tool calls with arguments and results, approvals with decisions) and the context
index (eventstore/context.py: messages, model calls, compactions) of the lineage, exactly what the
two gave when built from the whole lineage. It grows with the session, so a snapshot does not
carry all of it: each carries its `part`, what changed since the snapshot before it (entries
added, or touched entries as they now are, which replace the earlier ones in place, keeping their
order), and `from_parts` of a snapshot's chain of parts (each names the version it starts after)
followed by `add` of the events after the last gives the same knowledge as folding from version 1
(tests/unit/test_knowledge.py). Reading it is proportional to what it holds (JSON, no event
decoding), not to the events that made it. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventstore import events as ev
from eventstore.context import INDEXED, ContextIndex, RecordedCall
from eventstore.envelope import RecordedEvent
from eventstore.registry import decode

KNOWLEDGE_FORMAT = 1  # bump when a part's shape changes (eventstore/fold_snapshots.py FOLD_FORMAT)
PARTS = ("sections", "conversation", "tools", "approvals", "model_calls")
_READ = INDEXED | frozenset(
    cls.TYPE
    for cls in (
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


class Knowledge:
    """The transcript and the context index of a lineage, and what changed since the last part."""

    def __init__(self) -> None:
        self.conversation: list[dict[str, Any]] = []
        self.tool_calls: dict[str, dict[str, Any]] = {}
        self.approvals: dict[str, dict[str, Any]] = {}
        self.index = ContextIndex()
        # since the last part: conversation length then, entries touched, calls and compactions added
        self._conversation_mark = 0
        self._tools: dict[str, None] = {}
        self._approvals: dict[str, None] = {}
        self._calls: dict[str, None] = {}
        self._compactions: dict[str, None] = {}

    @classmethod
    def of(cls, events: Iterable[RecordedEvent]) -> Knowledge:
        return cls().add_all(events)

    def add_all(self, events: Iterable[RecordedEvent]) -> Knowledge:
        for recorded in events:
            if recorded.type in _READ:
                self.add(recorded, decode(recorded))
        return self

    def add(self, recorded: RecordedEvent, e: ev.Event) -> None:
        at = _where(recorded)
        match e:
            case ev.MessageAdded():
                self.conversation.append({**at, "role": e.role, "agent": e.agent, "content": e.content})
                self.index.add(recorded, e)
            case ev.ModelCallRecorded():
                self.index.add(recorded, e)
                self._calls[e.call_id] = None
            case ev.ContextCompacted():
                self.index.add(recorded, e)
                self._compactions[e.compaction_id] = None
            case ev.ToolCallRequested():
                self.tool_calls[e.call_id] = {
                    "call_id": e.call_id,
                    "tool": e.tool,
                    "agent": e.agent,
                    "arguments": e.arguments,
                    "status": "requested",
                    "requested": at,
                }
                self._tools[e.call_id] = None
            case ev.ToolCallCompleted() | ev.ToolCallFailed():
                call = self.tool_calls.setdefault(e.call_id, {"call_id": e.call_id})
                completed = isinstance(e, ev.ToolCallCompleted)
                call["status"] = "completed" if completed else "failed"
                call["result" if completed else "error"] = e.result if isinstance(e, ev.ToolCallCompleted) else e.error
                call["duration_ms"] = e.duration_ms
                call["finished"] = at
                self._tools[e.call_id] = None
            case ev.ApprovalRequested():
                self.approvals[e.approval_id] = {
                    "approval_id": e.approval_id,
                    "action": e.action,
                    "risk": e.risk,
                    "requested_by": e.requested_by,
                    "expires_at": e.expires_at.isoformat() if e.expires_at else None,
                    "details": e.details,
                    "status": "pending",
                    "requested": at,
                }
                self._approvals[e.approval_id] = None
            case ev.ApprovalDecided():
                approval = self.approvals.setdefault(e.approval_id, {"approval_id": e.approval_id})
                approval.update(
                    status=e.decision,
                    reviewer=e.reviewer,
                    comment=e.comment,
                    decided_at=e.decided_at.isoformat(),
                    decided=at,
                )
                self._approvals[e.approval_id] = None

    def transcript(self, *, model_calls: bool = True) -> Transcript:
        """The transcript (its entries shared, not copied); without `model_calls` the summaries
        are left out (a view that does not show them)."""
        summaries = self.index.summaries() if model_calls else []
        return Transcript(self.conversation, self.tool_calls, self.approvals, summaries)

    # --- parts -------------------------------------------------------------------------------------

    def part(self, after: int) -> dict[str, Any]:
        """What changed since the last part (which ended at version `after`), as JSON; starts the
        next part. Touched entries are included as they are now (they replace the earlier ones)."""
        index = self.index
        part = {
            "after": after,
            "conversation": self.conversation[self._conversation_mark :],
            "tool_calls": [self.tool_calls[k] for k in self._tools],
            "approvals": [self.approvals[k] for k in self._approvals],
            "calls": [index.calls[k].to_json() for k in self._calls],
            "compactions": [[k, *index.compactions[k]] for k in self._compactions],
        }
        self._conversation_mark = len(self.conversation)
        self._tools, self._approvals, self._calls, self._compactions = {}, {}, {}, {}
        return part

    def merge(self, part: dict[str, Any]) -> None:
        """Apply a part (the next one of a chain) read back from JSON."""
        index = self.index
        for entry in part["conversation"]:
            self.conversation.append(entry)
            index.messages.append({"role": entry["role"], "content": entry["content"]})
        for entry in part["tool_calls"]:
            self.tool_calls[entry["call_id"]] = entry
        for entry in part["approvals"]:
            self.approvals[entry["approval_id"]] = entry
        for item in part["calls"]:
            index.add_call(RecordedCall.from_json(item))
        for compaction_id, replacement, count in part["compactions"]:
            index.add_compaction(compaction_id, [replacement, count])
        self._conversation_mark = len(self.conversation)

    @classmethod
    def from_parts(cls, parts: Sequence[dict[str, Any]]) -> Knowledge:
        """The knowledge a chain of parts (oldest first, the first after version 0) adds up to."""
        knowledge = cls()
        for part in parts:
            knowledge.merge(part)
        return knowledge


def chain(rows: Sequence[tuple[int, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """The longest chain of parts from version 0 among `rows` ((version, part), by version): each
    part starts after the version of the one before. A missing row ends the chain early."""
    parts: list[dict[str, Any]] = []
    previous = 0
    for version, part in rows:
        if part is None or part.get("after") != previous:
            break
        parts.append(part)
        previous = version
    return parts
