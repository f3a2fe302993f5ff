"""What the time-travel tests share: a support case with model calls (each call referencing the
previous one, its answer and the session's messages, and a context compaction), written through
the real command API or the command handler, with the full request the agent had in hand at each
call; and a "what if the tool had answered otherwise" fork of the support case."""

from __future__ import annotations

from typing import Any

import httpx

from commands import models as cmd
from commands.fork import fork_session
from commands.handler import CommandHandler, CommandRequest
from eventstore.store import EventStore

SYSTEM = "You are the billing agent of ACME."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "payments.refund",
            "description": "refund a charge",
            "parameters": {"type": "object", "properties": {"charge": {"type": "string"}}},
        },
    }
]
USER = {"role": "user", "content": "I was charged twice, and I can't log in"}
TOOL_CALL = {
    "id": "refund-1",
    "type": "function",
    "function": {"name": "payments.refund", "arguments": '{"charge": "ch_2"}'},
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "refund-1", "content": '{"refund_id": "re_7"}'}
SUMMARY = {"role": "user", "content": "Summary: double charge ch_2; refund re_7 issued."}
FOLLOWUP = "And the login?"


async def post(http: httpx.AsyncClient, headers: dict, session_id: str, path: str, body: Any) -> dict:
    response = await http.post(f"/v1/sessions/{session_id}/{path}", json=body, headers=headers)
    assert response.status_code in (200, 201), (path, response.text)
    return response.json()


def model_call(call_id: str, messages: list, response: dict, **request: Any) -> dict:
    return {
        "call_id": call_id,
        "agent": "billing",
        "provider": "openai",
        "model": "gpt-4o",
        "request": {"messages": messages, **request},
        "response": response,
        "usage": {"input_tokens": 180, "output_tokens": 20, "cached_tokens": 120},
        "latency_ms": 700,
    }


def conversation() -> tuple[list[tuple[str, dict]], dict[str, dict]]:
    """The requests of the case, in order ((path, body); "" starts the session), and the full
    request the agent had in hand at each model call."""
    steps: list[tuple[str, dict]] = [
        ("", {"workflow": "support-case", "agents": ["billing"]}),
        ("messages", {"role": "user", "content": USER["content"]}),
    ]
    full: dict[str, dict] = {}
    params = {"temperature": 0}
    answer1 = {"content": None, "tool_calls": [TOOL_CALL], "finish_reason": "tool_calls"}
    full["m1"] = {"system": SYSTEM, "messages": [USER], "tools": TOOLS, "parameters": params}
    body = model_call("m1", [{"ref": "message", "index": 0}], answer1, system=SYSTEM, tools=TOOLS, parameters=params)
    steps.append(("model-calls", body))

    assistant1 = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
    full["m2"] = {**full["m1"], "messages": [USER, assistant1, TOOL_RESULT]}
    items = [{"ref": "call", "call_id": "m1"}, {"ref": "response", "call_id": "m1"}, TOOL_RESULT]
    answer2 = {"content": "Refunded. Now your login.", "finish_reason": "stop"}
    steps.append(
        ("model-calls", model_call("m2", items, answer2, system_from="m1", tools_from="m1", parameters=params))
    )

    replaced = [{"ref": "call", "call_id": "m2", "start": 0, "stop": 2}]
    steps.append(
        ("compactions", {"compaction_id": "k1", "agent": "billing", "replaced": replaced, "replacement": [SUMMARY]})
    )
    steps.append(("messages", {"role": "user", "content": FOLLOWUP}))

    assistant2 = {"role": "assistant", "content": "Refunded. Now your login."}
    full["m3"] = {**full["m1"], "messages": [SUMMARY, TOOL_RESULT, assistant2, {"role": "user", "content": FOLLOWUP}]}
    items = [
        {"ref": "compaction", "compaction_id": "k1"},
        {"ref": "call", "call_id": "m2", "start": 2},
        {"ref": "response", "call_id": "m2"},
        {"ref": "message", "index": 1},
    ]
    answer3 = {"content": "Your login is unlocked.", "finish_reason": "stop"}
    steps.append(
        ("model-calls", model_call("m3", items, answer3, system_from="m1", tools_from="m1", parameters=params))
    )
    return steps, full


async def record_conversation(http: httpx.AsyncClient, headers: dict, session_id: str) -> dict[str, dict]:
    """Record the case through the command API; the full requests by call id."""
    steps, full = conversation()
    for path, body in steps:
        if not path:
            created = await http.post("/v1/sessions", json={"session_id": session_id, **body}, headers=headers)
            assert created.status_code == 201, created.text
        else:
            await post(http, headers, session_id, path, body)
    return full


_COMMANDS = {
    "": cmd.StartSession,
    "messages": cmd.AddMessage,
    "model-calls": cmd.RecordModelCall,
    "compactions": cmd.CompactContext,
}


async def write_conversation(store: EventStore, tenant: str, session_id: str, actor: str = "key_billing") -> None:
    """The same case through the command handler (decide + append), for tests without the API."""
    handler = CommandHandler(store)
    for path, body in conversation()[0]:
        command = _COMMANDS[path](**body)
        await handler.handle(CommandRequest(tenant, session_id, [command], metadata={"actor": actor, "tenant": tenant}))


async def write_what_if(store: EventStore, tenant: str, source: str, fork_id: str, at_version: int) -> None:
    """Fork `source` before its refund result, and let the refund fail in the fork."""
    await fork_session(
        store, tenant, source, at_version, new_session_id=fork_id, metadata={"actor": "key_orchestrator"}
    )
    failed = cmd.FailToolCall(call_id="refund-1", error="card network timeout", duration_ms=30000, retriable=True)
    await CommandHandler(store).handle(
        CommandRequest(tenant, fork_id, [failed], metadata={"actor": "key_billing", "tenant": tenant})
    )
