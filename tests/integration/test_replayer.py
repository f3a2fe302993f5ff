"""Re-running a scripted agent (a deterministic model function and two tools, no network) from the
record, on the real stack: a run recorded live; its fork where the refund answered otherwise
("what if the tool had answered X", docs/replay.md); the agent re-run over the fork with the
replayer: everything before the divergence served from the record, the overridden tool result
served from the fork, only the model call after it live; the two records compared: only the
intended divergence. And fail closed: the re-run without a live model stops at that call, naming it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from agentlog.client import AsyncAgentlogClient
from agentlog.integrations.replayer import (
    CallNotRecordedError,
    Record,
    RecordedModelResponse,
    RecordedToolFailure,
    Replayer,
)

SYSTEM = "You are the billing agent."
TOOLS = [{"name": "lookup_charge"}, {"name": "refund"}]


def scripted_model(request: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The 'model': its answer is a function of the last tool result it was given."""
    tool_results = [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]
    if not tool_results:
        return {"tool_calls": [{"id": "lookup-1", "name": "lookup_charge", "arguments": {"charge": "ch_2"}}]}
    last = tool_results[-1]
    if "duplicate_of" in last:
        return {"tool_calls": [{"id": "refund-1", "name": "refund", "arguments": {"charge": last["charge"]}}]}
    if "refund_id" in last:
        return {"content": f"Refunded ({last['refund_id']}).", "finish_reason": "stop"}
    return {
        "content": f"The refund was {last.get('status', 'not done')}; a person will call you.",
        "finish_reason": "stop",
    }


class LiveTools:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def lookup_charge(self, charge: str) -> dict[str, Any]:
        self.calls.append("lookup_charge")
        return {"charge": charge, "duplicate_of": "ch_1", "amount": "42.00 EUR"}

    def refund(self, charge: str) -> dict[str, Any]:
        self.calls.append("refund")
        return {"refund_id": "re_7"}


async def support_agent(model: Any, tool: Any) -> str:
    """The agent: ask the model, run the tools it asks for, until it answers. `model(request,
    call_id)` and `tool(name, arguments, call_id)` are how it reaches the world."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "I was charged twice"}]
    for step in range(1, 10):
        answer = await model({"system": SYSTEM, "messages": list(messages), "tools": TOOLS}, f"m{step}")
        if not answer.tool_calls:
            return str(answer.content)
        for call in answer.tool_calls:
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
            try:
                result = await tool(call["name"], call["arguments"], call["id"])
            except RecordedToolFailure as failed:
                result = {"error": failed.error}
            # sorted keys: the log (jsonb) gives an object back with its keys in its own order
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result, sort_keys=True)})
    raise AssertionError("the agent did not finish")


async def run_live(client: AsyncAgentlogClient, session: str, tools: LiveTools) -> tuple[str, dict[str, int]]:
    """The original run: live model and tools, every call recorded; the version of each request."""
    versions: dict[str, int] = {}

    async def model(request: dict[str, Any], call_id: str) -> RecordedModelResponse:
        answer = scripted_model(request, "scripted")
        await client.record_model_call(session, "scripted", request, response=answer, call_id=call_id)
        return RecordedModelResponse(call_id, "scripted", **answer)

    async def tool(name: str, arguments: dict[str, Any], call_id: str) -> Any:
        asked = await client.request_tool_call(session, name, arguments, call_id=call_id)
        versions[call_id] = asked.version
        result = getattr(tools, name)(**arguments)
        await client.complete_tool_call(session, call_id, result)
        return result

    return await support_agent(model, tool), versions


async def run_replayed(replayer: Replayer) -> str:
    async def model(request: dict[str, Any], call_id: str) -> RecordedModelResponse:
        return replayer.model(request, model="scripted", call_id=call_id)

    async def tool(name: str, arguments: dict[str, Any], call_id: str) -> Any:
        return replayer.tool(name, arguments, call_id=call_id)

    return await support_agent(model, tool)


async def record_and_fork(client: AsyncAgentlogClient) -> tuple[str, str, str]:
    """A recorded run, and its fork where the refund was declined: (source, fork, the run's answer)."""
    source = f"case-{uuid.uuid4().hex[:10]}"
    await client.start_session(workflow="support-case", session_id=source)
    answer, versions = await run_live(client, source, LiveTools())
    fork = f"{source}-what-if"
    await client.fork_session(source, at_version=versions["refund-1"], new_session_id=fork)
    await client.complete_tool_call(fork, "refund-1", {"status": "declined"})
    return source, fork, answer


async def test_replayer_reruns_a_fork_with_only_the_step_after_the_override_live(client: AsyncAgentlogClient) -> None:
    source, fork, original = await record_and_fork(client)
    assert original == "Refunded (re_7)."

    # the original, replayed: the same answer, every call served, nothing live, nothing left over
    again = Replayer(await Record.aload(client, source))
    assert await run_replayed(again) == original
    assert again.live == [] and again.unused() == []

    # the fork, re-run: the tools never run; the model runs live only where the fork's record ends
    tools = LiveTools()
    replayer = Replayer(
        await Record.aload(client, fork),
        live_tools={"lookup_charge": tools.lookup_charge, "refund": tools.refund},
        live_model=scripted_model,
    )
    rerun = await run_replayed(replayer)
    assert rerun == "The refund was declined; a person will call you."
    assert tools.calls == []
    assert replayer.served == [("model", "m1"), ("tool", "lookup-1"), ("model", "m2"), ("tool", "refund-1")]
    assert [(call.kind, call.call_id) for call in replayer.live] == [("model", "m3")]
    await client.run_commands(fork, replayer.live_commands())

    # the records compared: the same calls, the same inputs up to the override; the refund's result
    # and the answer after it are the only differences
    before, after = await Record.aload(client, source), await Record.aload(client, fork)
    assert [c.call_id for c in before.tool_calls] == [c.call_id for c in after.tool_calls] == ["lookup-1", "refund-1"]
    assert [c.call_id for c in before.model_calls] == [c.call_id for c in after.model_calls] == ["m1", "m2", "m3"]
    differing = [c.call_id for c, d in zip(before.tool_calls, after.tool_calls, strict=True) if c.result != d.result]
    assert differing == ["refund-1"]
    assert [c.arguments for c in before.tool_calls] == [c.arguments for c in after.tool_calls]
    for old, new in zip(before.model_calls[:2], after.model_calls[:2], strict=True):
        assert (old.request, old.response) == (new.request, new.response)
    assert before.model_calls[2].request.messages[:-1] == after.model_calls[2].request.messages[:-1]
    assert before.model_calls[2].response.content == "Refunded (re_7)."
    assert after.model_calls[2].response.content == rerun

    # and the fork, now complete, replays with nothing live
    complete = Replayer(after)
    assert await run_replayed(complete) == rerun
    assert complete.live == []


async def test_replayer_names_the_call_the_record_lacks(client: AsyncAgentlogClient) -> None:
    _, fork, _ = await record_and_fork(client)
    replayer = Replayer(await Record.aload(client, fork))  # nothing may run live
    with pytest.raises(CallNotRecordedError) as missing:
        await run_replayed(replayer)
    assert missing.value.call.startswith("model call m3 (scripted")
    assert "not in the record" in str(missing.value) and fork in str(missing.value)
    assert replayer.live == []
