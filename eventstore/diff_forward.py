"""The diff of two versions of one session, from the fold at the earlier one: what the events
between them touched is all that is compared, so its cost follows what changed, not the session.

Invariant: `diff_forward(...)` equals eventstore/diff.py `diff` of the two lineages, byte for byte
as JSON (the same paths, in the same order), or is None when it cannot follow the events (then the
caller compares the whole views). Between the lower version L and the higher H of one session:
the conversation only grows (entries L..H-1 are new); a tool call, an approval or a model call is
changed only by an event that names it, and a new id goes to the end of its map while the ones it
had keep their order; so every path outside the entries those events name is equal on both sides.
The decision state is small and compared whole. A model call recorded twice under one id (the
summaries of the calls that inherit its tools would change) and a call whose tools come from a
call the log lacks (the summaries cannot be made: the whole comparison raises) are left to the
caller. `READS` must cover every type eventstore/knowledge.py folds (tests/unit/test_diff_forward.py
checks). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eventstore import events as ev
from eventstore.diff import SessionDiff, Side, state_view, step_pairs, what
from eventstore.envelope import RecordedEvent
from eventstore.knowledge import Knowledge
from eventstore.registry import decode
from eventstore.snapshot_diff import SnapshotDiff, pointer, walk
from eventstore.state import SessionState, fold

_ABSENT: Any = object()  # the entry did not exist at the lower version
_TOOLS = frozenset({ev.ToolCallRequested.TYPE, ev.ToolCallCompleted.TYPE, ev.ToolCallFailed.TYPE})
_APPROVALS = frozenset({ev.ApprovalRequested.TYPE, ev.ApprovalDecided.TYPE})
READS = _TOOLS | _APPROVALS | {ev.MessageAdded.TYPE, ev.ModelCallRecorded.TYPE, ev.ContextCompacted.TYPE}


class _Touched:
    """The knowledge carried from the lower version on, keeping what each entry an event names
    was at the lower version (as the diff compares it) before the event changes it."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.conversation = len(knowledge.conversation)
        self.tool_calls: dict[str, Any] = {}
        self.approvals: dict[str, Any] = {}
        self.model_calls: list[str] = []
        self.followed = True

    def add_all(self, events: Sequence[RecordedEvent]) -> None:
        k = self.knowledge
        for recorded in events:
            if recorded.type not in READS:
                continue
            event = decode(recorded)
            if isinstance(event, ev.ModelCallRecorded):
                if event.call_id in k.index.calls or event.call_id in self.model_calls:
                    self.followed = False  # recorded twice: inherited summaries may change
                self.model_calls.append(event.call_id)
            elif isinstance(event, ev.ToolCallRequested | ev.ToolCallCompleted | ev.ToolCallFailed):
                _keep(self.tool_calls, k.tool_calls, event.call_id)
            elif isinstance(event, ev.ApprovalRequested | ev.ApprovalDecided):
                _keep(self.approvals, k.approvals, event.approval_id)
            k.add(recorded, event)


def _keep(touched: dict[str, Any], entries: Mapping[str, dict[str, Any]], key: str) -> None:
    if key not in touched:
        entry = entries.get(key)
        touched[key] = _ABSENT if entry is None else what(entry)


def diff_forward(
    left: Side,
    right: Side,
    common: int,
    left_tail: Sequence[RecordedEvent],
    right_tail: Sequence[RecordedEvent],
    state: SessionState,
    knowledge: Knowledge,
    events: Sequence[RecordedEvent],
) -> SessionDiff | None:
    """The diff of `left` and `right`, two versions of one session, given the fold at the lower
    of the two (`state` and `knowledge`, which is carried on in place) and the session's events
    after it up to the higher; None when the events do something it cannot follow."""
    touched = _Touched(knowledge)
    touched.add_all(events)
    calls = knowledge.index.calls
    if not touched.followed or any(call.tools_origin is None for call in calls.values()):
        return None
    low_left = left.version <= right.version
    out = SnapshotDiff()
    low, high = state_view(state), state_view(fold(events, state) if events else state)
    before, after = (low, high) if low_left else (high, low)
    walk(before, after, "", out)
    new = {str(i): what(knowledge.conversation[i]) for i in range(touched.conversation, len(knowledge.conversation))}
    _walk_new("/conversation", new, low_left, out)
    _walk_touched("/tool_calls", touched.tool_calls, knowledge.tool_calls, low_left, out)
    _walk_touched("/approvals", touched.approvals, knowledge.approvals, low_left, out)
    index = knowledge.index
    summaries = {call_id: what(index.summary(calls[call_id])) for call_id in touched.model_calls}
    _walk_new("/model_calls", summaries, low_left, out)
    return SessionDiff(left, right, common, out, step_pairs(common, left_tail, right_tail))


def _walk_new(path: str, entries: dict[str, Any], low_left: bool, out: SnapshotDiff) -> None:
    """Entries only the higher version has: added, or removed when it is the left side."""
    side = out.added if low_left else out.removed
    for key, value in entries.items():
        side[pointer(path, key)] = value


def _walk_touched(
    path: str, touched: dict[str, Any], current: Mapping[str, dict[str, Any]], low_left: bool, out: SnapshotDiff
) -> None:
    """The touched entries of a map, in the order a walk of the whole map meets them: the ones
    the lower version had (in the map's order), then the new ones (in the order they came)."""
    had = [key for key, value in touched.items() if value is not _ABSENT]
    if len(had) > 1:
        wanted = set(had)
        had = [key for key in current if key in wanted]
    for key in had:
        lower, higher = touched[key], what(current[key])
        before, after = (lower, higher) if low_left else (higher, lower)
        walk(before, after, pointer(path, key), out)
    _walk_new(path, {key: what(current[key]) for key, value in touched.items() if value is _ABSENT}, low_left, out)
