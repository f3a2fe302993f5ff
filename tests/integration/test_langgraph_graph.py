"""A real LangGraph graph (deterministic nodes, no model) on AgentlogSaver over the real stack: a
refund that stops at an interrupt for a human approval and is resumed, its state history, a fork
made with update_state (the refund rejected instead) run to its end, a copied thread continued on
its own; every step is in the session's log (`agentlog history`) and on the query API (timeline,
graph checkpoints with JSON values as JSON). Once with the sync methods (graph.invoke), once with
the async ones (graph.ainvoke)."""

from __future__ import annotations

import json
import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from agentlog.client import AgentlogClient, AsyncAgentlogClient
from agentlog.integrations.langgraph import AgentlogSaver
from tests.integration.client_support import PATIENT, Keys, ThreadedStack
from tests.integration.replay_support import agentlog


class Refund(TypedDict, total=False):
    request: str
    amount: int
    approved: bool
    receipt: str
    reply: str
    steps: Annotated[list[str], operator.add]


def plan(state: Refund) -> Refund:
    return {"amount": 42, "steps": ["plan"]}


def approve(state: Refund) -> Refund:
    decision = interrupt({"action": f"refund {state['amount']} EUR", "risk": "high"})
    return {"approved": decision["approved"], "steps": ["approve"]}


def refund(state: Refund) -> Refund:
    return {"receipt": f"re_{state['amount']}", "steps": ["refund"]}


def answer(state: Refund) -> Refund:
    reply = f"Refunded ({state['receipt']})." if state.get("approved") else "We could not refund this charge."
    return {"reply": reply, "steps": ["answer"]}


def build(saver: AgentlogSaver):
    graph = StateGraph(Refund)
    for node in (plan, approve, refund, answer):
        graph.add_node(node.__name__, node)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "approve")
    graph.add_conditional_edges("approve", lambda s: "refund" if s["approved"] else "answer", ["refund", "answer"])
    graph.add_edge("refund", "answer")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=saver)


def saver_for(stack: ThreadedStack, key: str) -> AgentlogSaver:
    return AgentlogSaver(
        AgentlogClient(key, commands_url=stack.commands_url, queries_url=stack.queries_url, retry=PATIENT),
        async_client=AsyncAgentlogClient(
            key, commands_url=stack.commands_url, queries_url=stack.queries_url, retry=PATIENT
        ),
    )


@pytest.fixture
async def saver(client_stack: ThreadedStack, keys: Keys):
    made = saver_for(client_stack, keys.writer)
    yield made
    await made.aclose()


async def history_lines(stack: ThreadedStack, tenant: str, session_id: str) -> list[dict[str, Any]]:
    done = await agentlog("history", session_id, "--tenant", tenant, "--json", AGENTLOG_DATABASE_URL=stack.database_url)
    assert done.returncode == 0, done.stderr
    events: list[dict[str, Any]] = json.loads(done.stdout)["events"]
    return events


def test_a_graph_stops_for_approval_resumes_and_forks_with_update_state(saver: AgentlogSaver) -> None:
    graph = build(saver)
    thread = f"refund-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}

    stopped = graph.invoke({"request": "I was charged twice", "steps": []}, config)
    (asked,) = stopped["__interrupt__"]
    assert asked.value == {"action": "refund 42 EUR", "risk": "high"}
    waiting = graph.get_state(config)
    assert waiting.next == ("approve",) and waiting.values["steps"] == ["plan"]

    done = graph.invoke(Command(resume={"approved": True}), config)
    assert done["steps"] == ["plan", "approve", "refund", "answer"] and done["reply"] == "Refunded (re_42)."

    history = list(graph.get_state_history(config))
    assert [h.next for h in history] == [(), ("answer",), ("refund",), ("approve",), ("plan",), ("__start__",)]
    assert [h.metadata["step"] for h in history] == [4, 3, 2, 1, 0, -1]
    before_approval = history[3]

    # what if the reviewer had said no: a fork from the checkpoint that waited for approval
    forked = graph.update_state(before_approval.config, {"approved": False, "steps": ["approve"]}, as_node="approve")
    assert forked["configurable"]["checkpoint_id"] != history[0].config["configurable"]["checkpoint_id"]
    other = graph.invoke(None, forked)
    assert other["steps"] == ["plan", "approve", "answer"] and other["reply"] == "We could not refund this charge."
    assert graph.get_state(config).values["reply"] == "We could not refund this charge."  # the newest branch
    branch = list(graph.get_state_history(config))
    assert len(branch) == len(history) + 2  # the update and the fork's answer step
    assert branch[1].metadata["source"] == "update"
    assert (
        branch[1].parent_config["configurable"]["checkpoint_id"]
        == before_approval.config["configurable"]["checkpoint_id"]
    )
    # the approved branch is still there, by its checkpoint id
    assert graph.get_state(history[0].config).values["reply"] == "Refunded (re_42)."


