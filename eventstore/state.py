"""A session's state and the one fold that computes it: evolve(state, event) -> state.

Invariant: the state at version N is `fold(first N events)` and nothing else. The command side,
the replay CLI, forks and the tests all use this fold, so they agree on what a session is at any
version. evolve is pure and total: it never checks rules (deciders do, before events exist) and
never refuses an event already in the log. A SessionState is never mutated; evolve copies what it
changes, so an old state stays valid after a newer one was derived from it. `fold` alone, whose
intermediate states never escape, copies the bounded memories and each section it patches once
and then changes its own copies in place, so a long fold is linear in its events; the state it
returns holds plain dicts nobody else has.

The state is small and JSON-serialisable (`to_snapshot` / `from_snapshot`) because the store keeps
it per stream: loading a session for a command reads one row, however long the session is. Only
`sections` grows with the data itself; it holds the current value of each section because that is
exactly what the rules, replay and forks need. Memory of finished calls and decided approvals (for
"decide again yields no events") keeps the latest MAX_REMEMBERED of each; so does the memory of
model calls and context compactions (id -> how many messages it stands for, and a fingerprint of
its payload), which lets the decider check a request's references without reading the log.
Snapshots written before model calls (or agent frameworks' records) existed lack those keys and
read as empty memories, which is exactly what they were.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.errors import SnapshotIncompatibleError, UnknownEventTypeError
from eventstore.merge_patch import apply_merge_patch, merge_patch_in_place
from eventstore.message_refs import items_count
from eventstore.registry import decode

Status = Literal["none", "open", "completed", "failed", "cancelled"]
CLOSED_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
# The stored snapshot's shape (to_snapshot(compact=True)); bump when it changes. from_snapshot reads
# this one and VIEW_FORMAT (the stored shape before format 2); a stream row of any other number is
# refolded from the log (EventStore.load_for_write), and fold snapshots carry it in FOLD_FORMAT.
SNAPSHOT_FORMAT = 2
# to_snapshot()'s shape: what people and tools see (replay steps, the query API's /state, diffs)
# and what a SessionForked event carries; ordered memories as lists of pairs (or triples). It was
# the stored shape too until format 2 stored them as columns: 2,000 short lists to build for a
# session's full memories were half the time of reading a snapshot back (issue 11).
VIEW_FORMAT = 1
MAX_REMEMBERED = 1000


@dataclass(frozen=True, slots=True)
class Counts:
    messages: int = 0
    tool_calls: int = 0  # calls requested
    errors: int = 0  # ErrorRecorded events (tool failures are counted by the tool-call read model)
    model_calls: int = 0


@dataclass(frozen=True)
class SessionState:
    session_id: str = ""
    tenant: str = ""
    version: int = 0
    status: Status = "none"
    workflow: str | None = None
    agents: tuple[str, ...] = ()
    allow_shared_sections: bool = False
    open_calls: Mapping[str, str] = field(default_factory=dict)  # call_id -> tool
    # call_id -> outcome fingerprint, oldest first (see call_outcome_fingerprint)
    finished_calls: Mapping[str, str] = field(default_factory=dict)
    pending_approvals: Mapping[str, str | None] = field(default_factory=dict)  # id -> expires iso
    # id -> "approved" | "rejected", oldest first: the decision, not just the id, so a repeated
    # identical decision is recognised as already applied
    decided_approvals: Mapping[str, str] = field(default_factory=dict)
    section_owners: Mapping[str, str] = field(default_factory=dict)  # section -> first writer
    sections: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    last_checkpoint: Mapping[str, Any] | None = None  # {"name", "step", "version"}
    counts: Counts = Counts()
    forked_from: Mapping[str, Any] | None = None  # {"session_id", "version"}
    # call id -> (messages its request stands for, payload fingerprint), oldest first
    model_calls: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    # compaction id -> (messages its replacement stands for, payload fingerprint), oldest first
    compactions: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    # an agent SDK's conversation memory: items ever added (the next item's index), items not
    # popped or cleared (a pop or clear of nothing yields no event)
    conversation_added: int = 0
    conversation_live: int = 0
    # a LangGraph thread: whether it has checkpoints or writes not hidden by a deletion (deleting
    # a thread with none yields no event); the checkpoints themselves live in their read model
    graph_live: bool = False
    # a budget set at start: {"max_tokens", "max_cost_usd", "tokens", "cost_usd", "exceeded"},
    # what this session's own model calls spent (a fork starts at zero), None without a budget
    budget: Mapping[str, Any] | None = None

    @classmethod
    def new(cls, session_id: str, tenant: str) -> SessionState:
        """The state of a stream with no events (status "none")."""
        return cls(session_id=session_id, tenant=tenant)

    @property
    def exists(self) -> bool:
        return self.status != "none"

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    def to_snapshot(self, *, share: bool = False, compact: bool = False) -> dict[str, Any]:
        """A plain JSON dict; ordered memories are lists (of pairs, or columns when compact) because
        jsonb reorders an object's keys.

        `share=True` leaves the section values shared with this state instead of deep-copied: for
        a caller that only serialises the snapshot (the command handler's append). The state never
        changes a section in place (fold replaces it), so sharing is safe unless the caller mutates.
        `compact=True` gives the stored shape (SNAPSHOT_FORMAT): each ordered memory as columns,
        {"ids": [...], "values": [...]} (model calls and compactions: "counts" and
        "fingerprints"), which decodes without a list per entry."""
        if compact:
            memories: dict[str, Any] = {
                "format": SNAPSHOT_FORMAT,
                "finished_calls": _columns(self.finished_calls),
                "decided_approvals": _columns(self.decided_approvals),
                "model_calls": _counted_columns(self.model_calls),
                "compactions": _counted_columns(self.compactions),
            }
        else:
            memories = {
                "format": VIEW_FORMAT,
                "finished_calls": [list(pair) for pair in self.finished_calls.items()],
                "decided_approvals": [list(pair) for pair in self.decided_approvals.items()],
                "model_calls": [[call_id, n, fp] for call_id, (n, fp) in self.model_calls.items()],
                "compactions": [[c_id, n, fp] for c_id, (n, fp) in self.compactions.items()],
            }
        return {
            "format": memories["format"],
            "session_id": self.session_id,
            "tenant": self.tenant,
            "version": self.version,
            "status": self.status,
            "workflow": self.workflow,
            "agents": list(self.agents),
            "allow_shared_sections": self.allow_shared_sections,
            "open_calls": dict(self.open_calls),
            "finished_calls": memories["finished_calls"],
            "pending_approvals": dict(self.pending_approvals),
            "decided_approvals": memories["decided_approvals"],
            "section_owners": dict(self.section_owners),
            "sections": dict(self.sections) if share else copy.deepcopy(dict(self.sections)),
            "last_checkpoint": dict(self.last_checkpoint) if self.last_checkpoint else None,
            "counts": asdict(self.counts),
            "forked_from": dict(self.forked_from) if self.forked_from else None,
            "model_calls": memories["model_calls"],
            "compactions": memories["compactions"],
            "conversation_memory": [self.conversation_added, self.conversation_live],
            "graph_live": self.graph_live,
            "budget": dict(self.budget) if self.budget is not None else None,
        }

    @classmethod
    def from_snapshot(cls, snap: Mapping[str, Any], *, share: bool = False) -> SessionState:
        """The state a snapshot holds, of either shape (SNAPSHOT_FORMAT or VIEW_FORMAT).
        `share=True` keeps the snapshot's section values instead of deep copies: for a snapshot no
        one else holds (one just decoded from the database)."""
        shape = snap.get("format")
        if shape == SNAPSHOT_FORMAT:
            finished, decided = _from_columns(snap["finished_calls"]), _from_columns(snap["decided_approvals"])
            model_calls, compactions = _from_counted(snap["model_calls"]), _from_counted(snap["compactions"])
        elif shape == VIEW_FORMAT:
            finished, decided = dict(snap["finished_calls"]), dict(snap["decided_approvals"])  # pairs, oldest first
            model_calls = {call_id: (n, fp) for call_id, n, fp in snap.get("model_calls", ())}
            compactions = {c_id: (n, fp) for c_id, n, fp in snap.get("compactions", ())}
        else:
            raise SnapshotIncompatibleError(f"snapshot format {shape!r}, expected {SNAPSHOT_FORMAT} (or {VIEW_FORMAT})")
        return cls(
            session_id=snap["session_id"],
            tenant=snap["tenant"],
            version=snap["version"],
            status=snap["status"],
            workflow=snap["workflow"],
            agents=tuple(snap["agents"]),
            allow_shared_sections=snap["allow_shared_sections"],
            open_calls=dict(snap["open_calls"]),
            finished_calls=finished,
            pending_approvals=dict(snap["pending_approvals"]),
            decided_approvals=decided,
            section_owners=dict(snap["section_owners"]),
            sections=dict(snap["sections"]) if share else copy.deepcopy(dict(snap["sections"])),
            last_checkpoint=snap["last_checkpoint"],
            counts=Counts(**snap["counts"]),
            forked_from=snap["forked_from"],
            model_calls=model_calls,
            compactions=compactions,
            conversation_added=snap.get("conversation_memory", (0, 0))[0],
            conversation_live=snap.get("conversation_memory", (0, 0))[1],
            graph_live=snap.get("graph_live", False),
            budget=snap.get("budget"),
        )


def _columns(memory: Mapping[str, str]) -> dict[str, list[str]]:
    return {"ids": list(memory), "values": list(memory.values())}


def _counted_columns(memory: Mapping[str, tuple[int, str]]) -> dict[str, list[Any]]:
    return {
        "ids": list(memory),
        "counts": [n for n, _ in memory.values()],
        "fingerprints": [fp for _, fp in memory.values()],
    }


def _from_columns(columns: Mapping[str, list[str]]) -> dict[str, str]:
    return dict(zip(columns["ids"], columns["values"], strict=True))


def _from_counted(columns: Mapping[str, list[Any]]) -> dict[str, tuple[int, str]]:
    return dict(zip(columns["ids"], zip(columns["counts"], columns["fingerprints"], strict=True), strict=True))


def call_outcome_fingerprint(outcome: Literal["completed", "failed"], value: Any) -> str:
    """A short digest of how a call ended, so a repeated result is recognised without storing it."""
    blob = orjson.dumps({"outcome": outcome, "value": value}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:32]


def payload_fingerprint(event: ev.Event) -> str:
    """A short digest of an event's payload, so a repeated model call or compaction is recognised
    without keeping it in the state."""
    derived = getattr(event, "DERIVED", None)  # filled in by the decider (a model call's cost)
    blob = orjson.dumps(event.model_dump(mode="json", exclude=derived), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:32]


class MessageCounts(Mapping[str, int]):
    """A read-only view id -> message count of a (count, fingerprint) memory, for message_refs."""

    def __init__(self, memory: Mapping[str, tuple[int, str]]) -> None:
        self._memory = memory

    def __getitem__(self, key: str) -> int:
        return self._memory[key][0]

    def get(self, key: str, default: Any = None) -> Any:  # Mapping.get goes through a KeyError
        found = self._memory.get(key)
        return default if found is None else found[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._memory)

    def __len__(self) -> int:
        return len(self._memory)


def request_size(state: SessionState, items: list[dict[str, Any]]) -> int:
    """How many messages `items` stand for in `state` (references resolved by count only)."""
    return items_count(items, MessageCounts(state.model_calls), MessageCounts(state.compactions))


def evolve(state: SessionState, event: ev.Event | RecordedEvent) -> SessionState:
    """The state after one more event: a decided event model, or a stored row / Kafka record."""
    if isinstance(event, RecordedEvent):
        # A recorded event knows its own version and stream, so replays from the store or Kafka
        # need no separately built initial state.
        if not (state.session_id and state.tenant):
            state = _changed(
                state, session_id=state.session_id or event.session_id, tenant=state.tenant or event.tenant
            )
        return _changed(_apply(state, decode(event)), version=event.version)
    return _changed(_apply(state, event), version=state.version + 1)


def fold(
    events: Iterable[ev.Event | RecordedEvent],
    initial: SessionState | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    owned: bool = False,
) -> SessionState:
    """The state after `events`, from `initial` (default: no events); `progress(version)` after each.

    Linear in the events: the bounded memories (up to MAX_REMEMBERED entries each) are updated
    in place inside one fold, where no intermediate state escapes, instead of copied per event
    as evolve alone must; the state returned owns plain copies, so it is as immutable as any.
    With `owned`, `initial` is a state no one else holds (just read from a snapshot, with its
    sections kept: SessionState.from_snapshot(share=True)) and is used up: the fold changes its
    memories and sections in place instead of copying them first.
    """
    state = initial if initial is not None else SessionState()
    mine: dict[Any, Any] = {}
    if owned and initial is not None:
        for value in (*(getattr(initial, name) for name in _MEMORIES), *initial.sections.values()):
            mine[id(value)] = value
    token = _TRANSIENT.set(mine)
    try:
        for event in events:
            state = mine[_CARRIED] = evolve(state, event)  # a new state, or the carried one changed
            if progress is not None:
                progress(state.version)
    finally:
        _TRANSIENT.reset(token)
    return state


# Inside a fold: the maps it owns (copies it made, or an owned initial state's), by id; holding
# them keeps their ids from being reused by other objects while the fold runs; and under
# _CARRIED the state it carries, which it made (never the initial state).
_TRANSIENT: ContextVar[dict[Any, Any] | None] = ContextVar("agentlog_fold_owned", default=None)
_CARRIED = "carried"  # not an id
_MEMORIES = ("finished_calls", "decided_approvals", "model_calls", "compactions")


def _owned(mine: dict[Any, Any], value: Any) -> bool:
    return mine.get(id(value)) is value


def _adopt(mine: dict[Any, Any], value: dict[str, Any]) -> dict[str, Any]:
    mine[id(value)] = value
    return value


def _changed(state: SessionState, **changes: Any) -> SessionState:
    """dataclasses.replace for SessionState, without re-running __init__ over its twenty fields:
    the fold calls it once or twice per event, and _changed() was most of a fold's time.

    Inside a fold, the state the fold carries (one it made: its intermediate states never
    escape) is changed in place: one copy per fold, not one or two per event."""
    mine = _TRANSIENT.get()
    carried: SessionState | None = mine.get(_CARRIED) if mine is not None else None
    if carried is state:
        state.__dict__.update(changes)
        return state
    new = object.__new__(SessionState)
    new.__dict__.update(state.__dict__)
    new.__dict__.update(changes)
    return new


def _apply(state: SessionState, event: ev.Event) -> SessionState:
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise UnknownEventTypeError(f"no fold for {type(event).__name__}")
    return handler(state, event)


def _with(mapping: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**mapping, key: value}


def _without(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _remember(mapping: Mapping[str, Any], key: str, value: Any) -> Mapping[str, Any]:
    """Add as newest; forget the oldest beyond MAX_REMEMBERED so the state stays bounded.

    Inside a fold (`_TRANSIENT` set) the map is the fold's own copy, changed in place: the state
    it came from is never looked at again. Outside one, a copy, as for every change."""
    mine = _TRANSIENT.get()
    if mine is None:
        updated = {**_without(mapping, key), key: value}
        while len(updated) > MAX_REMEMBERED:
            del updated[next(iter(updated))]
        return updated
    memory = mapping if _owned(mine, mapping) else _adopt(mine, dict(mapping))
    assert isinstance(memory, dict)
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > MAX_REMEMBERED:
        del memory[next(iter(memory))]  # the oldest: a dict keeps insertion order
    return memory


def _started(s: SessionState, e: ev.SessionStarted) -> SessionState:
    return _changed(
        s,
        status="open",
        workflow=e.workflow,
        agents=tuple(e.agents),
        allow_shared_sections=e.allow_shared_sections,
        budget=_budget(e.budget.max_tokens, e.budget.max_cost_usd) if e.budget is not None else None,
    )


def _budget(max_tokens: int | None, max_cost_usd: float | None) -> dict[str, Any]:
    return {"max_tokens": max_tokens, "max_cost_usd": max_cost_usd, "tokens": 0, "cost_usd": 0.0, "exceeded": False}


def spent_after(budget: Mapping[str, Any], e: ev.ModelCallRecorded) -> dict[str, Any]:
    """The budget memory after one more model call: its input and output tokens and its cost."""
    tokens = (e.usage.input_tokens or 0) + (e.usage.output_tokens or 0)
    cost = e.cost.usd if e.cost is not None else 0.0
    return {**budget, "tokens": budget["tokens"] + tokens, "cost_usd": round(budget["cost_usd"] + cost, 9)}


def _counted(c: Counts, messages: int = 0, tool_calls: int = 0, errors: int = 0, model_calls: int = 0) -> Counts:
    """`c` plus the given counts (dataclasses.replace was a tenth of a fold's time)."""
    return Counts(c.messages + messages, c.tool_calls + tool_calls, c.errors + errors, c.model_calls + model_calls)


def _message(s: SessionState, e: ev.MessageAdded) -> SessionState:
    return _changed(s, counts=_counted(s.counts, messages=1))


def _call_requested(s: SessionState, e: ev.ToolCallRequested) -> SessionState:
    return _changed(
        s,
        open_calls=_with(s.open_calls, e.call_id, e.tool),
        counts=_counted(s.counts, tool_calls=1),
    )


def _call_completed(s: SessionState, e: ev.ToolCallCompleted) -> SessionState:
    return _finish_call(s, e.call_id, call_outcome_fingerprint("completed", e.result))


def _call_failed(s: SessionState, e: ev.ToolCallFailed) -> SessionState:
    return _finish_call(s, e.call_id, call_outcome_fingerprint("failed", e.error))


def _finish_call(s: SessionState, call_id: str, fingerprint: str) -> SessionState:
    return _changed(
        s,
        open_calls=_without(s.open_calls, call_id),
        finished_calls=_remember(s.finished_calls, call_id, fingerprint),
    )


def _section_updated(s: SessionState, e: ev.StateSectionUpdated) -> SessionState:
    # The first writer stays the owner even in shared sessions: the audit read model shows it.
    owners = s.section_owners if e.section in s.section_owners else _with(s.section_owners, e.section, e.agent)
    current = s.sections.get(e.section, {})
    mine = _TRANSIENT.get()
    if mine is None:
        value: dict[str, Any] = apply_merge_patch(current, e.changes)
    else:
        # inside a fold: copy the section once, then patch the copy in place (same result)
        value = current if _owned(mine, current) else _adopt(mine, copy.deepcopy(dict(current)))
        merge_patch_in_place(value, e.changes)
    return _changed(s, section_owners=owners, sections=_with(s.sections, e.section, value))


def _checkpoint(s: SessionState, e: ev.CheckpointSaved) -> SessionState:
    # version + 1: the checkpoint names the version its own event is about to get.
    return _changed(s, last_checkpoint={"name": e.name, "step": e.step, "version": s.version + 1})


def _approval_requested(s: SessionState, e: ev.ApprovalRequested) -> SessionState:
    expires = e.expires_at.isoformat() if e.expires_at else None
    return _changed(s, pending_approvals=_with(s.pending_approvals, e.approval_id, expires))


def _approval_decided(s: SessionState, e: ev.ApprovalDecided) -> SessionState:
    return _changed(
        s,
        pending_approvals=_without(s.pending_approvals, e.approval_id),
        decided_approvals=_remember(s.decided_approvals, e.approval_id, e.decision),
    )


def _error(s: SessionState, e: ev.ErrorRecorded) -> SessionState:
    return _changed(s, counts=_counted(s.counts, errors=1))


def _model_call(s: SessionState, e: ev.ModelCallRecorded) -> SessionState:
    remembered = (request_size(s, e.request.messages), payload_fingerprint(e))
    return _changed(
        s,
        model_calls=_remember(s.model_calls, e.call_id, remembered),
        counts=_counted(s.counts, model_calls=1),
        budget=spent_after(s.budget, e) if s.budget is not None else None,
    )


def _compacted(s: SessionState, e: ev.ContextCompacted) -> SessionState:
    remembered = (request_size(s, e.replacement), payload_fingerprint(e))
    return _changed(s, compactions=_remember(s.compactions, e.compaction_id, remembered))


def _items_added(s: SessionState, e: ev.ConversationItemsAdded) -> SessionState:
    added = max(s.conversation_added, e.first_index + len(e.items))
    return _changed(s, conversation_added=added, conversation_live=s.conversation_live + len(e.items))


def _item_popped(s: SessionState, e: ev.ConversationItemPopped) -> SessionState:
    return _changed(s, conversation_live=max(0, s.conversation_live - 1))


def _unchanged(s: SessionState, e: ev.Event) -> SessionState:
    return s


def _closed(status: Status) -> Callable[[SessionState, ev.Event], SessionState]:
    return lambda s, e: _changed(s, status=status)


def _forked(s: SessionState, e: ev.SessionForked) -> SessionState:
    # A fork continues from the source's state, as its own open session, whatever the source did
    # after (or at) that version.
    base = SessionState.from_snapshot(e.state)
    budget = base.budget  # the source's limits; the fork's spending is its own calls' only
    return _changed(
        base,
        session_id=s.session_id,
        tenant=s.tenant,
        status="open",
        forked_from={"session_id": e.source_session_id, "version": e.source_version},
        budget=_budget(budget["max_tokens"], budget["max_cost_usd"]) if budget is not None else None,
    )


_HANDLERS: dict[type[ev.Event], Callable[[SessionState, Any], SessionState]] = {
    ev.SessionStarted: _started,
    ev.MessageAdded: _message,
    ev.ToolCallRequested: _call_requested,
    ev.ToolCallCompleted: _call_completed,
    ev.ToolCallFailed: _call_failed,
    ev.StateSectionUpdated: _section_updated,
    ev.CheckpointSaved: _checkpoint,
    ev.ApprovalRequested: _approval_requested,
    ev.ApprovalDecided: _approval_decided,
    ev.ErrorRecorded: _error,
    ev.CompensationRecorded: _unchanged,  # history only; the timeline read model shows it
    ev.SessionCompleted: _closed("completed"),
    ev.SessionFailed: _closed("failed"),
    ev.SessionCancelled: _closed("cancelled"),
    ev.SessionForked: _forked,
    ev.ModelCallRecorded: _model_call,
    ev.ContextCompacted: _compacted,
    ev.BudgetExceeded: lambda s, e: _changed(s, budget={**(s.budget or {}), "exceeded": True}),
    # a LangGraph thread's checkpoints live in its read model, not in the decision state: no rule
    # depends on them, and the snapshot is written with every append
    ev.GraphCheckpointPut: lambda s, e: _changed(s, graph_live=True),
    ev.GraphWritesPut: lambda s, e: _changed(s, graph_live=True),
    ev.GraphThreadDeleted: lambda s, e: _changed(s, graph_live=False),
    ev.ConversationItemsAdded: _items_added,
    ev.ConversationItemPopped: _item_popped,
    ev.ConversationCleared: lambda s, e: _changed(s, conversation_live=0),
}
