"""Deciders: decide(command, state) -> events, one pure function per command.

Invariant: a decider reads only its arguments (the command, the session's current state, the
clock `now` and the id source `new_id`) and either returns the events to append or raises a typed
error from eventstore/errors.py; it never appends, so a refused command leaves no trace. Deciding
an already-applied command again returns [] where "already applied" is visible in the state
(a repeated result, decision, terminal command, no-op patch, open call or pending approval), so
at-least-once delivery of commands does not duplicate events. Those repeats are recognised even
after the session closed; anything new on a closed session is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commands import models as cmd
from commands.json_values import same_json
from eventstore import events as ev
from eventstore.errors import (
    ApprovalAlreadyDecidedError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    CompactionIdInUseError,
    ModelCallIdInUseError,
    SectionOwnedByOtherAgentError,
    SessionAlreadyStartedError,
    SessionClosedError,
    SessionNotFoundError,
    ToolCallIdInUseError,
    ToolCallNotOpenError,
    ValidationProblemError,
)
from eventstore.merge_patch import apply_merge_patch
from eventstore.message_refs import CallRef, CompactionRef, MessageRef, is_reference, parse_ref
from eventstore.pricing import DEFAULT_TABLE, PriceTable
from eventstore.state import (
    MAX_REMEMBERED,
    SessionState,
    call_outcome_fingerprint,
    evolve,
    payload_fingerprint,
    request_size,
    spent_after,
)

NewId = Callable[[], str]
Events = list[ev.Event]


def _require_exists(state: SessionState) -> None:
    if not state.exists:
        raise SessionNotFoundError(f"session {state.session_id!r} not found")


def _require_open(state: SessionState) -> None:
    if state.is_closed:
        raise SessionClosedError(f"session {state.session_id!r} is {state.status}", session_status=state.status)


def _require_new(state: SessionState) -> None:
    if state.exists:
        raise SessionAlreadyStartedError(f"session {state.session_id!r} already exists", current_version=state.version)


def decide_start_session(c: cmd.StartSession, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_new(s)
    return [ev.SessionStarted(**c.model_dump(exclude={"type"}))]


def decide_fork_session(c: cmd.ForkSession, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_new(s)
    SessionState.from_snapshot(c.state)  # an unreadable snapshot must never become an event
    return [ev.SessionForked(**c.model_dump(exclude={"type"}))]


def decide_add_message(c: cmd.AddMessage, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    _require_open(s)
    return [ev.MessageAdded(role=c.role, content=c.content, agent=c.agent)]


def decide_request_tool_call(c: cmd.RequestToolCall, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    call_id = c.call_id or new_id()
    if s.open_calls.get(call_id) == c.tool:
        return []
    if call_id in s.open_calls or call_id in s.finished_calls:
        raise ToolCallIdInUseError(f"tool call {call_id!r} was already requested", call_id=call_id)
    _require_open(s)
    return [ev.ToolCallRequested(call_id=call_id, tool=c.tool, arguments=c.arguments, agent=c.agent)]


def _finish_call(s: SessionState, call_id: str, fingerprint: str, event: ev.Event) -> Events:
    _require_exists(s)
    if s.finished_calls.get(call_id) == fingerprint:
        return []
    if call_id not in s.open_calls:
        raise ToolCallNotOpenError(f"tool call {call_id!r} is not open", call_id=call_id)
    _require_open(s)
    return [event]


def decide_complete_tool_call(c: cmd.CompleteToolCall, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    event = ev.ToolCallCompleted(call_id=c.call_id, result=c.result, duration_ms=c.duration_ms)
    return _finish_call(s, c.call_id, call_outcome_fingerprint("completed", c.result), event)


def decide_fail_tool_call(c: cmd.FailToolCall, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    event = ev.ToolCallFailed(call_id=c.call_id, error=c.error, duration_ms=c.duration_ms, retriable=c.retriable)
    return _finish_call(s, c.call_id, call_outcome_fingerprint("failed", c.error), event)


def decide_update_state_section(c: cmd.UpdateStateSection, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    owner = s.section_owners.get(c.section)
    if owner is not None and owner != c.agent and not s.allow_shared_sections:
        raise SectionOwnedByOtherAgentError(
            f"section {c.section!r} belongs to agent {owner!r}", section=c.section, owner=owner
        )
    current = s.sections.get(c.section)
    # A merge patch is idempotent: one that changes nothing was already applied. "Nothing" in JSON
    # terms: Python's == would take {"a": true} for {"a": 1} and drop the change.
    if current is not None and same_json(apply_merge_patch(current, c.changes), current):
        return []
    _require_open(s)
    return [ev.StateSectionUpdated(agent=c.agent, section=c.section, changes=c.changes)]


def decide_save_checkpoint(c: cmd.SaveCheckpoint, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    last = s.last_checkpoint
    # Only the same checkpoint with nothing after it is a repeat: loops save one name many times.
    if last and last["name"] == c.name and last["step"] == c.step and last["version"] == s.version:
        return []
    _require_open(s)
    return [ev.CheckpointSaved(name=c.name, step=c.step)]


def decide_request_approval(c: cmd.RequestApproval, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    approval_id = c.approval_id or new_id()
    if approval_id in s.pending_approvals:
        return []
    if approval_id in s.decided_approvals:
        raise ApprovalAlreadyDecidedError(f"approval {approval_id!r} was already decided", approval_id=approval_id)
    _require_open(s)
    if c.expires_at is not None and c.expires_at <= now:
        raise ValidationProblemError(
            "expires_at is not in the future",
            errors=[{"field": "expires_at", "reason": "must be later than now"}],
        )
    fields = c.model_dump(exclude={"type", "approval_id"})
    return [ev.ApprovalRequested(approval_id=approval_id, **fields)]


def decide_decide_approval(c: cmd.DecideApproval, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    earlier = s.decided_approvals.get(c.approval_id)
    if earlier == c.decision:
        return []
    if earlier is not None:
        raise ApprovalAlreadyDecidedError(
            f"approval {c.approval_id!r} was already {earlier}",
            approval_id=c.approval_id,
            decision=earlier,
        )
    if c.approval_id not in s.pending_approvals:
        raise ApprovalNotFoundError(f"approval {c.approval_id!r} not found", approval_id=c.approval_id)
    _require_open(s)
    expires_at = s.pending_approvals[c.approval_id]
    if expires_at is not None and datetime.fromisoformat(expires_at) <= now:
        raise ApprovalExpiredError(
            f"approval {c.approval_id!r} expired at {expires_at}",
            approval_id=c.approval_id,
            expires_at=expires_at,
        )
    decided = ev.ApprovalDecided(
        approval_id=c.approval_id,
        decision=c.decision,
        reviewer=c.reviewer,
        comment=c.comment,
        decided_at=now,
    )
    return [decided]


def decide_record_error(c: cmd.RecordError, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    _require_open(s)
    return [ev.ErrorRecorded(**c.model_dump(exclude={"type"}))]


def decide_record_compensation(c: cmd.RecordCompensation, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    _require_open(s)
    return [ev.CompensationRecorded(**c.model_dump(exclude={"type"}))]


def _reference_problem(item: dict[str, Any], s: SessionState) -> str | None:
    """Why a (well-formed) reference does not resolve in the session as it stands, if it does not."""
    ref = parse_ref(item)
    if isinstance(ref, MessageRef):
        n = s.counts.messages
        return None if ref.index < n else f"the session has {n} messages, so index must be below {n}"
    if isinstance(ref, CompactionRef):
        known = ref.compaction_id in s.compactions
        return None if known else f"no context compaction {ref.compaction_id!r} in this session"
    if ref.call_id not in s.model_calls:
        return f"no model call {ref.call_id!r} among the latest {MAX_REMEMBERED} of this session"
    count = s.model_calls[ref.call_id][0]
    if isinstance(ref, CallRef) and (ref.start > count or (ref.stop is not None and ref.stop > count)):
        return f"model call {ref.call_id!r} sent {count} messages: start and stop must lie within 0..{count}"
    return None


def _check_references(fields: Iterable[tuple[str, list[dict[str, Any]]]], s: SessionState) -> None:
    """Every reference resolves now, so `agentlog context` can always rebuild the request."""
    errors = [
        {"field": f"{name}.{i}", "reason": problem}
        for name, items in fields
        for i, item in enumerate(items)
        if is_reference(item) and (problem := _reference_problem(item, s)) is not None
    ]
    if errors:
        raise ValidationProblemError("a reference does not resolve in this session", errors=errors)
    for name, items in fields:
        size = request_size(s, items)
        if size > cmd.MAX_RESOLVED_MESSAGES:
            raise ValidationProblemError(
                "the references stand for too many messages",
                errors=[
                    {
                        "field": name,
                        "reason": f"stands for {size} messages once its references are resolved; "
                        f"at most {cmd.MAX_RESOLVED_MESSAGES}",
                    }
                ],
            )


def _check_earlier_call(name: str, call_id: str | None, s: SessionState) -> None:
    if call_id is not None and call_id not in s.model_calls:
        raise ValidationProblemError(
            "a reference does not resolve in this session",
            errors=[{"field": name, "reason": f"no model call {call_id!r} among the latest {MAX_REMEMBERED}"}],
        )


def decide_record_model_call(
    c: cmd.RecordModelCall, s: SessionState, *, now: datetime, new_id: NewId, prices: PriceTable = DEFAULT_TABLE
) -> Events:
    _require_exists(s)
    call_id = c.call_id or new_id()
    fields = c.model_dump(exclude={"type", "call_id"})
    u = c.usage
    priced = prices.cost(c.model, now, u.input_tokens, u.output_tokens, u.cached_tokens)
    cost = ev.ModelCost(usd=priced[0], price_version=priced[1]) if priced is not None else None
    event = ev.ModelCallRecorded(call_id=call_id, **fields, cost=cost)
    earlier = s.model_calls.get(call_id)
    if earlier is not None:
        if earlier[1] == payload_fingerprint(event):  # the cost is left out: a retry is the same call
            return []
        raise ModelCallIdInUseError(f"model call {call_id!r} was already recorded", call_id=call_id)
    _require_open(s)
    _check_references([("request.messages", c.request.messages)], s)
    _check_earlier_call("request.system_from", c.request.system_from, s)
    _check_earlier_call("request.tools_from", c.request.tools_from, s)
    return [event, *_over_budget(s, event)]


def _over_budget(s: SessionState, call: ev.ModelCallRecorded) -> Events:
    """BudgetExceeded once per session: with the call that first takes it over a limit (the call
    is recorded all the same: it happened). Concurrent writers cannot both add it: each decides on
    the state at the version it appends after, and the loser decides again on a state that has it."""
    if s.budget is None or s.budget["exceeded"]:
        return []
    spent = spent_after(s.budget, call)
    max_tokens, max_cost = spent["max_tokens"], spent["max_cost_usd"]
    over_tokens = max_tokens is not None and spent["tokens"] > max_tokens
    over_cost = max_cost is not None and spent["cost_usd"] > max_cost
    if not (over_tokens or over_cost):
        return []
    exceeded = ev.BudgetExceeded(
        call_id=call.call_id,
        exceeded="tokens" if over_tokens else "cost",
        tokens=spent["tokens"],
        cost_usd=spent["cost_usd"],
        max_tokens=max_tokens,
        max_cost_usd=max_cost,
    )
    return [exceeded]


def decide_compact_context(c: cmd.CompactContext, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    compaction_id = c.compaction_id or new_id()
    event = ev.ContextCompacted(compaction_id=compaction_id, **c.model_dump(exclude={"type", "compaction_id"}))
    earlier = s.compactions.get(compaction_id)
    if earlier is not None:
        if earlier[1] == payload_fingerprint(event):
            return []
        raise CompactionIdInUseError(f"compaction {compaction_id!r} was already recorded", compaction_id=compaction_id)
    _require_open(s)
    _check_references([("replaced", c.replaced), ("replacement", c.replacement)], s)
    return [event]


def _started_implicitly(s: SessionState, workflow: str) -> Events:
    """A framework's first record starts its session (a LangGraph thread, an SDK conversation is
    one), so an integration needs no separate start call; later ones need it open."""
    if not s.exists:
        return [ev.SessionStarted(workflow=workflow)]
    _require_open(s)
    return []


def decide_put_graph_checkpoint(c: cmd.PutGraphCheckpoint, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    put = ev.GraphCheckpointPut(**c.model_dump(exclude={"type", "workflow"}))
    return [*_started_implicitly(s, c.workflow or "langgraph"), put]


def decide_put_graph_writes(c: cmd.PutGraphWrites, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    # LangGraph writes a step's first checkpoint in the background while its tasks' writes go
    # out: the writes may be the thread's first record
    put = ev.GraphWritesPut(**c.model_dump(exclude={"type", "workflow"}))
    return [*_started_implicitly(s, c.workflow or "langgraph"), put]


def decide_delete_graph_thread(c: cmd.DeleteGraphThread, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    if not s.graph_live:
        return []  # nothing to hide: deleted already, or never written
    _require_open(s)
    return [ev.GraphThreadDeleted(thread_id=c.thread_id)]


def decide_add_conversation_items(
    c: cmd.AddConversationItems, s: SessionState, *, now: datetime, new_id: NewId
) -> Events:
    started = _started_implicitly(s, c.workflow or "openai-agents")
    added = ev.ConversationItemsAdded(first_index=s.conversation_added, items=c.items, agent=c.agent)
    return [*started, added]


def decide_pop_conversation_item(
    c: cmd.PopConversationItem, s: SessionState, *, now: datetime, new_id: NewId
) -> Events:
    _require_exists(s)
    if s.conversation_live == 0:
        return []  # nothing left to pop (a repeat of the last pop lands here too)
    if c.index >= s.conversation_added:
        raise ValidationProblemError(
            f"the conversation has items 0 to {s.conversation_added - 1}",
            errors=[{"field": "index", "reason": f"must be below {s.conversation_added}"}],
        )
    _require_open(s)
    return [ev.ConversationItemPopped(index=c.index)]


def decide_clear_conversation(c: cmd.ClearConversation, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    _require_exists(s)
    if s.conversation_live == 0:
        return []
    _require_open(s)
    return [ev.ConversationCleared()]


def _close(s: SessionState, status: str, event: ev.Event) -> Events:
    _require_exists(s)
    if s.status == status:
        return []
    _require_open(s)
    return [event]


def decide_complete_session(c: cmd.CompleteSession, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    return _close(s, "completed", ev.SessionCompleted(outcome=c.outcome, summary=c.summary))


def decide_fail_session(c: cmd.FailSession, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    return _close(s, "failed", ev.SessionFailed(reason=c.reason))


def decide_cancel_session(c: cmd.CancelSession, s: SessionState, *, now: datetime, new_id: NewId) -> Events:
    return _close(s, "cancelled", ev.SessionCancelled(reason=c.reason, by=c.by))


_DECIDERS: dict[type[cmd.Command], Callable[..., Events]] = {
    cmd.StartSession: decide_start_session,
    cmd.ForkSession: decide_fork_session,
    cmd.AddMessage: decide_add_message,
    cmd.RequestToolCall: decide_request_tool_call,
    cmd.CompleteToolCall: decide_complete_tool_call,
    cmd.FailToolCall: decide_fail_tool_call,
    cmd.UpdateStateSection: decide_update_state_section,
    cmd.SaveCheckpoint: decide_save_checkpoint,
    cmd.RequestApproval: decide_request_approval,
    cmd.DecideApproval: decide_decide_approval,
    cmd.RecordError: decide_record_error,
    cmd.RecordCompensation: decide_record_compensation,
    cmd.CompleteSession: decide_complete_session,
    cmd.FailSession: decide_fail_session,
    cmd.CancelSession: decide_cancel_session,
    cmd.RecordModelCall: decide_record_model_call,
    cmd.CompactContext: decide_compact_context,
    cmd.PutGraphCheckpoint: decide_put_graph_checkpoint,
    cmd.PutGraphWrites: decide_put_graph_writes,
    cmd.DeleteGraphThread: decide_delete_graph_thread,
    cmd.AddConversationItems: decide_add_conversation_items,
    cmd.PopConversationItem: decide_pop_conversation_item,
    cmd.ClearConversation: decide_clear_conversation,
}


def decide(
    command: cmd.Command, state: SessionState, *, now: datetime, new_id: NewId, prices: PriceTable = DEFAULT_TABLE
) -> Events:
    """The events `command` produces on `state`; [] if it was already applied. `prices` is the
    price table model calls are priced with (eventstore/pricing.py), an argument like the clock."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")  # expiry compares with aware datetimes
    if isinstance(command, cmd.RecordModelCall):
        return decide_record_model_call(command, state, now=now, new_id=new_id, prices=prices)
    decider = _DECIDERS.get(type(command))
    if decider is None:
        raise TypeError(f"no decider for {type(command).__name__}")
    return decider(command, state, now=now, new_id=new_id)


@dataclass(frozen=True, slots=True)
class Decision:
    """What deciding a request yields: its events and the state after them, folded once."""

    events: Events
    state: SessionState


def decide_many(
    commands: Iterable[cmd.Command],
    state: SessionState,
    *,
    now: datetime,
    new_id: NewId,
    prices: PriceTable = DEFAULT_TABLE,
) -> Decision:
    """All events of several commands applied in order, each deciding on the state the previous
    ones produced, and that final state; raises on the first refused command, so the caller
    appends all or nothing."""
    decided: Events = []
    for command in commands:
        events = decide(command, state, now=now, new_id=new_id, prices=prices)
        for event in events:
            state = evolve(state, event)
        decided.extend(events)
    return Decision(decided, state)
