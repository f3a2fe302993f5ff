"""The commands of the command API, one function each: its arguments in, the Call out.

Invariant: every write carries an Idempotency-Key (the caller's, or one made now for this logical
call and kept across its retries), and `expected_version=` becomes `If-Match: "<version>"`, so a
stale version is a ConcurrencyConflictError carrying the session's current version. Every answer
is a WriteResult. These functions are the methods of both clients (methods.py), so their
signatures and docstrings are the methods'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from agentlog.client import commands as cmd
from agentlog.client.calls import Call, new_idempotency_key, path
from agentlog.client.models import WriteResult

MERGE_PATCH = "application/merge-patch+json"


def _write_result(response: httpx.Response) -> WriteResult:
    replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
    return WriteResult.model_validate({**response.json(), "replayed": replayed})


def _write(
    session_id: str | None,
    url: str,
    body: Any,
    *,
    expected_version: int | None,
    idempotency_key: str | None,
    method: str = "POST",
    params: dict[str, Any] | None = None,
    content_type: str | None = None,
) -> Call[WriteResult]:
    headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
    if expected_version is not None:
        headers["If-Match"] = f'"{expected_version}"'
    return Call(
        "commands",
        method,
        url,
        _write_result,
        params=params or {},
        json=body,
        content_type=content_type,
        headers=headers,
        session_id=session_id,
    )


def _command(
    session_id: str,
    segments: tuple[str, ...],
    command: cmd.Command,
    expected_version: int | None,
    idempotency_key: str | None,
) -> Call[WriteResult]:
    return _write(
        session_id,
        path("sessions", session_id, *segments),
        command.body(),
        expected_version=expected_version,
        idempotency_key=idempotency_key,
    )


def _named_by_url(command: cmd.Command, id_field: str, **extra: str) -> dict[str, Any]:
    """The body of an endpoint whose URL carries the command's id (the API refuses it twice)."""
    body = command.body()
    del body[id_field]
    return extra | body