async def test_every_step_is_in_the_log_and_on_the_query_api(
    saver: AgentlogSaver, client_stack: ThreadedStack, keys: Keys, stack_pool
) -> None:
    graph = build(saver)
    thread = f"refund-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}
    await graph.ainvoke({"request": "I was charged twice", "steps": []}, config)
    assert (await graph.aget_state(config)).next == ("approve",)
    done = await graph.ainvoke(Command(resume={"approved": True}), config)
    assert done["reply"] == "Refunded (re_42)."

    lines = await history_lines(client_stack, keys.tenant, thread)
    assert lines[0]["type"] == "SessionStarted" and lines[0]["summary"] == "workflow langgraph"
    steps = [line["summary"] for line in lines if line["type"] == "GraphCheckpointPut"]
    assert [s.split(":")[0] for s in steps] == [
        "graph step -1 (input)",
        "graph step 0 (loop)",
        "graph step 1 (loop)",
        "graph step 2 (loop)",  # after the resume: approve ran
        "graph step 3 (loop)",
        "graph step 4 (loop)",
    ]
    writes = [line["summary"] for line in lines if line["type"] == "GraphWritesPut"]
    assert "graph approve wrote __interrupt__=<bytes msgpack>" in writes, writes
    assert any(w.startswith("graph refund wrote receipt=re_42") for w in writes), writes

    async with AsyncAgentlogClient(
        keys.reader, commands_url=client_stack.commands_url, queries_url=client_stack.queries_url
    ) as reader:
        timeline = [entry async for entry in reader.timeline(thread, min_version=len(lines))]
        assert [e.summary for e in timeline] == [line["summary"] for line in lines]
        latest = (await reader.graph_checkpoints(thread, limit=1, min_version=len(lines))).items[0]
        values = latest.checkpoint["channel_values"]
        assert values["reply"] == {"kind": "json", "value": "Refunded (re_42).", "type": None, "base64": None}
        assert values["steps"]["value"] == ["plan", "approve", "refund", "answer"]  # a list: JSON as JSON
        assert latest.metadata["step"] == 4 and latest.thread_id == thread
        every = (await reader.graph_checkpoints(thread, min_version=len(lines))).items
        assert [c.metadata["step"] for c in every] == [4, 3, 2, 1, 0, -1]


async def test_a_copied_thread_continues_on_its_own(saver: AgentlogSaver) -> None:
    graph = build(saver)
    source, copy = f"refund-{uuid.uuid4().hex[:8]}", f"copy-{uuid.uuid4().hex[:8]}"
    await graph.ainvoke({"request": "charged twice", "steps": []}, {"configurable": {"thread_id": source}})
    await saver.acopy_thread(source, copy)  # a fork of the source's session, at its current version

    rejected = await graph.ainvoke(Command(resume={"approved": False}), {"configurable": {"thread_id": copy}})
    assert rejected["steps"] == ["plan", "approve", "answer"]
    approved = await graph.ainvoke(Command(resume={"approved": True}), {"configurable": {"thread_id": source}})
    assert approved["steps"] == ["plan", "approve", "refund", "answer"]
    copied = [h async for h in graph.aget_state_history({"configurable": {"thread_id": copy}})]
    assert [h.metadata["step"] for h in copied] == [3, 2, 1, 0, -1]  # the source's first steps, then its own
    assert all(h.config["configurable"]["thread_id"] == copy for h in copied)
    assert (await graph.aget_state({"configurable": {"thread_id": source}})).values["reply"] == "Refunded (re_42)."
