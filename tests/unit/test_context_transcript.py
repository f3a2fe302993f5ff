"""What the agents knew at a version (eventstore/transcript.py): conversation, tool calls with
arguments and results, approvals with decisions, model-call summaries; a fork's inherited part."""

from __future__ import annotations

from datetime import UTC, datetime

from eventstore import events as ev
from eventstore.transcript import transcript

from .timetravel_events import fork_of, recorded

DECIDED_AT = datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
CASE = [
    ev.SessionStarted(agents=["billing"]),
    ev.MessageAdded(role="user", content="I was charged twice"),
    ev.ToolCallRequested(call_id="r1", tool="payments.refund", arguments={"charge": "ch_2"}, agent="billing"),
    ev.ToolCallCompleted(call_id="r1", result={"refund_id": "re_7"}, duration_ms=812),
    ev.ToolCallRequested(call_id="r2", tool="mail.send", arguments={"to": "c1"}),
    ev.ToolCallFailed(call_id="r2", error="smtp down", duration_ms=30),
    ev.ApprovalRequested(approval_id="a1", action="refund 42 EUR", requested_by="policy"),
    ev.ApprovalDecided(approval_id="a1", decision="approved", reviewer="dana", decided_at=DECIDED_AT),
    ev.ModelCallRecorded(
        call_id="m1",
        agent="billing",
        model="gpt-4o",
        request=ev.ModelRequest(messages=[{"ref": "message", "index": 0}], tools=[{"name": "refund"}]),
        response=ev.ModelResponse(content="Done.", finish_reason="stop"),
    ),
    ev.MessageAdded(role="assistant", content="Refunded.", agent="response"),
]


def test_transcript_at_the_end_holds_the_whole_conversation_calls_and_decisions():
    t = transcript(recorded(CASE)).to_json()
    assert [(m["version"], m["role"], m["content"]) for m in t["conversation"]] == [
        (2, "user", "I was charged twice"),
        (10, "assistant", "Refunded."),
    ]
    r1, r2 = t["tool_calls"]
    assert (r1["tool"], r1["arguments"], r1["status"], r1["result"], r1["duration_ms"]) == (
        "payments.refund",
        {"charge": "ch_2"},
        "completed",
        {"refund_id": "re_7"},
        812,
    )
    assert (r2["status"], r2["error"], r2["finished"]) == (
        "failed",
        "smtp down",
        {"session_id": "case-42", "version": 6},
    )
    [a1] = t["approvals"]
    assert (a1["status"], a1["reviewer"], a1["decided_at"]) == ("approved", "dana", DECIDED_AT.isoformat())
    [m1] = t["model_calls"]
    assert (m1["call_id"], m1["messages"], m1["tools"], m1["finish_reason"]) == ("m1", 1, 1, "stop")


def test_transcript_at_a_version_shows_only_what_was_known_then():
    t = transcript(recorded(CASE)[:7]).to_json()
    assert [c["status"] for c in t["tool_calls"]] == ["completed", "failed"]
    assert t["approvals"][0]["status"] == "pending" and t["model_calls"] == []
    assert len(t["conversation"]) == 1


def test_transcript_of_a_fork_includes_what_it_inherited():
    source = recorded(CASE)
    _own, lineage = fork_of(source, 4, [ev.MessageAdded(role="user", content="and the login?")])
    t = transcript(lineage).to_json()
    assert [(m["session_id"], m["content"]) for m in t["conversation"]] == [
        ("case-42", "I was charged twice"),
        ("case-42-b", "and the login?"),
    ]
    assert [c["call_id"] for c in t["tool_calls"]] == ["r1"]
