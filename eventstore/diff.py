"""Differences between two points of history: the state as JSON Pointer paths, and the events,
step-aligned (two versions of one session, or a fork against its source).

Invariant: each side is a lineage (eventstore/lineage.py) cut at its version. A step is a position
in the lineage without fork markers, so a fork's own version k sits at step source_version + k - 1:
next to the source's event it stands in for. The common prefix is the longest run of identical
events (same event id) from step 1; every later step is listed with each side's event there (None
where a side has ended) and `same` when both did the same thing (equal type and payload). The
state diff is `diff_snapshots` of the two folded states without identity and bookkeeping fields,
plus what the agents knew (eventstore/transcript.py: conversation by index, tool calls, approvals
and model calls by id), so it shows what differs (a tool's other result, a decision), not that
two sessions have two names. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventstore.envelope import RecordedEvent
from eventstore.events import SessionForked
from eventstore.history import history_entry
from eventstore.lineage import is_fork_marker
from eventstore.snapshot_diff import SnapshotDiff, diff_snapshots
from eventstore.state import SessionState, fold
from eventstore.transcript import Transcript, transcript

# where an entry of what the agents knew was recorded: the events part of a diff says that
_WHERE = frozenset({"session_id", "version", "recorded_at", "requested", "finished", "decided"})
# identity, and memories kept for "decide again yields nothing" (fingerprints say nothing to a reader)
_NOT_COMPARED = ("format", "session_id", "tenant", "version", "finished_calls", "model_calls", "compactions")


@dataclass(frozen=True, slots=True)
class Side:
    session_id: str
    version: int
    events: Sequence[RecordedEvent] = ()  # the lineage up to `version` (for `diff`)


@dataclass(frozen=True, slots=True)
class StepPair:
    step: int
    left: RecordedEvent | None
    right: RecordedEvent | None

    @property
    def same(self) -> bool:
        a, b = self.left, self.right
        return a is not None and b is not None and (a.type, a.data) == (b.type, b.data)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "same": self.same,
            "left": _entry(self.left),
            "right": _entry(self.right),
        }


@dataclass(frozen=True, slots=True)
class SessionDiff:
    left: Side
    right: Side
    common_steps: int
    state: SnapshotDiff
    steps: list[StepPair]

    def to_json(self) -> dict[str, Any]:
        return {
            "left": {"session_id": self.left.session_id, "version": self.left.version},
            "right": {"session_id": self.right.session_id, "version": self.right.version},
            "common_steps": self.common_steps,
            "state": self.state.to_json(),
            "events": [pair.to_json() for pair in self.steps],
        }


def _entry(event: RecordedEvent | None) -> dict[str, Any] | None:
    return None if event is None else {"session_id": event.session_id, **history_entry(event)}


def steps_of(lineage: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    return [event for i, event in enumerate(lineage) if not is_fork_marker(lineage, i)]


def state_of(lineage: Sequence[RecordedEvent]) -> SessionState:
    """The state of a lineage: the fold of the session's own events (from its SessionForked)."""
    starts = [i for i, event in enumerate(lineage) if event.type == SessionForked.TYPE]
    return fold(lineage[starts[-1] if starts else 0 :])


def comparable(state: SessionState, knowledge: Transcript) -> dict[str, Any]:
    """What a reader compares: objects keyed by id or index, so a path names the entry."""
    view = state_view(state)
    view["conversation"] = {str(i): what(message) for i, message in enumerate(knowledge.conversation)}
    view["tool_calls"] = {call_id: what(call) for call_id, call in knowledge.tool_calls.items()}
    view["approvals"] = {approval_id: what(a) for approval_id, a in knowledge.approvals.items()}
    view["model_calls"] = {call["call_id"]: what(call) for call in knowledge.model_calls}
    return view


def state_view(state: SessionState) -> dict[str, Any]:
    """The decision state's part of `comparable`: the members before what the agents knew."""
    snapshot = state.to_snapshot()
    view = {key: value for key, value in snapshot.items() if key not in _NOT_COMPARED}
    view["decided_approvals"] = dict(snapshot["decided_approvals"])
    return view


def what(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry of what the agents knew as compared: without where it was recorded."""
    return {key: value for key, value in entry.items() if key not in _WHERE}


def _view(lineage: Sequence[RecordedEvent]) -> dict[str, Any]:
    return comparable(state_of(lineage), transcript(lineage))


def diff(left: Side, right: Side) -> SessionDiff:
    left_steps, right_steps = steps_of(left.events), steps_of(right.events)
    common = 0
    for a, b in zip(left_steps, right_steps, strict=False):
        if a.event_id != b.event_id:
            break
        common += 1
    return diff_of(
        left, right, common, left_steps[common:], right_steps[common:], _view(left.events), _view(right.events)
    )


def diff_of(
    left: Side,
    right: Side,
    common: int,
    left_tail: Sequence[RecordedEvent],
    right_tail: Sequence[RecordedEvent],
    left_view: dict[str, Any],
    right_view: dict[str, Any],
) -> SessionDiff:
    """The diff of two sides given their `common` steps, the steps of each after them, and each
    side's `comparable` view: what eventstore/diff_store.py computes without the whole lineage."""
    return SessionDiff(
        left, right, common, diff_snapshots(left_view, right_view), step_pairs(common, left_tail, right_tail)
    )


def step_pairs(common: int, left_tail: Sequence[RecordedEvent], right_tail: Sequence[RecordedEvent]) -> list[StepPair]:
    """The steps after the `common` ones, side by side (None where one side has no such step)."""
    return [
        StepPair(
            common + i + 1,
            left_tail[i] if i < len(left_tail) else None,
            right_tail[i] if i < len(right_tail) else None,
        )
        for i in range(max(len(left_tail), len(right_tail)))
    ]