def start_session(
    session_id: str | None = None,
    *,
    workflow: str | None = None,
    title: str | None = None,
    agents: Sequence[str] | None = None,
    allow_shared_sections: bool | None = None,
    metadata: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    started_by: str | None = None,
    budget: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Start a session (POST /v1/sessions); without `session_id` the API makes one (read it from
    the answer). A retry of the same call answers the same session. `budget` ({"max_tokens": N,
    "max_cost_usd": X}, either or both) caps its model calls: see Session.budget."""
    command = cmd.StartSession(
        workflow=workflow,
        title=title,
        agents=list(agents) if agents is not None else None,
        allow_shared_sections=allow_shared_sections,
        metadata=metadata,
        labels=labels,
        started_by=started_by,
        budget=budget,
    )
    body = command.body() | ({"session_id": session_id} if session_id is not None else {})
    return _write(session_id, path("sessions"), body, expected_version=None, idempotency_key=idempotency_key)


def add_message(
    session_id: str,
    role: cmd.Role,
    content: str,
    *,
    agent: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Add a message (user, assistant, system or tool) to the conversation."""
    command = cmd.AddMessage(role=role, content=content, agent=agent)
    return _command(session_id, ("messages",), command, expected_version, idempotency_key)


def request_tool_call(
    session_id: str,
    tool: str,
    arguments: dict[str, Any] | None = None,
    *,
    call_id: str | None = None,
    agent: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Record that an agent calls a tool; without `call_id` the API assigns one."""
    command = cmd.RequestToolCall(tool=tool, arguments=arguments, call_id=call_id, agent=agent)
    return _command(session_id, ("tool-calls",), command, expected_version, idempotency_key)


def complete_tool_call(
    session_id: str,
    call_id: str,
    result: Any = None,
    *,
    duration_ms: int | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Report an open tool call's result (any JSON value)."""
    command = cmd.CompleteToolCall(call_id=call_id, result=result, duration_ms=duration_ms)
    return _write(
        session_id,
        path("sessions", session_id, "tool-calls", call_id, "result"),
        _named_by_url(command, "call_id", status="completed"),
        expected_version=expected_version,
        idempotency_key=idempotency_key,
    )


def fail_tool_call(
    session_id: str,
    call_id: str,
    error: str,
    *,
    duration_ms: int | None = None,
    retriable: bool | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Report that an open tool call failed."""
    command = cmd.FailToolCall(call_id=call_id, error=error, duration_ms=duration_ms, retriable=retriable)
    return _write(
        session_id,
        path("sessions", session_id, "tool-calls", call_id, "result"),
        _named_by_url(command, "call_id", status="failed"),
        expected_version=expected_version,
        idempotency_key=idempotency_key,
    )


def update_state(
    session_id: str,
    section: str,
    changes: dict[str, Any],
    *,
    agent: str,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Change one state section with a JSON merge patch (RFC 7396: a null value removes a key) as
    `agent`, who owns the section unless the session allows shared sections."""
    return _write(
        session_id,
        path("sessions", session_id, "state", section),
        changes,
        method="PATCH",
        params={"agent": agent},
        content_type=MERGE_PATCH,
        expected_version=expected_version,
        idempotency_key=idempotency_key,
    )


def save_checkpoint(
    session_id: str,
    name: str,
    *,
    step: int | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Mark a named step of the run (replay can stop at it: `--to-checkpoint`)."""
    command = cmd.SaveCheckpoint(name=name, step=step)
    return _command(session_id, ("checkpoints",), command, expected_version, idempotency_key)


def request_approval(
    session_id: str,
    action: str,
    *,
    requested_by: str,
    risk: cmd.Risk | None = None,
    approval_id: str | None = None,
    expires_at: datetime | None = None,
    details: dict[str, Any] | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Ask a human to approve an action; without `approval_id` the API assigns one."""
    command = cmd.RequestApproval(
        action=action,
        requested_by=requested_by,
        risk=risk,
        approval_id=approval_id,
        expires_at=expires_at,
        details=details,
    )
    return _command(session_id, ("approvals",), command, expected_version, idempotency_key)


def decide_approval(
    session_id: str,
    approval_id: str,
    decision: cmd.Decision,
    *,
    reviewer: str,
    comment: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Approve or reject a pending approval, once, before it expires."""
    command = cmd.DecideApproval(approval_id=approval_id, decision=decision, reviewer=reviewer, comment=comment)
    return _write(
        session_id,
        path("sessions", session_id, "approvals", approval_id, "decision"),
        _named_by_url(command, "approval_id"),
        expected_version=expected_version,
        idempotency_key=idempotency_key,
    )


def record_error(
    session_id: str,
    message: str,
    *,
    agent: str | None = None,
    kind: str | None = None,
    details: dict[str, Any] | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Record an error the agent met (the session stays open)."""
    command = cmd.RecordError(message=message, agent=agent, kind=kind, details=details)
    return _command(session_id, ("errors",), command, expected_version, idempotency_key)


def record_compensation(
    session_id: str,
    step: str,
    *,
    reason: str | None = None,
    agent: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Record that a saga step was undone."""
    command = cmd.RecordCompensation(step=step, reason=reason, agent=agent)
    return _command(session_id, ("compensations",), command, expected_version, idempotency_key)


def complete_session(
    session_id: str,
    *,
    outcome: str | None = None,
    summary: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Close the session as completed; it takes no more events."""
    command = cmd.CompleteSession(outcome=outcome, summary=summary)
    return _command(session_id, ("complete",), command, expected_version, idempotency_key)


def fail_session(
    session_id: str,
    reason: str,
    *,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Close the session as failed."""
    return _command(session_id, ("fail",), cmd.FailSession(reason=reason), expected_version, idempotency_key)


def cancel_session(
    session_id: str,
    *,
    reason: str | None = None,
    by: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Close the session as cancelled."""
    command = cmd.CancelSession(reason=reason, by=by)
    return _command(session_id, ("cancel",), command, expected_version, idempotency_key)


def run_commands(
    session_id: str,
    commands: Sequence[cmd.Command],
    *,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Apply several commands (agentlog.client.commands) in order, atomically: all in one new
    version, or none (the first refusal is the error)."""
    return _write(
        session_id,
        path("sessions", session_id, "commands"),
        {"commands": [c.item() for c in commands]},
        expected_version=expected_version,
        idempotency_key=idempotency_key,
    )


def record_model_call(
    session_id: str,
    model: str,
    request: cmd.ModelRequest | dict[str, Any],
    *,
    response: cmd.ModelResponse | dict[str, Any] | None = None,
    usage: cmd.ModelUsage | dict[str, Any] | None = None,
    call_id: str | None = None,
    agent: str | None = None,
    provider: str | None = None,
    latency_ms: int | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Record one model call (POST /v1/sessions/{id}/model-calls), so `context` can rebuild the
    exact request later; without `call_id` the API assigns one. A message item of the request may
    reference what the session already holds (see ModelRequest); a reference that does not
    resolve is refused naming the item."""
    command = cmd.RecordModelCall(
        model=model,
        request=request,
        response=response,
        usage=usage,
        call_id=call_id,
        agent=agent,
        provider=provider,
        latency_ms=latency_ms,
    )
    return _command(session_id, ("model-calls",), command, expected_version, idempotency_key)


def compact_context(
    session_id: str,
    replaced: Sequence[dict[str, Any]],
    *,
    replacement: Sequence[dict[str, Any]] | None = None,
    kind: cmd.CompactionKind | None = None,
    reason: str | None = None,
    compaction_id: str | None = None,
    agent: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Record that the agent replaced `replaced` in its context by `replacement` (POST
    /v1/sessions/{id}/compactions); a later request references it as
    `{"ref": "compaction", "compaction_id": ...}`."""
    command = cmd.CompactContext(
        replaced=list(replaced),
        replacement=list(replacement) if replacement is not None else None,
        kind=kind,
        reason=reason,
        compaction_id=compaction_id,
        agent=agent,
    )
    return _command(session_id, ("compactions",), command, expected_version, idempotency_key)


def fork_session(
    session_id: str,
    *,
    at_version: int,
    new_session_id: str | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Start a new session from this one's state at `at_version` (POST /v1/sessions/{id}/fork of
    the public contract); the answer is the new session's first version."""
    body = {"at_version": at_version} | ({"new_session_id": new_session_id} if new_session_id is not None else {})
    return _write(
        new_session_id,
        path("sessions", session_id, "fork"),
        body,
        expected_version=None,
        idempotency_key=idempotency_key,
    )


# --- agent frameworks' records (agentlog.integrations) ---------------------------------------------


def put_graph_checkpoint(
    session_id: str,
    *,
    thread_id: str,
    checkpoint_id: str,
    checkpoint: dict[str, Any],
    checkpoint_ns: str = "",
    parent_checkpoint_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    blobs: Sequence[cmd.GraphBlob] = (),
    workflow: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Store a LangGraph checkpoint of thread `thread_id` in session `session_id` (its first
    checkpoint starts the session, with `workflow`, default "langgraph"): `checkpoint` keeps only
    JSON scalars in `channel_values`, the other channel values go in `blobs`."""
    command = cmd.PutGraphCheckpoint(
        thread_id=thread_id,
        checkpoint_id=checkpoint_id,
        checkpoint=checkpoint,
        checkpoint_ns=checkpoint_ns,
        parent_checkpoint_id=parent_checkpoint_id,
        metadata=metadata,
        blobs=list(blobs),
        workflow=workflow,
    )
    return _command(session_id, ("graph", "checkpoints"), command, expected_version, idempotency_key)


def put_graph_writes(
    session_id: str,
    *,
    thread_id: str,
    checkpoint_id: str,
    task_id: str,
    writes: Sequence[cmd.GraphWrite],
    checkpoint_ns: str = "",
    task_path: str = "",
    workflow: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Store a LangGraph task's pending writes, linked to the checkpoint it ran after (they may
    arrive before that checkpoint, so they may start the session too, with `workflow`)."""
    command = cmd.PutGraphWrites(
        thread_id=thread_id,
        checkpoint_id=checkpoint_id,
        task_id=task_id,
        writes=list(writes),
        checkpoint_ns=checkpoint_ns,
        task_path=task_path,
        workflow=workflow,
    )
    return _command(session_id, ("graph", "writes"), command, expected_version, idempotency_key)


def delete_graph_thread(
    session_id: str, thread_id: str, *, expected_version: int | None = None, idempotency_key: str | None = None
) -> Call[WriteResult]:
    """Hide a LangGraph thread's checkpoints and writes (an event; the log keeps them). A session
    that does not exist is a NotFoundError."""
    command = cmd.DeleteGraphThread(thread_id=thread_id)
    return _command(session_id, ("graph", "delete"), command, expected_version, idempotency_key)


def add_conversation_items(
    session_id: str,
    items: Sequence[dict[str, Any]],
    *,
    agent: str | None = None,
    workflow: str | None = None,
    expected_version: int | None = None,
    idempotency_key: str | None = None,
) -> Call[WriteResult]:
    """Add items to an agent SDK's conversation memory (the first add starts the session, with
    `workflow`, default "openai-agents")."""
    command = cmd.AddConversationItems(items=list(items), agent=agent, workflow=workflow)
    return _command(session_id, ("conversation", "items"), command, expected_version, idempotency_key)


def pop_conversation_item(
    session_id: str, index: int, *, expected_version: int | None = None, idempotency_key: str | None = None
) -> Call[WriteResult]:
    """Remove the most recent item, which a read (`conversation_items`) showed as `index`; pass
    that read's version as `expected_version` so a concurrent write is a conflict, not a wrong pop."""
    command = cmd.PopConversationItem(index=index)
    return _command(session_id, ("conversation", "pop"), command, expected_version, idempotency_key)


def clear_conversation(
    session_id: str, *, expected_version: int | None = None, idempotency_key: str | None = None
) -> Call[WriteResult]:
    """Remove every item of the conversation memory (an event; the log keeps them)."""
    return _command(session_id, ("conversation", "clear"), cmd.ClearConversation(), expected_version, idempotency_key)
