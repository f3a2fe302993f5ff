"""What AgentlogSaver sends for LangGraph's calls (over a mock transport): JSON scalars kept in
the checkpoint, other values once per new channel version (JSON as JSON, the rest as the
serializer's bytes), metadata as JSON, special writes at LangGraph's negative indexes, a thread id
that is not a session id mapped; concurrent writes of a thread coalesced into batches; and how an
answer becomes a CheckpointTuple."""

from __future__ import annotations

import base64
import datetime as dt
import json

import httpx
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.types import INTERRUPT

from agentlog.client import NO_RETRIES, AgentlogClient
from agentlog.integrations.langgraph import AgentlogSaver, thread_session_id
from tests.waiting import wait_until, wait_until_sync

AT = "2030-01-01T00:00:00+00:00"


def saver_with(answer: dict | None = None) -> tuple[AgentlogSaver, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.method == "GET":
            return httpx.Response(200, json=answer)
        return httpx.Response(200, json={"session_id": "s", "version": 3, "position": 30, "event_ids": []})

    client = AgentlogClient("k", transport=httpx.MockTransport(handle), retry=NO_RETRIES)
    return AgentlogSaver(client), sent


def test_put_keeps_scalars_inline_and_stores_new_versions_once() -> None:
    saver, sent = saver_with()
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"count": 3, "messages": [{"role": "user"}], "when": (1, 2), "old": [0]}
    checkpoint["channel_versions"] = {"count": "2.1", "messages": "2.2", "when": "2.3", "old": "1.0"}
    config = {"configurable": {"thread_id": "user 42", "checkpoint_ns": "", "checkpoint_id": "parent-1"}}
    metadata = {"source": "loop", "step": 1, "parents": {}, "pair": (1, 2)}
    stored = saver.put(config, checkpoint, metadata, {"count": "2.1", "messages": "2.2", "when": "2.3"})

    assert stored["configurable"] == {"thread_id": "user 42", "checkpoint_ns": "", "checkpoint_id": checkpoint["id"]}
    (request,) = sent  # one batch of one command: the thread's writes go one request at a time
    assert request.url.path == f"/v1/sessions/{thread_session_id('user 42')}/commands"
    (body,) = json.loads(request.content)["commands"]
    assert body["type"] == "put_graph_checkpoint"
    assert body["checkpoint"]["channel_values"] == {"count": 3}
    assert body["parent_checkpoint_id"] == "parent-1" and body["metadata"]["pair"] == [1, 2]
    blobs = {b["channel"]: b for b in body["blobs"]}
    assert set(blobs) == {"messages", "when"}  # "old" has no new version: stored before
    assert blobs["messages"]["value"] == {"kind": "json", "value": [{"role": "user"}]}
    assert blobs["when"]["value"]["kind"] == "bytes" and blobs["when"]["version"] == "2.3"


def test_put_writes_sends_special_channels_at_langgraphs_indexes() -> None:
    saver, sent = saver_with()
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "child:1", "checkpoint_id": "c1"}}
    saver.put_writes(config, [("a", 1), (INTERRUPT, {"ask": "ok?"})], "task-1", task_path="~p, node")
    (body,) = json.loads(sent[0].content)["commands"]
    assert [(w["idx"], w["channel"]) for w in body["writes"]] == [(0, "a"), (-3, INTERRUPT)]
    assert (body["checkpoint_ns"], body["task_id"], body["task_path"]) == ("child:1", "task-1", "~p, node")


