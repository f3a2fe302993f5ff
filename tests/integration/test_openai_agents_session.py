"""AgentlogSession under the OpenAI Agents SDK's own Runner, driven by a scripted model (a Model
subclass returning canned responses: no network, tracing off), on the real stack: a run with a
tool call, a second run that gets the first one's history, pop and clear as events (the log
keeps every item), a fresh session object reading the same memory, and concurrent pops that each
remove the item they return."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, ModelResponse, RunConfig, Runner, Usage, function_tool
from agents.models.interface import Model
from agents.testing import assistant_message, function_call

from agentlog.client import AsyncAgentlogClient
from agentlog.integrations.openai_agents import AgentlogSession
from tests.integration.client_support import PATIENT, Keys, ThreadedStack
from tests.waiting import wait_until

NO_TRACING = RunConfig(tracing_disabled=True)


class CannedModel(Model):
    """Answers each call with the next canned output; remembers what each call was given."""

    def __init__(self, outputs: list[list[Any]]) -> None:
        self.outputs = list(outputs)
        self.inputs: list[list[dict[str, Any]]] = []

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                           *, previous_response_id, conversation_id, prompt) -> ModelResponse:  # fmt: skip
        given = [{"role": "user", "content": input}] if isinstance(input, str) else json.loads(json.dumps(input))
        self.inputs.append(given)
        return ModelResponse(output=self.outputs.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the tests run without streaming")


@function_tool
def lookup_charge(charge: str) -> str:
    """Look a card charge up."""
    return f"{charge}: 42.00 EUR, charged twice"


async def stored(pool, tenant: str, session_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await pool.fetch(
        "SELECT type, data FROM events WHERE tenant = $1 AND session_id = $2 ORDER BY version", tenant, session_id
    )
    return [(row["type"], row["data"]) for row in rows]


def texts(items: list[dict[str, Any]]) -> list[str]:
    """One line per item: role and text, or the item's type and its tool data."""
    lines = []
    for item in items:
        content = item.get("content")
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content)
        if item.get("type") == "function_call":
            lines.append(f"call {item['name']} {item['arguments']}")
        elif item.get("type") == "function_call_output":
            lines.append(f"output {item['output']}")
        else:
            lines.append(f"{item.get('role')}: {content}")
    return lines


async def test_the_sdk_runner_keeps_its_memory_in_agentlog_and_pop_and_clear_are_events(
    client: AsyncAgentlogClient, keys: Keys, stack_pool
) -> None:
    model = CannedModel(
        [
            [function_call("lookup_charge", {"charge": "ch_2"}, call_id="call-1")],
            [assistant_message("Refund issued for ch_2.", item_id="msg-1")],
            [assistant_message("You're welcome.", item_id="msg-2")],
        ]
    )
    agent = Agent(name="support", instructions="Help with billing.", model=model, tools=[lookup_charge])
    case = f"case-{uuid.uuid4().hex[:10]}"
    session = AgentlogSession(case, client, agent="support")

    first = await Runner.run(agent, "I was charged twice", session=session, run_config=NO_TRACING)
    assert first.final_output == "Refund issued for ch_2."
    second = await Runner.run(agent, "Thanks", session=session, run_config=NO_TRACING)
    assert second.final_output == "You're welcome."

    remembered = [
        "user: I was charged twice",
        'call lookup_charge {"charge":"ch_2"}',
        "output ch_2: 42.00 EUR, charged twice",
        "assistant: Refund issued for ch_2.",
    ]
    assert texts(model.inputs[2]) == [*remembered, "user: Thanks"]  # the second run got the first one's history
    assert texts(await session.get_items()) == [*remembered, "user: Thanks", "assistant: You're welcome."]
    assert texts(await session.get_items(limit=2)) == ["user: Thanks", "assistant: You're welcome."]
    elsewhere = AgentlogSession(case, client)  # another process, the same conversation
    assert len(await elsewhere.get_items()) == 6

    popped = await session.pop_item()
    assert texts([popped]) == ["assistant: You're welcome."]
    assert texts(await elsewhere.get_items()) == [*remembered, "user: Thanks"]
    await session.clear_session()
    assert await session.get_items() == [] and await session.pop_item() is None
    await session.clear_session()  # nothing left: no event

    log = await stored(stack_pool, keys.tenant, case)
    types = [t for t, _ in log]
    assert types[0] == "SessionStarted" and log[0][1]["workflow"] == "openai-agents"
    assert types[-2:] == ["ConversationItemPopped", "ConversationCleared"] and types.count("ConversationCleared") == 1
    added = [item for t, data in log if t == "ConversationItemsAdded" for item in data["items"]]
    assert texts(added) == [*remembered, "user: Thanks", "assistant: You're welcome."]  # the log keeps every item
    assert next(data["first_index"] for t, data in log if t == "ConversationItemsAdded") == 0
    timeline = [entry.summary async for entry in client.timeline(case)]
    assert timeline[-2:] == ["conversation item 5 popped", "conversation cleared"]
    assert timeline[1:6] == [
        "conversation item 0 added: user: I was charged twice",
        'conversation items 1-2 added: call lookup_charge {"charge":"ch_2"}; output ch_2: 42.00 EUR, charged twice',
        "conversation item 3 added: assistant: Refund issued for ch_2.",
        "conversation item 4 added: user: Thanks",
        "conversation item 5 added: assistant: You're welcome.",
    ]


