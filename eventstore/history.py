"""One line per recorded event for `agentlog history`, `agentlog replay --step` and the timeline
read model's `summary` column: one text per event type, whoever shows it.

Invariant: a history line never fails: an event this build cannot decode (unknown type, newer
schema) still gets a line, built from its raw data, so a broken session can be inspected. Lines
are for people; the exact payload stays in the event (`--json`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.errors import EventDecodingError
from eventstore.registry import decode

MAX_TEXT = 72
_AGENT_FIELDS = ("agent", "requested_by", "reviewer", "by", "started_by")


def short(value: Any, limit: int = MAX_TEXT) -> str:
    """A value on one line, cut at `limit` characters.

    Keys are sorted: the same event gives the same line whether its payload came from memory, from
    Kafka or from Postgres' jsonb (which reorders keys), so live and rebuilt timelines agree.
    """
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def agent_of(event: RecordedEvent) -> str | None:
    """The agent (or reviewer, requester) an event names in its payload, if any."""
    for name in _AGENT_FIELDS:
        value = event.data.get(name)
        if isinstance(value, str):
            return value
    return None


def actor_of(event: RecordedEvent) -> str | None:
    """Who sent the command, as the command API recorded it in the metadata."""
    actor = event.metadata.get("actor")
    return actor if isinstance(actor, str) or actor is None else str(actor)


def summary(event: RecordedEvent) -> str:
    try:
        decoded = decode(event)
    except EventDecodingError as exc:
        return f"[{exc.code}] {short(event.data)}"
    return describe(decoded) if type(decoded) in _SUMMARIES else short(event.data)


def describe(event: ev.Event) -> str:
    """The line of an already decoded event (the projector has decoded it once already)."""
    line = _SUMMARIES.get(type(event))
    return line(event) if line else type(event).TYPE


def history_entry(event: RecordedEvent) -> dict[str, Any]:
    return {
        "version": event.version,
        "type": event.type,
        "recorded_at": event.recorded_at.isoformat(),
        "actor": actor_of(event),
        "agent": agent_of(event),
        "summary": summary(event),
        "event_id": str(event.event_id),
        "position": event.position,
    }


def _started(e: ev.SessionStarted) -> str:
    parts = [f"workflow {e.workflow}" if e.workflow else "started"]
    if e.title:
        parts.append(short(e.title, 40))
    if e.agents:
        parts.append("agents " + ",".join(e.agents))
    return "; ".join(parts)


def _message(e: ev.MessageAdded) -> str:
    speaker = f"{e.role}/{e.agent}" if e.agent else e.role
    return f"{speaker}: {short(e.content)}"


def _approval_decided(e: ev.ApprovalDecided) -> str:
    text = f"approval {e.approval_id} {e.decision} by {e.reviewer}"
    return f"{text}: {short(e.comment, 40)}" if e.comment else text


def _completed(e: ev.SessionCompleted) -> str:
    details = " - ".join(part for part in (e.outcome, e.summary and short(e.summary, 60)) if part)
    return f"completed: {details}" if details else "completed"


def _model_call(e: ev.ModelCallRecorded) -> str:
    model = f"{e.provider}/{e.model}" if e.provider else e.model
    refs = sum(1 for item in e.request.messages if "ref" in item)
    items = f"{len(e.request.messages)} message items" + (f" ({refs} by reference)" if refs else "")
    if e.response.error is not None:
        outcome = f"error: {short(e.response.error, 40)}"
    elif e.response.tool_calls:
        outcome = f"{len(e.response.tool_calls)} tool call(s)"
    else:
        outcome = e.response.finish_reason or "answered"
    usage = e.usage
    tokens = f"; {usage.input_tokens or 0}+{usage.output_tokens or 0} tokens" if usage.input_tokens is not None else ""
    return f"model call {e.call_id}: {model}, {items} -> {outcome}{tokens}{_duration(e.latency_ms)}"


def _compacted(e: ev.ContextCompacted) -> str:
    text = f"context {e.kind} ({e.compaction_id}): {len(e.replaced)} items replaced by {len(e.replacement)}"
    return f"{text}: {short(e.reason, 40)}" if e.reason else text


def _stored(value: ev.StoredValue) -> str:
    return short(value.value, 40) if value.kind == "json" else f"<{value.kind}{f' {value.type}' if value.type else ''}>"


def _namespace(ns: str) -> str:
    return f" in {ns}" if ns else ""


def _graph_checkpoint(e: ev.GraphCheckpointPut) -> str:
    # ids (uuid6) are in the event and `--json`; the line says what happened in the graph
    step, source = e.metadata.get("step"), e.metadata.get("source")
    head = f"graph step {step}" if step is not None else "graph checkpoint"
    head += f" ({source})" if source else ""
    updated = e.checkpoint.get("updated_channels") or [b.channel for b in e.blobs]
    return f"{head}{_namespace(e.checkpoint_ns)}" + (f": updated {', '.join(map(str, updated))}" if updated else "")


def _graph_writes(e: ev.GraphWritesPut) -> str:
    node = e.task_path.rsplit(",", 1)[-1].strip() if e.task_path else ""
    who = node or f"task {e.task_id}"
    writes = ", ".join(f"{w.channel}={_stored(w.value)}" for w in e.writes)
    return short(f"graph {who}{_namespace(e.checkpoint_ns)} wrote {writes}", 160)


def _item(item: dict[str, Any]) -> str:
    """An SDK item (OpenAI Responses shapes): a message's text, a tool call or its output."""
    content, kind = item.get("content"), item.get("type")
    if isinstance(content, list):  # content parts: their text
        content = " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(item.get("role"), str) and isinstance(content, str):
        return f"{item['role']}: {short(content, 40)}"
    if kind == "function_call":
        return f"call {item.get('name')} {short(item.get('arguments'), 32)}"
    if kind == "function_call_output":
        return f"output {short(item.get('output'), 32)}"
    return str(kind or item.get("role") or "item")