def test_an_answer_becomes_a_checkpoint_tuple_with_values_loaded() -> None:
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    serde_tag, data = AgentlogSaver(AgentlogClient("k")).serde.dumps_typed(when)

    item = {
        "thread_id": "t",
        "checkpoint_ns": "",
        "checkpoint_id": "c2",
        "parent_checkpoint_id": "c1",
        "checkpoint": {
            "v": 4,
            "id": "c2",
            "channel_values": {
                "n": {"kind": "json", "value": 1},
                "when": {"kind": "bytes", "type": serde_tag, "base64": base64.b64encode(data).decode()},
                "gone": {"kind": "empty"},
            },
        },
        "metadata": {"step": 2},
        "pending_writes": [{"task_id": "k", "channel": "x", "idx": 0, "value": {"kind": "json", "value": [1]}}],
        "session_id": "t",
        "recorded_in": {"session_id": "t", "version": 5},
        "recorded_at": AT,
    }
    saver, sent = saver_with({"session_id": "t", "status": "open", "version": 5, "items": [item]})
    found = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert found is not None
    assert found.checkpoint["channel_values"] == {"n": 1, "when": when}
    assert found.parent_config == {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"}}
    assert found.pending_writes == [("k", "x", [1])]
    assert dict(sent[0].url.params) == {"checkpoint_ns": "", "limit": "1"}


def test_a_saver_needs_a_client() -> None:
    with pytest.raises(ValueError):
        AgentlogSaver()


def test_writes_queued_behind_one_in_flight_go_together_in_order() -> None:
    """Eight threads save at once: the first request carries one command, the next the seven
    that queued behind it, in submission order; every caller returns after its own is stored."""
    import threading

    release, first_in = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        batches.append([c["task_id"] for c in json.loads(request.content)["commands"]])
        if len(batches) == 1:
            first_in.set()
            release.wait(10)
        return httpx.Response(200, json={"session_id": "t", "version": len(batches), "position": 1, "event_ids": []})

    saver = AgentlogSaver(AgentlogClient("k", transport=httpx.MockTransport(handle), retry=NO_RETRIES))
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"}}
    first = threading.Thread(target=saver.put_writes, args=(config, [("a", 0)], "task-0"))
    first.start()
    assert first_in.wait(10)
    others = []
    for i in range(1, 8):
        thread = threading.Thread(target=saver.put_writes, args=(config, [("a", i)], f"task-{i}"))
        thread.start()
        others.append(thread)
        wait_until_sync(
            lambda i=i: sum(len(q) for q in saver._batches._queues.values()) >= i, message="the writes to queue"
        )  # queued behind the first
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert batches == [["task-0"], [f"task-{i}" for i in range(1, 8)]]


def test_a_batch_stays_within_its_count_and_size_bounds() -> None:
    from agentlog.client.commands import AddConversationItems
    from agentlog.integrations import batching

    small = [AddConversationItems(items=[{"n": i}]) for i in range(batching.MAX_COMMANDS + 6)]
    queue = list(small)
    assert batching._take(queue, lambda c: c) == small[: batching.MAX_COMMANDS] and queue == small[-6:]
    big = [AddConversationItems(items=[{"text": "x" * (batching.MAX_BYTES // 2)}]) for _ in range(3)]
    queue = list(big)
    assert len(batching._take(queue, lambda c: c)) == 1 and len(queue) == 2  # two would pass the bytes bound
    queue = [big[0]]
    assert batching._take(queue, lambda c: c) == [big[0]]  # one alone goes, whatever its size


async def test_a_save_chained_on_the_previous_one_joins_the_next_request() -> None:
    """LangGraph's aput awaits the previous aput, while a task's writes queue meanwhile: the
    chained save, submitted as the previous request's answer wakes it, goes with those writes in
    one request instead of a request of its own; and a stopped sender never leaves a caller waiting."""
    import asyncio

    from agentlog.client.commands import AddConversationItems
    from agentlog.integrations.batching import AsyncBatcher

    batches: list[list[int]] = []
    answer = asyncio.Event()

    async def send(session_id: str, commands: list) -> None:
        batches.append([c.items[0]["n"] for c in commands])
        if len(batches) == 1:
            await answer.wait()

    batcher = AsyncBatcher(send)

    def command(n: int) -> AddConversationItems:
        return AddConversationItems(items=[{"n": n}])

    first = asyncio.create_task(batcher.submit("s", command(1)))

    async def chained() -> None:  # as LangGraph's _checkpointer_put_after_previous
        await first
        await batcher.submit("s", command(3))

    follow = asyncio.create_task(chained())
    await wait_until(lambda: batches, timeout=5, interval=0, message="the first request")
    writes = asyncio.create_task(batcher.submit("s", command(2)))  # queued while 1 is in flight
    await wait_until(lambda: batcher._queues["s"], timeout=5, interval=0, message="write 2 queued")
    answer.set()
    await asyncio.gather(first, follow, writes)
    assert batches == [[1], [2, 3]]

    async def never(session_id: str, commands: list) -> None:
        await asyncio.Event().wait()

    stopped = AsyncBatcher(never)
    waiting = asyncio.create_task(stopped.submit("s", command(1)))
    # (the condition is a bool: wait_until awaits an awaitable answer, and the sender is a task)
    await wait_until(lambda: "s" in stopped._senders, timeout=5, interval=0, message="the sender")
    stopped._senders["s"].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