async def test_concurrent_pops_each_remove_the_item_they_return(client_stack: ThreadedStack, keys: Keys) -> None:
    case = f"pops-{uuid.uuid4().hex[:10]}"
    clients = [
        AsyncAgentlogClient(
            keys.writer, commands_url=client_stack.commands_url, queries_url=client_stack.queries_url, retry=PATIENT
        )
        for _ in range(3)
    ]
    try:
        sessions = [AgentlogSession(case, c) for c in clients]
        items = [{"role": "user", "content": f"item {i}"} for i in range(6)]
        await sessions[0].add_items(items)
        await _caught_up(sessions)
        popped = await asyncio.gather(*(s.pop_item() for s in sessions for _ in range(2)))
        assert sorted(p["content"] for p in popped) == sorted(i["content"] for i in items)
        # another client popped last: this one reads it once the read model shows it
        await wait_until(lambda: _empty(sessions[0]), message="the popped conversation read as empty")
    finally:
        for c in clients:
            await c.aclose()


async def _has_six(session: AgentlogSession) -> bool:
    return len(await session.get_items()) == 6


async def _empty(session: AgentlogSession) -> bool:
    return await session.get_items() == []


async def _caught_up(sessions: list[AgentlogSession]) -> None:
    """Each client sees the six items (another client's writes: no read-your-writes bound of its own)."""
    for s in sessions:
        await wait_until(lambda s=s: _has_six(s), message="six items")


async def test_a_session_id_that_is_not_an_agentlog_id_is_mapped_and_kept(client: AsyncAgentlogClient) -> None:
    odd = f"user 42 / chat #{uuid.uuid4().hex[:6]}"
    session = AgentlogSession(odd, client)
    await session.add_items([{"role": "user", "content": "hello"}])
    assert session.agentlog_session_id.startswith("oa.x.")
    assert texts(await AgentlogSession(odd, client).get_items()) == ["user: hello"]


async def test_concurrent_first_writers_share_one_history(client_stack: ThreadedStack, keys: Keys, stack_pool) -> None:
    """openai/openai-agents-python#3820: sessions initialised concurrently split one history in
    two. Here six processes' first add_items race on a new session: one start, six numbered adds."""
    case = f"race-{uuid.uuid4().hex[:10]}"
    clients = [
        AsyncAgentlogClient(
            keys.writer, commands_url=client_stack.commands_url, queries_url=client_stack.queries_url, retry=PATIENT
        )
        for _ in range(6)
    ]
    try:
        await asyncio.gather(
            *(
                AgentlogSession(case, c).add_items([{"role": "user", "content": f"from {i}"}])
                for i, c in enumerate(clients)
            )
        )
        log = await stored(stack_pool, keys.tenant, case)
        assert [t for t, _ in log].count("SessionStarted") == 1
        added = sorted(
            (data["first_index"], data["items"][0]["content"]) for t, data in log if t == "ConversationItemsAdded"
        )
        assert [index for index, _ in added] == list(range(6))
        assert sorted(content for _, content in added) == sorted(f"from {i}" for i in range(6))

        async def all_six() -> bool:
            return len(await AgentlogSession(case, clients[0]).get_items()) == 6

        await wait_until(all_six, message="six items in one history")
    finally:
        for c in clients:
            await c.aclose()
