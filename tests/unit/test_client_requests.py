"""What each client method sends (method, API, path, body, headers, query), that the methods cover
every route of the command and query APIs, read-your-writes bounds, and paging."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from agentlog.client import AgentlogClient, AsyncAgentlogClient
from agentlog.client import commands as cmd
from tests.unit.test_client_support import Harness, kind, write_answer  # noqa: F401  (fixture)

COMMANDS, QUERIES = "127.0.0.1:8000", "127.0.0.1:8001"
EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)

# method name, args, kwargs -> HTTP method, route template, body (None: no body checked), query
WRITES = [
    ("start_session", (), {"workflow": "support"}, "POST", "/v1/sessions", {"workflow": "support"}, {}),
    ("start_session", ("s-1",), {"agents": ["a"]}, "POST", "/v1/sessions", {"session_id": "s-1", "agents": ["a"]}, {}),
    ("add_message", ("s-1", "user", "hi"), {"agent": "a"}, "POST", "/v1/sessions/{session_id}/messages",
     {"role": "user", "content": "hi", "agent": "a"}, {}),
    ("request_tool_call", ("s-1", "refund", {"amount": 42}), {"call_id": "c1"}, "POST",
     "/v1/sessions/{session_id}/tool-calls", {"tool": "refund", "arguments": {"amount": 42}, "call_id": "c1"}, {}),
    ("complete_tool_call", ("s-1", "c1", {"ok": True}), {"duration_ms": 5}, "POST",
     "/v1/sessions/{session_id}/tool-calls/{call_id}/result",
     {"status": "completed", "result": {"ok": True}, "duration_ms": 5}, {}),
    ("fail_tool_call", ("s-1", "c1", "timeout"), {"retriable": True}, "POST",
     "/v1/sessions/{session_id}/tool-calls/{call_id}/result",
     {"status": "failed", "error": "timeout", "retriable": True}, {}),
    ("update_state", ("s-1", "billing", {"amount": None, "refunded": True}), {"agent": "billing"}, "PATCH",
     "/v1/sessions/{session_id}/state/{section}", {"amount": None, "refunded": True}, {"agent": "billing"}),
    ("save_checkpoint", ("s-1", "refunded"), {"step": 3}, "POST", "/v1/sessions/{session_id}/checkpoints",
     {"name": "refunded", "step": 3}, {}),
    ("request_approval", ("s-1", "refund 42"), {"requested_by": "policy", "risk": "high", "expires_at": EXPIRES},
     "POST", "/v1/sessions/{session_id}/approvals",
     {"action": "refund 42", "requested_by": "policy", "risk": "high", "expires_at": "2030-01-01T00:00:00+00:00"}, {}),
    ("decide_approval", ("s-1", "a1", "approved"), {"reviewer": "alice"}, "POST",
     "/v1/sessions/{session_id}/approvals/{approval_id}/decision", {"decision": "approved", "reviewer": "alice"}, {}),
    ("record_error", ("s-1", "boom"), {"kind": "tool"}, "POST", "/v1/sessions/{session_id}/errors",
     {"message": "boom", "kind": "tool"}, {}),
    ("record_compensation", ("s-1", "refund"), {"reason": "r"}, "POST", "/v1/sessions/{session_id}/compensations",
     {"step": "refund", "reason": "r"}, {}),
    ("complete_session", ("s-1",), {"outcome": "resolved"}, "POST", "/v1/sessions/{session_id}/complete",
     {"outcome": "resolved"}, {}),
    ("fail_session", ("s-1", "gave up"), {}, "POST", "/v1/sessions/{session_id}/fail", {"reason": "gave up"}, {}),
    ("cancel_session", ("s-1",), {}, "POST", "/v1/sessions/{session_id}/cancel", {}, {}),
    ("run_commands", ("s-1", [cmd.AddMessage(role="user", content="x"), cmd.SaveCheckpoint(name="n")]), {}, "POST",
     "/v1/sessions/{session_id}/commands",
     {"commands": [{"type": "add_message", "role": "user", "content": "x"}, {"type": "save_checkpoint", "name": "n"}]},
     {}),
    ("fork_session", ("s-1",), {"at_version": 3, "new_session_id": "s-2"}, "POST", "/v1/sessions/{session_id}/fork",
     {"at_version": 3, "new_session_id": "s-2"}, {}),
    ("record_model_call", ("s-1", "gpt-x", cmd.ModelRequest(messages=[{"ref": "message", "index": 0}], system="be brief")),
     {"response": cmd.ModelResponse(content="ok", finish_reason="stop"), "usage": {"input_tokens": 3}, "call_id": "m1",
      "latency_ms": 40}, "POST", "/v1/sessions/{session_id}/model-calls",
     {"model": "gpt-x", "request": {"messages": [{"ref": "message", "index": 0}], "system": "be brief"},
      "response": {"content": "ok", "finish_reason": "stop"}, "usage": {"input_tokens": 3}, "call_id": "m1",
      "latency_ms": 40}, {}),
    ("compact_context", ("s-1", [{"ref": "call", "call_id": "m1"}]),
     {"replacement": [{"role": "system", "content": "summary"}], "compaction_id": "k1"}, "POST",
     "/v1/sessions/{session_id}/compactions",
     {"replaced": [{"ref": "call", "call_id": "m1"}], "replacement": [{"role": "system", "content": "summary"}],
      "compaction_id": "k1"}, {}),
    ("put_graph_checkpoint", ("t-1",),
     {"thread_id": "t-1", "checkpoint_id": "c2", "checkpoint": {"v": 1, "channel_values": {"n": 1}},
      "parent_checkpoint_id": "c1", "metadata": {"step": 1},
      "blobs": [cmd.GraphBlob(channel="msgs", version="2.5", value=cmd.StoredValue(kind="bytes", type="msgpack",
                                                                                   base64="kQE="))]},
     "POST", "/v1/sessions/{session_id}/graph/checkpoints",
     {"thread_id": "t-1", "checkpoint_id": "c2", "checkpoint": {"v": 1, "channel_values": {"n": 1}},
      "checkpoint_ns": "", "parent_checkpoint_id": "c1", "metadata": {"step": 1},
      "blobs": [{"channel": "msgs", "version": "2.5", "value": {"kind": "bytes", "type": "msgpack", "base64": "kQE="}}]},
     {}),
    ("put_graph_writes", ("t-1",),
     {"thread_id": "t-1", "checkpoint_id": "c2", "task_id": "k", "task_path": "~p, node",
      "writes": [cmd.GraphWrite(idx=-3, channel="__interrupt__", value=cmd.StoredValue(kind="json", value={"a": 1}))]},
     "POST", "/v1/sessions/{session_id}/graph/writes",
     {"thread_id": "t-1", "checkpoint_id": "c2", "task_id": "k", "checkpoint_ns": "", "task_path": "~p, node",
      "writes": [{"idx": -3, "channel": "__interrupt__", "value": {"kind": "json", "value": {"a": 1}}}]}, {}),
    ("delete_graph_thread", ("t-1", "t-1"), {}, "POST", "/v1/sessions/{session_id}/graph/delete",
     {"thread_id": "t-1"}, {}),
    ("add_conversation_items", ("s-1", [{"role": "user", "content": "hi"}]), {"agent": "a"}, "POST",
     "/v1/sessions/{session_id}/conversation/items", {"items": [{"role": "user", "content": "hi"}], "agent": "a"}, {}),
    ("pop_conversation_item", ("s-1", 4), {"expected_version": 9}, "POST", "/v1/sessions/{session_id}/conversation/pop",
     {"index": 4}, {}),
    ("clear_conversation", ("s-1",), {}, "POST", "/v1/sessions/{session_id}/conversation/clear", {}, {}),
]  # fmt: skip
SESSION = {"session_id": "s-1", "status": "open", "version": 1}
PAGE = {**SESSION, "items": [], "next_cursor": None}
AT = "2030-01-01T00:00:00+00:00"
HEAD = {"session_id": "s-1", "version": 3, "last_version": 9}
STATE_AT = {
    **HEAD,
    "status": "open",
    "sections": {"billing": {"amount": 42}},
    "state": {"status": "open"},
    "conversation": [{"session_id": "s-1", "version": 2, "role": "user", "agent": None, "content": "hi"}],
    "tool_calls": [],
    "approvals": [],
    "model_calls": [],
}
EVENT = {
    "session_id": "s-1",
    "version": 3,
    "type": "MessageAdded",
    "recorded_at": AT,
    "actor": None,
    "agent": None,
    "summary": "user: hi",
    "event_id": "e-3",
    "position": 30,
}
DIFF = {
    "left": {"session_id": "s-1", "version": 2},
    "right": {"session_id": "f-1", "version": 2},
    "common_steps": 1,
    "state": {
        "added": [{"path": "/sections/b/x", "value": 1}],
        "removed": [],
        "changed": [{"path": "/status", "from": "open", "to": "completed"}],
    },
    "events": [{"step": 2, "same": False, "left": EVENT, "right": None}],
}
BLAME = {
    **HEAD,
    "section": "billing",
    "entries": [
        {
            "path": "/sections/billing/amount",
            "value": 42,
            "session_id": "s-1",
            "version": 3,
            "type": "StateSectionUpdated",
            "agent": "billing",
            "actor": None,
            "recorded_at": AT,
            "event_id": "e-3",
        }
    ],
}
CALL = {
    "call_id": "m1",
    "session_id": "s-1",
    "version": 4,
    "recorded_at": AT,
    "agent": "a",
    "provider": "openai",
    "model": "gpt-x",
    "messages": 2,
    "tools": 0,
    "finish_reason": "stop",
    "error": None,
    "tool_calls": 0,
    "usage": {"input_tokens": 3, "output_tokens": None, "cached_tokens": None},
    "latency_ms": 40,
}
MODEL_CALLS = {**HEAD, "items": [CALL], "next_cursor": None}
CONTEXT = {
    "session_id": "s-1",
    "version": 4,
    "recorded_at": AT,
    "call_id": "m1",
    "agent": "a",
    "provider": None,
    "model": "gpt-x",
    "request": {"system": None, "messages": [{"role": "user", "content": "hi"}], "tools": [], "parameters": {}},
    "response": {"content": "ok", "tool_calls": [], "finish_reason": "stop", "error": None},
    "usage": {"input_tokens": None, "output_tokens": None, "cached_tokens": None},
    "latency_ms": None,
}
GRAPH = {
    **SESSION,
    "items": [
        {
            "thread_id": "t-1",
            "checkpoint_ns": "",
            "checkpoint_id": "c2",
            "checkpoint": {"v": 1, "channel_values": {"n": {"kind": "json", "value": 1}}},
            "metadata": {"step": 1},
            "pending_writes": [{"task_id": "k", "channel": "x", "idx": 0, "value": {"kind": "empty"}}],
            "session_id": "t-1",
            "recorded_in": {"session_id": "t-1", "version": 2},
            "recorded_at": AT,
        }
    ],
}
ITEMS = {
    **SESSION,
    "total": 1,
    "items": [
        {"index": 0, "item": {"role": "user", "content": "hi"}, "agent": None, "added_version": 1, "recorded_at": AT}
    ],
}
FORKS = {
    "session_id": "s-1",
    "items": [
        {
            "session_id": "f-1",
            "forked_from_version": 2,
            "status": "open",
            "created_at": AT,
            "updated_at": AT,
            "last_version": 1,
        }
    ],
    "next_cursor": None,
}
QUERIES_TABLE = [
    ("get_session", ("s-1",), {}, "/v1/sessions/{session_id}", SESSION, {}),
    ("get_state", ("s-1",), {}, "/v1/sessions/{session_id}/state", {**SESSION, "sections": {}}, {}),
    ("list_sessions_page", (), {"status": "open", "agent": "billing", "limit": 5}, "/v1/sessions", PAGE,
     {"status": "open", "agent": "billing", "limit": "5"}),
    ("timeline_page", ("s-1",), {"limit": 10}, "/v1/sessions/{session_id}/timeline", PAGE, {"limit": "10"}),
    ("events_after", ("s-1", 3), {}, "/v1/sessions/{session_id}/events", {}, {"after_version": "3", "follow": "false"}),
    ("tool_calls_page", ("s-1",), {"status": "failed"}, "/v1/sessions/{session_id}/tool-calls", PAGE,
     {"status": "failed"}),
    ("audit_page", ("s-1",), {"section": "billing"}, "/v1/sessions/{session_id}/audit", PAGE, {"section": "billing"}),
    ("approvals_page", (), {"status": "pending"}, "/v1/approvals", PAGE, {"status": "pending"}),
    ("tool_stats", (), {}, "/v1/stats/tools", PAGE, {}),
    ("usage", (), {"session": "s-1", "group_by": "model", "since": datetime(2026, 1, 1, tzinfo=UTC)},
     "/v1/stats/usage", {"group_by": "model", "totals": {}, "groups": [], "truncated": False},
     {"session": "s-1", "group_by": "model", "since": "2026-01-01T00:00:00+00:00"}),
    ("state_at", ("s-1", 3), {}, "/v1/sessions/{session_id}/state", STATE_AT, {"at_version": "3"}),
    ("diff", ("s-1", 2), {"other": "f-1"}, "/v1/sessions/{session_id}/diff", DIFF, {"from": "2", "other": "f-1"}),
    ("diff", ("s-1", 2, 5), {}, "/v1/sessions/{session_id}/diff", DIFF, {"from": "2", "to": "5"}),
    ("blame", ("s-1",), {"section": "billing", "at_version": 4}, "/v1/sessions/{session_id}/blame", BLAME,
     {"section": "billing", "at_version": "4"}),
    ("model_calls_page", ("s-1",), {"limit": 2}, "/v1/sessions/{session_id}/model-calls", MODEL_CALLS, {"limit": "2"}),
    ("context", ("s-1", "m1"), {}, "/v1/sessions/{session_id}/context", CONTEXT, {"call_id": "m1"}),
    ("context", ("s-1",), {"at_version": 9}, "/v1/sessions/{session_id}/context", CONTEXT, {"at_version": "9"}),
    ("context_body", ("s-1", "openai", "m1"), {}, "/v1/sessions/{session_id}/context", {"model": "gpt-x"},
     {"call_id": "m1", "format": "openai"}),
    ("forks_page", ("s-1",), {"limit": 3}, "/v1/sessions/{session_id}/forks", FORKS, {"limit": "3"}),
    ("graph_checkpoints", ("t-1",), {"checkpoint_ns": "", "before": "c9", "metadata": {"source": "loop"}, "limit": 2},
     "/v1/sessions/{session_id}/graph/checkpoints", GRAPH,
     {"checkpoint_ns": "", "before": "c9", "metadata": '{"source":"loop"}', "limit": "2"}),
    ("all_graph_checkpoints", (), {"metadata": {"step": 1}}, "/v1/graph/checkpoints", {"items": []},
     {"metadata": '{"step":1}'}),
    ("conversation_items", ("s-1",), {"limit": 5}, "/v1/sessions/{session_id}/conversation/items", ITEMS,
     {"limit": "5"}),
]  # fmt: skip


def _matches(template: str, path: str) -> bool:
    pattern = re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None


@pytest.mark.parametrize(("name", "args", "kwargs", "method", "template", "body", "query"), WRITES)
def test_each_command_method_sends_its_route_body_and_an_idempotency_key(
    kind, name, args, kwargs, method, template, body, query
) -> None:
    harness = Harness(kind, lambda request: write_answer())
    harness(name, *args, **kwargs)
    (request,) = harness.requests
    assert (request.method, request.url.netloc.decode()) == (method, COMMANDS)
    assert _matches(template, request.url.path), (template, request.url.path)
    assert json.loads(request.content) == body
    assert dict(request.url.params) == query
    assert request.headers["authorization"] == "Bearer test-key"
    assert re.fullmatch(r"[0-9a-f]{32}", request.headers["idempotency-key"])
    expected_type = "application/merge-patch+json" if name == "update_state" else "application/json"
    assert request.headers["content-type"] == expected_type


@pytest.mark.parametrize(("name", "args", "kwargs", "template", "answer", "query"), QUERIES_TABLE)
def test_each_query_method_reads_its_route_with_its_filters(kind, name, args, kwargs, template, answer, query) -> None:
    harness = Harness(kind, lambda request: httpx.Response(200, json=answer))
    harness(name, *args, **kwargs)
    (request,) = harness.requests
    assert (request.method, request.url.netloc.decode()) == ("GET", QUERIES)
    assert _matches(template, request.url.path), (template, request.url.path)
    assert dict(request.url.params) == query
    assert "idempotency-key" not in request.headers


def test_the_methods_cover_every_route_of_both_apis() -> None:
    from commands.api.app import create_app as commands_app
    from commands.api.settings import CommandsSettings
    from eventstore.settings import Settings
    from projections.api.app import create_app as queries_app
    from projections.settings import QueriesSettings

    shared = Settings(database_url=SecretStr("postgresql://nobody@127.0.0.1:1/none"))
    ops = {"/healthz", "/readyz", "/metrics"}
    served = {
        (method.upper(), route)
        for app in (commands_app(CommandsSettings(), shared=shared), queries_app(QueriesSettings(), shared=shared))
        for route, methods in app.openapi()["paths"].items()
        for method in methods
        if route not in ops
    }
    covered = {(m, t) for _, _, _, m, t, _, _ in WRITES} | {("GET", t) for _, _, _, t, _, _ in QUERIES_TABLE}
    assert served - covered == set(), "a route without a client method: add it to agentlog/client"
    assert covered - served == set()


def test_if_match_is_the_expected_version_as_an_entity_tag(kind) -> None:
    harness = Harness(kind, lambda request: write_answer())
    harness("add_message", "s-1", "user", "hi", expected_version=12)
    harness("add_message", "s-1", "user", "hi")
    assert [r.headers.get("if-match") for r in harness.requests] == ['"12"', None]


def test_ids_are_percent_encoded_so_they_stay_one_path_segment(kind) -> None:
    harness = Harness(kind, lambda request: write_answer())
    harness("complete_tool_call", "s-1", "a/../b")
    assert harness.requests[0].url.raw_path == b"/v1/sessions/s-1/tool-calls/a%2F..%2Fb/result"


def test_a_read_after_a_write_asks_for_that_writes_version_of_that_session_only(kind) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=PAGE)
        return write_answer(session_id=request.url.path.split("/")[3], version=7, position=70)

    harness = Harness(kind, handle)
    harness("add_message", "s-1", "user", "hi")
    harness("get_session", "s-1")
    harness("timeline_page", "s-1")
    harness("get_session", "s-2")
    harness("get_session", "s-1", min_version=2)
    harness("list_sessions_page")
    harness("approvals_page")
    assert [dict(r.url.params) for r in harness.requests[1:]] == [
        {"min_version": "7"},
        {"min_version": "7"},
        {},
        {"min_version": "2"},
        {"min_position": "70"},
        {"min_position": "70"},
    ]


def test_read_your_writes_follows_the_highest_version_and_can_be_turned_off(kind) -> None:
    versions = iter([5, 3])
    harness = Harness(
        kind, lambda r: write_answer(version=next(versions)) if r.method != "GET" else httpx.Response(200, json=SESSION)
    )
    harness("add_message", "s-1", "user", "a")
    harness("add_message", "s-1", "user", "b")  # an answer of a lower version (a replay) does not lower it
    harness("get_session", "s-1")
    assert dict(harness.requests[-1].url.params) == {"min_version": "5"}
    off = Harness(
        kind,
        lambda r: write_answer() if r.method != "GET" else httpx.Response(200, json=SESSION),
        read_your_writes=False,
    )
    off("add_message", "s-1", "user", "a")
    off("get_session", "s-1")
    assert dict(off.requests[-1].url.params) == {}


def test_a_started_session_without_an_id_is_remembered_by_the_id_the_api_gave(kind) -> None:
    harness = Harness(
        kind,
        lambda r: (
            write_answer(session_id="s-made", version=1) if r.method != "GET" else httpx.Response(200, json=SESSION)
        ),
    )
    harness("start_session")
    harness("get_state", "s-made")
    assert dict(harness.requests[-1].url.params) == {"min_version": "1"}


def test_iterating_a_list_follows_next_cursor_to_the_last_page(kind) -> None:
    pages = {
        None: {"items": [{"session_id": "a", "status": "open", "version": 1}], "next_cursor": "c1"},
        "c1": {"items": [{"session_id": "b", "status": "open", "version": 1}], "next_cursor": "c2"},
        "c2": {"items": [], "next_cursor": None},
    }
    harness = Harness(kind, lambda request: httpx.Response(200, json=pages[request.url.params.get("cursor")]))
    sessions = harness("list_sessions", status="open")
    assert [s.session_id for s in sessions] == ["a", "b"]
    assert [dict(r.url.params) for r in harness.requests] == [
        {"status": "open"},
        {"status": "open", "cursor": "c1"},
        {"status": "open", "cursor": "c2"},
    ]


def test_answers_are_typed_and_keep_fields_a_newer_server_adds(kind) -> None:
    state = {
        **SESSION,
        "sections": {"billing": {"value": {"amount": 42}, "owner": "billing", "version": 3, "new_field": 1}},
    }
    harness = Harness(kind, lambda request: httpx.Response(200, json=state))
    answer = harness("get_state", "s-1")
    assert answer.sections["billing"].value == {"amount": 42}
    assert answer.sections["billing"].model_extra == {"new_field": 1}


def test_time_travel_answers_are_typed(kind) -> None:
    answers = {"state": STATE_AT, "diff": DIFF, "blame": BLAME, "model-calls": MODEL_CALLS, "context": CONTEXT}
    harness = Harness(kind, lambda request: httpx.Response(200, json=answers[request.url.path.split("/")[-1]]))
    state = harness("state_at", "s-1", 3)
    assert (state.version, state.last_version, state.conversation[0].content) == (3, 9, "hi")
    changed = harness("diff", "s-1", 2).state.changed[0]
    assert (changed.path, changed.old, changed.new) == ("/status", "open", "completed")
    assert harness("diff", "s-1", 2).events[0].left.summary == "user: hi"
    assert harness("blame", "s-1").entries[0].agent == "billing"
    (call,) = harness("model_calls", "s-1")
    assert (call.call_id, call.usage.input_tokens, call.latency_ms) == ("m1", 3, 40)
    assert harness("context", "s-1", "m1").request.messages == ({"role": "user", "content": "hi"},)


def test_time_travel_reads_fold_the_log_and_wait_for_no_projection_but_forks_do(kind) -> None:
    """They fold the event store, current when a write answered: no read-your-writes bound. The
    forks list is a read model, and a fork is a write to another session: it carries the
    position of this client's last write."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return write_answer(version=7, position=70)
        name = request.url.path.split("/")[-1]
        return httpx.Response(200, json={"state": STATE_AT, "blame": BLAME, "forks": FORKS}[name])

    harness = Harness(kind, handle)
    harness("add_message", "s-1", "user", "hi")
    harness("state_at", "s-1", 3)
    harness("blame", "s-1")
    harness("forks_page", "s-1")
    harness("forks_page", "s-1", min_position=5)
    assert [dict(r.url.params) for r in harness.requests[1:]] == [
        {"at_version": "3"},
        {},
        {"min_position": "70"},
        {"min_position": "5"},
    ]


