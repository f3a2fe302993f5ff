"""Diff: two versions of a session, and a fork against its source aligned at the fork point."""

from __future__ import annotations

from eventstore import events as ev
from eventstore.diff import Side, diff, state_of
from eventstore.state import fold

from .timetravel_events import fork_of, recorded

CASE = [
    ev.SessionStarted(agents=["billing"]),
    ev.StateSectionUpdated(agent="billing", section="billing", changes={"dup": "ch_2"}),
    ev.ApprovalRequested(approval_id="a1", action="refund", requested_by="policy"),
    ev.StateSectionUpdated(agent="billing", section="billing", changes={"refund": "re_7"}),
    ev.SessionCompleted(outcome="resolved"),
]


def test_diff_of_two_versions_lists_the_later_events_and_the_state_changes_as_pointers():
    events = recorded(CASE)
    result = diff(Side("case-42", 2, events[:2]), Side("case-42", 5, events))
    assert result.common_steps == 2
    assert [(p.step, p.left, p.right.version if p.right else None) for p in result.steps] == [
        (3, None, 3),
        (4, None, 4),
        (5, None, 5),
    ]
    out = result.to_json()["state"]
    assert [(c["path"], c["from"], c["to"]) for c in out["changed"]] == [("/status", "open", "completed")]
    added = {a["path"]: a["value"] for a in out["added"]}
    assert added.keys() == {"/pending_approvals/a1", "/sections/billing/refund", "/approvals/a1"}
    assert added["/sections/billing/refund"] == "re_7" and added["/approvals/a1"]["status"] == "pending"


def test_diff_of_a_fork_against_its_source_aligns_the_forks_events_with_the_ones_they_replace():
    source = recorded(CASE)
    _own, lineage = fork_of(
        source,
        3,
        [
            ev.StateSectionUpdated(agent="billing", section="billing", changes={"refund": "re_7"}),
            ev.StateSectionUpdated(agent="billing", section="billing", changes={"note": "retry"}),
        ],
    )
    result = diff(Side("case-42", 5, source), Side("case-42-b", 3, lineage))
    assert result.common_steps == 3
    steps = [(p.step, p.left.version, p.right.session_id, p.right.version, p.same) for p in result.steps]
    assert steps == [(4, 4, "case-42-b", 2, True), (5, 5, "case-42-b", 3, False)]
    state = result.to_json()["state"]
    assert {c["path"]: (c["from"], c["to"]) for c in state["changed"]}["/status"] == ("completed", "open")
    assert [a["path"] for a in state["added"]] == ["/sections/billing/note"]
    assert {c["path"] for c in state["changed"]} == {"/status", "/forked_from"}
    assert state["removed"] == []


def test_diff_of_a_fork_where_a_tool_answered_otherwise_shows_the_other_result():
    source = recorded(
        [
            ev.SessionStarted(agents=["billing"]),
            ev.ToolCallRequested(call_id="r1", tool="payments.refund"),
            ev.ToolCallCompleted(call_id="r1", result={"refund_id": "re_7"}),
        ]
    )
    _own, lineage = fork_of(source, 2, [ev.ToolCallFailed(call_id="r1", error="timeout")])
    result = diff(Side("case-42", 3, source), Side("case-42-b", 2, lineage)).to_json()
    assert result["common_steps"] == 2
    assert {a["path"]: a["value"] for a in result["state"]["added"]} == {"/tool_calls/r1/error": "timeout"}
    assert {r["path"] for r in result["state"]["removed"]} == {"/tool_calls/r1/result"}
    changed = {c["path"]: (c["from"], c["to"]) for c in result["state"]["changed"]}
    assert changed["/tool_calls/r1/status"] == ("completed", "failed")


def test_state_of_a_lineage_is_the_fold_of_the_forks_own_events():
    source = recorded(CASE)
    own, lineage = fork_of(source, 5, [ev.MessageAdded(role="user", content="again")])
    assert state_of(lineage) == fold(own)


def test_diff_of_a_version_with_itself_is_empty():
    events = recorded(CASE)
    result = diff(Side("case-42", 5, events), Side("case-42", 5, events))
    assert (result.common_steps, result.steps, bool(result.state)) == (5, [], False)
