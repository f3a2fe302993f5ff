"""Read models against the fold: what every projection holds for a session must equal what
eventstore/state.py folds from the session's stored events (and, where the fold keeps no such
thing, what the events say). Used by the pipeline property test once the projector reached the
session's version. JSON values compare with `same_json` (true is not 1; jsonb may write 1e16 as
10000000000000000, the same number)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commands.json_values import same_json
from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import decode
from eventstore.state import SessionState, evolve, fold
from projections.read_models.timeline import agent_of, summary_of


def _equal(what: str, got: Any, want: Any) -> None:
    # This is a support module, where pytest does not rewrite asserts: say what differs.
    assert got == want, f"{what}: read model {got!r} != expected {want!r}"


@dataclass(frozen=True)
class Where:
    pool: Any
    tenant: str
    session_id: str


async def check_read_models(where: Where, events: Sequence[RecordedEvent]) -> SessionState:
    """Every read model of one session against the fold of `events` (all of its events); returns
    the folded state."""
    parked = await where.pool.fetch(
        "SELECT projection, version, error FROM projection_parked_events WHERE tenant = $1 AND session_id = $2",
        where.tenant,
        where.session_id,
    )
    _equal("parked events", [dict(r) for r in parked], [])
    decoded = [decode(e) for e in events]
    state = fold(events)
    await _check_summary(where, events, decoded, state)
    await _check_timeline(where, events, decoded)
    await _check_state(where, events, state)
    await _check_tool_calls(where, events, decoded, state)
    await _check_approvals(where, decoded, state)
    return state


async def _check_summary(s: Where, events: Sequence[RecordedEvent], decoded, state: SessionState):
    row = await s.pool.fetchrow(
        "SELECT * FROM session_summaries_v1 WHERE tenant = $1 AND session_id = $2", s.tenant, s.session_id
    )
    cp = state.last_checkpoint
    failures = sum(isinstance(e, ev.ToolCallFailed) for e in decoded)
    outcomes = [e.outcome for e in decoded if isinstance(e, ev.SessionCompleted)]
    got = {
        "status": row["status"],
        "version": row["last_version"],
        "position": row["last_position"],
        "counts": (row["message_count"], row["tool_call_count"], row["error_count"], row["tool_failure_count"]),
        "checkpoint": (row["last_checkpoint"], row["last_step"]),
        "workflow": row["workflow"],
        "title": row["title"],
        "forked_from": (row["forked_from"], row["forked_from_version"]),
        "outcome": row["outcome"],
        "parked": row["has_parked_events"],
    }
    want = {
        "status": state.status,
        "version": state.version,
        "position": events[-1].position,
        "counts": (state.counts.messages, state.counts.tool_calls, state.counts.errors, failures),
        "checkpoint": (cp["name"], cp["step"]) if cp else (None, None),
        "workflow": state.workflow,
        "title": getattr(decoded[0], "title", None),
        "forked_from": (state.forked_from["session_id"], state.forked_from["version"])
        if state.forked_from
        else (None, None),
        "outcome": outcomes[-1] if outcomes else None,
        "parked": False,
    }
    _equal("session summary", got, want)


async def _check_timeline(s: Where, events: Sequence[RecordedEvent], decoded) -> None:
    rows = await s.pool.fetch(
        "SELECT version, position, type, summary, agent FROM session_timeline_v1 "
        "WHERE tenant = $1 AND session_id = $2 ORDER BY version",
        s.tenant,
        s.session_id,
    )
    want = [(r.version, r.position, r.type, summary_of(e), agent_of(e)) for r, e in zip(events, decoded, strict=True)]
    _equal("timeline", [tuple(r) for r in rows], want)


async def _check_state(s: Where, events: Sequence[RecordedEvent], state: SessionState) -> None:
    rows = await s.pool.fetch(
        "SELECT section, value, owner, version FROM session_state_v1 WHERE tenant = $1 AND session_id = $2",
        s.tenant,
        s.session_id,
    )
    got = {r["section"]: r["value"] for r in rows}
    assert same_json(got, dict(state.sections)), (got, state.sections)
    _equal("section owners", {r["section"]: r["owner"] for r in rows}, dict(state.section_owners))
    last_change = {}
    audit_want = []
    before = SessionState()
    for recorded in events:
        after = evolve(before, recorded)
        event = decode(recorded)
        if isinstance(event, ev.StateSectionUpdated):
            last_change[event.section] = recorded.version
            old = before.sections.get(event.section)
            audit_want.append(
                (recorded.version, event.section, event.agent, event.changes, old, after.sections[event.section])
            )
        elif isinstance(event, ev.SessionForked):  # each section the fork starts with, as a change from nothing
            for name, value in sorted(after.sections.items()):
                last_change[name] = recorded.version
                audit_want.append((recorded.version, name, after.section_owners.get(name), value, None, value))
        before = after
    _equal("section versions", {r["section"]: r["version"] for r in rows}, last_change)
    audit = await s.pool.fetch(
        "SELECT version, section, agent, patch, old_value, new_value FROM state_audit_v1 "
        "WHERE tenant = $1 AND session_id = $2 ORDER BY version, section",
        s.tenant,
        s.session_id,
    )
    _equal("audit versions", [r["version"] for r in audit], [w[0] for w in audit_want])
    for row, want in zip(audit, audit_want, strict=True):
        _equal("audit row", (row["version"], row["section"], row["agent"]), want[:3])
        assert same_json([row["patch"], row["old_value"], row["new_value"]], list(want[3:])), (row, want)


def _expected_calls(events: Sequence[RecordedEvent], decoded) -> dict[str, dict]:
    calls: dict[str, dict] = {}
    for recorded, event in zip(events, decoded, strict=True):
        if isinstance(event, ev.ToolCallRequested):
            calls[event.call_id] = {
                "tool": event.tool,
                "agent": event.agent,
                "arguments": event.arguments,
                "status": "requested",
                "requested_version": recorded.version,
                "duration_ms": None,
                "error": None,
            }
        elif isinstance(event, ev.SessionForked):  # the source's open calls, open in the fork
            for call_id, tool in event.state["open_calls"].items():
                calls[call_id] = {
                    "tool": tool,
                    "agent": None,
                    "arguments": None,
                    "status": "requested",
                    "requested_version": recorded.version,
                    "duration_ms": None,
                    "error": None,
                }
        elif isinstance(event, (ev.ToolCallCompleted, ev.ToolCallFailed)):
            failed = isinstance(event, ev.ToolCallFailed)
            calls[event.call_id].update(
                status="failed" if failed else "completed",
                duration_ms=event.duration_ms,
                error=event.error if failed else None,
            )
    return calls


async def _check_tool_calls(s: Where, events, decoded, state: SessionState) -> None:
    rows = await s.pool.fetch(
        "SELECT call_id, tool, agent, arguments, status, requested_version, duration_ms, error "
        "FROM tool_calls_v1 WHERE tenant = $1 AND session_id = $2",
        s.tenant,
        s.session_id,
    )
    want = _expected_calls(events, decoded)
    got = {r["call_id"]: dict(r) for r in rows}
    _equal("tool calls", sorted(got), sorted(want))
    _equal("open tool calls", {c for c, w in want.items() if w["status"] == "requested"}, set(state.open_calls))
    for call_id, row in got.items():
        expected = want[call_id]
        if expected["duration_ms"] is None and expected["status"] != "requested":
            # Not reported by the tool: finished_at - requested_at, which the fold does not know.
            assert row["duration_ms"] is not None and row["duration_ms"] >= 0, row
            expected = {**expected, "duration_ms": row["duration_ms"]}
        assert same_json(row.pop("arguments"), expected["arguments"]), (row, expected)
        del expected["arguments"]
        _equal(f"tool call {call_id}", {k: row[k] for k in expected}, expected)


async def _check_approvals(s: Where, decoded, state: SessionState) -> None:
    rows = await s.pool.fetch(
        "SELECT approval_id, action, risk, requested_by, details, expires_at, status, reviewer, comment, decided_at "
        "FROM approvals_v1 WHERE tenant = $1 AND session_id = $2",
        s.tenant,
        s.session_id,
    )
    want: dict[str, dict] = {}
    for event in decoded:
        if isinstance(event, ev.ApprovalRequested):
            want[event.approval_id] = {
                "action": event.action,
                "risk": event.risk,
                "requested_by": event.requested_by,
                "details": event.details,
                "expires_at": event.expires_at,
                "status": "pending",
                "reviewer": None,
                "comment": None,
                "decided_at": None,
            }
        elif isinstance(event, ev.SessionForked):  # the source's pending approvals, pending in the fork
            for approval_id, expires in event.state["pending_approvals"].items():
                want[approval_id] = dict.fromkeys(("action", "risk", "requested_by", "details", "reviewer"))
                want[approval_id].update(
                    expires_at=datetime.fromisoformat(expires) if expires else None,
                    status="pending",
                    comment=None,
                    decided_at=None,
                )
        elif isinstance(event, ev.ApprovalDecided):
            want[event.approval_id].update(
                status=event.decision, reviewer=event.reviewer, comment=event.comment, decided_at=event.decided_at
            )
    got = {r["approval_id"]: dict(r) for r in rows}
    _equal("approvals", sorted(got), sorted(want))
    assert {a for a, w in want.items() if w["status"] == "pending"} == set(state.pending_approvals)
    for approval_id, row in got.items():
        expected = want[approval_id]
        assert same_json(row.pop("details"), expected.pop("details")), (row, expected)
        _equal(f"approval {approval_id}", {k: row[k] for k in expected}, expected)


async def check_tool_stats(pool, tenant: str) -> None:
    """tool_stats_v1 of the tenant against its events: a request counts a call of its tool, a
    result a completion or failure of the call's tool (for a call a fork inherited open, the tool
    its SessionForked names)."""
    rows = await pool.fetch(
        "SELECT session_id, type, data FROM events WHERE tenant = $1 "
        "AND (type LIKE 'ToolCall%' OR type = 'SessionForked') ORDER BY position",
        tenant,
    )
    tools: dict[tuple[str, str], str] = {}
    want: dict[str, Counter] = {}
    for row in rows:
        data = row["data"]
        if row["type"] == "SessionForked":
            tools.update(((row["session_id"], c), tool) for c, tool in data["state"]["open_calls"].items())
            continue
        key = (row["session_id"], data["call_id"])
        if row["type"] == "ToolCallRequested":
            tools[key] = data["tool"]
            want.setdefault(data["tool"], Counter())["calls"] += 1
        else:
            outcome = "failures" if row["type"] == "ToolCallFailed" else "completed"
            want.setdefault(tools[key], Counter())[outcome] += 1
    got = await pool.fetch("SELECT tool, calls, completed, failures FROM tool_stats_v1 WHERE tenant = $1", tenant)
    _equal(
        "tool stats",
        {r["tool"]: (r["calls"], r["completed"], r["failures"]) for r in got},
        {tool: (c["calls"], c["completed"], c["failures"]) for tool, c in want.items()},
    )