def test_a_batch_carries_model_calls_and_compactions_with_their_nested_parts(kind) -> None:
    harness = Harness(kind, lambda request: write_answer())
    batch = [
        cmd.RecordModelCall(
            model="m", request=cmd.ModelRequest(tools_from="m0"), usage=cmd.ModelUsage(output_tokens=2)
        ),
        cmd.CompactContext(replaced=[{"ref": "message", "index": 0}], kind="truncated"),
    ]
    harness("run_commands", "s-1", batch)
    assert json.loads(harness.requests[0].content)["commands"] == [
        {"type": "record_model_call", "model": "m", "request": {"tools_from": "m0"}, "usage": {"output_tokens": 2}},
        {"type": "compact_context", "replaced": [{"ref": "message", "index": 0}], "kind": "truncated"},
    ]


def test_both_clients_have_the_same_methods_with_the_same_signatures() -> None:
    import inspect

    public = [n for n in dir(AgentlogClient) if not n.startswith("_") and n not in ("close",)]
    assert public == [n for n in dir(AsyncAgentlogClient) if not n.startswith("_") and n not in ("aclose",)]
    sync, other = AgentlogClient("k"), AsyncAgentlogClient("k")
    for name in public:
        assert inspect.signature(getattr(sync, name)) == inspect.signature(getattr(other, name)), name
        assert inspect.iscoroutinefunction(getattr(other, name)) or inspect.isasyncgenfunction(getattr(other, name))
    sync.close()