def _items_added(e: ev.ConversationItemsAdded) -> str:
    last = e.first_index + len(e.items) - 1
    numbers = f"item {e.first_index}" if last == e.first_index else f"items {e.first_index}-{last}"
    return short(f"conversation {numbers} added: " + "; ".join(_item(i) for i in e.items), 160)


def _duration(ms: int | None) -> str:
    return f" in {ms} ms" if ms is not None else ""


_SUMMARIES: dict[type[ev.Event], Callable[[Any], str]] = {
    ev.SessionStarted: _started,
    ev.MessageAdded: _message,
    ev.ToolCallRequested: lambda e: f"call {e.call_id}: {e.tool} {short(e.arguments, 48)}",
    ev.ToolCallCompleted: lambda e: (
        f"call {e.call_id} completed{_duration(e.duration_ms)}"
        + (f": {short(e.result, 48)}" if e.result is not None else "")
    ),
    ev.ToolCallFailed: lambda e: f"call {e.call_id} failed{_duration(e.duration_ms)}: {short(e.error, 48)}",
    ev.StateSectionUpdated: lambda e: f"section {e.section} patched: {short(e.changes, 56)}",
    ev.CheckpointSaved: lambda e: f"checkpoint {e.name}" + (f" (step {e.step})" if e.step is not None else ""),
    ev.ApprovalRequested: lambda e: f"approval {e.approval_id} requested ({e.risk} risk): {short(e.action, 48)}",
    ev.ApprovalDecided: _approval_decided,
    ev.ErrorRecorded: lambda e: f"error{f' [{e.kind}]' if e.kind else ''}: {short(e.message, 56)}",
    ev.CompensationRecorded: lambda e: f"compensated {e.step}" + (f": {short(e.reason, 48)}" if e.reason else ""),
    ev.SessionCompleted: _completed,
    ev.SessionFailed: lambda e: f"failed: {short(e.reason, 60)}",
    ev.SessionCancelled: lambda e: (
        "cancelled" + (f" by {e.by}" if e.by else "") + (f": {short(e.reason, 48)}" if e.reason else "")
    ),
    ev.SessionForked: lambda e: f"forked from {e.source_session_id} at version {e.source_version}",
    ev.ModelCallRecorded: _model_call,
    ev.ContextCompacted: _compacted,
    ev.BudgetExceeded: lambda e: (
        f"budget exceeded ({e.exceeded}) by model call {e.call_id}: {e.tokens} tokens"
        + (f" of {e.max_tokens}" if e.max_tokens is not None else "")
        + f", ${e.cost_usd:.6f}"
        + (f" of ${e.max_cost_usd:g}" if e.max_cost_usd is not None else "")
    ),
    ev.GraphCheckpointPut: _graph_checkpoint,
    ev.GraphWritesPut: _graph_writes,
    ev.GraphThreadDeleted: lambda e: f"graph thread {e.thread_id} deleted: its checkpoints until now are hidden",
    ev.ConversationItemsAdded: _items_added,
    ev.ConversationItemPopped: lambda e: f"conversation item {e.index} popped",
    ev.ConversationCleared: lambda e: "conversation cleared",
}
