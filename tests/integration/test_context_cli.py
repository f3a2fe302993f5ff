"""`agentlog context` as a separate process on sessions made through the real command API:
the request rebuilt exactly (references, compaction, a fork's lineage), the provider bodies, and
the errors a user sees."""

from __future__ import annotations

import json

from eventstore.store import EventStore
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    http,
    new_session_id,
    tenant,
)
from tests.integration.replay_support import agentlog
from tests.integration.timetravel_support import SYSTEM, model_call, post, record_conversation


async def context(database_url: str, tenant: str, *args: str):
    return await agentlog("context", *args, "--tenant", tenant, AGENTLOG_DATABASE_URL=database_url)


async def test_context_prints_each_request_exactly_as_the_agent_had_it(database_url, http, tenant) -> None:
    sid = new_session_id()
    full = await record_conversation(http, tenant.writer, sid)
    for call_id, expected in full.items():
        done = await context(database_url, tenant.name, sid, "--call", call_id, "--format", "json")
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["request"] == expected, call_id
        assert (out["call_id"], out["session_id"], out["model"]) == (call_id, sid, "gpt-4o")


async def test_context_at_version_takes_the_last_call_at_or_before_it(database_url, http, tenant, pool) -> None:
    sid = new_session_id()
    full = await record_conversation(http, tenant.writer, sid)
    events = await EventStore(pool).read_stream(tenant.name, sid)
    m2 = next(e.version for e in events if e.data.get("call_id") == "m2")
    done = await context(database_url, tenant.name, sid, "--at-version", str(m2 + 1), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["request"] == full["m2"]


async def test_context_in_openai_format_is_the_chat_completions_body(database_url, http, tenant) -> None:
    sid = new_session_id()
    full = await record_conversation(http, tenant.writer, sid)
    done = await context(database_url, tenant.name, sid, "--call", "m3", "--format", "openai")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["messages"] == [{"role": "system", "content": SYSTEM}, *full["m3"]["messages"]]
    assert (body["model"], body["tools"], body["temperature"]) == ("gpt-4o", full["m3"]["tools"], 0)
    anthropic = await context(database_url, tenant.name, sid, "--call", "m2", "--format", "anthropic")
    assert json.loads(anthropic.stdout)["messages"][1]["content"][0]["type"] == "tool_use"


async def test_context_of_a_fork_resolves_references_to_its_source(database_url, http, tenant, pool) -> None:
    sid = new_session_id()
    full = await record_conversation(http, tenant.writer, sid)
    events = await EventStore(pool).read_stream(tenant.name, sid)
    fork_id = new_session_id()
    done = await agentlog(
        "fork", sid, "--tenant", tenant.name, "--at-version", str(len(events)), "--new-id", fork_id,
        AGENTLOG_DATABASE_URL=database_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    other = {"role": "user", "content": "What if the refund had failed?"}
    items = [{"ref": "call", "call_id": "m3"}, {"ref": "response", "call_id": "m3"}, other]
    body = model_call("f1", items, {"content": "Then we retry."}, system_from="m1", tools_from="m1")
    await post(http, tenant.writer, fork_id, "model-calls", body)
    done = await context(database_url, tenant.name, fork_id, "--call", "f1", "--json")
    assert done.returncode == 0, done.stderr
    answer3 = {"role": "assistant", "content": "Your login is unlocked."}
    expected = {**full["m3"], "messages": [*full["m3"]["messages"], answer3, other], "parameters": {}}
    assert json.loads(done.stdout)["request"] == expected


async def test_context_view_for_people_lists_the_messages(database_url, http, tenant) -> None:
    sid = new_session_id()
    await record_conversation(http, tenant.writer, sid)
    done = await context(database_url, tenant.name, sid, "--call", "m2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"model call m2 of {sid} at version")
    assert "\x1b[" not in done.stdout  # no colour when not on a terminal
    assert any("tool call refund-1: payments.refund" in line for line in lines)
    assert lines[-1] == "response: stop: Refunded. Now your login."


async def test_context_errors_name_the_unknown_call_session_or_version(database_url, http, tenant) -> None:
    sid = new_session_id()
    await record_conversation(http, tenant.writer, sid)
    unknown_call = await context(database_url, tenant.name, sid, "--call", "m9")
    assert unknown_call.returncode == 1
    assert (
        unknown_call.stderr.strip() == "agentlog context: no model call 'm9' in this session (3 model calls recorded)"
    )
    unknown_session = await context(database_url, tenant.name, "nope-1", "--call", "m1")
    assert (unknown_session.returncode, unknown_session.stderr.strip()) == (
        1,
        "agentlog context: session 'nope-1' not found",
    )
    too_far = await context(database_url, tenant.name, sid, "--at-version", "99")
    assert too_far.returncode == 1 and "--at-version 99 is outside the session" in too_far.stderr
    before_any = await context(database_url, tenant.name, sid, "--at-version", "2")
    assert before_any.stderr.strip() == "agentlog context: no model call at or before version 2 of this session"
    neither = await context(database_url, tenant.name, sid)
    assert neither.returncode == 2


async def test_replay_carries_what_the_agents_knew_and_only_narrows_it(database_url, http, tenant) -> None:
    sid = new_session_id()
    await record_conversation(http, tenant.writer, sid)
    await post(http, tenant.writer, sid, "tool-calls", {"call_id": "refund-1", "tool": "payments.refund"})
    await post(http, tenant.writer, sid, "tool-calls/refund-1/result", {"status": "completed", "result": {"id": 7}})
    await post(http, tenant.writer, sid, "approvals", {"approval_id": "a1", "action": "refund", "requested_by": "p"})
    await post(http, tenant.writer, sid, "approvals/a1/decision", {"decision": "approved", "reviewer": "dana"})
    done = await agentlog("replay", sid, "--tenant", tenant.name, "--json", AGENTLOG_DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [m["content"] for m in out["conversation"]] == ["I was charged twice, and I can't log in", "And the login?"]
    assert [(c["call_id"], c["status"], c["result"]) for c in out["tool_calls"]] == [
        ("refund-1", "completed", {"id": 7})
    ]
    assert [(a["approval_id"], a["status"], a["reviewer"]) for a in out["approvals"]] == [("a1", "approved", "dana")]
    assert [m["call_id"] for m in out["model_calls"]] == ["m1", "m2", "m3"]
    assert out["state"]["counts"]["model_calls"] == 3

    only = await agentlog(
        "replay", sid, "--tenant", tenant.name, "--only", "tools", "--json", AGENTLOG_DATABASE_URL=database_url
    )
    assert set(json.loads(only.stdout)) - {"session_id", "tenant", "source", "target", "version", "last_version",
                                           "last_event"} == {"tool_calls"}  # fmt: skip
    table = await agentlog(
        "replay", sid, "--tenant", tenant.name, "--only", "conversation", AGENTLOG_DATABASE_URL=database_url
    )
    lines = table.stdout.splitlines()
    assert lines[2].split() == ["VERSION", "ROLE", "AGENT", "CONTENT"]
    assert lines[3].split()[1:4] == ["user", "-", "I"]
