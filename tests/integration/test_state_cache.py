"""The command API's state cache against the real store: it makes commands cheaper, never changes
their answers. Two handlers with caches of their own stand for two command API processes writing
the same sessions; each cached state that another one moved on must be caught by the conditional
append and decided again on a fresh read."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import count

import pytest

from commands import models as cmd
from commands.handler import CommandHandler, CommandRequest
from commands.state_cache import StateCache
from eventstore.errors import ConcurrencyError, SessionClosedError
from eventstore.state import SessionState, fold
from eventstore.store import EventStore
from tests.factories import tenant_id
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    counts,
    http,
    new_session_id,
    start,
    tenant,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def handler(store: EventStore, cache: StateCache | None = None, ids: str = "id") -> CommandHandler:
    numbers = count()
    return CommandHandler(store, clock=lambda: NOW, new_id=lambda: f"{ids}{next(numbers)}", cache=cache)


def say(text: str) -> cmd.AddMessage:
    return cmd.AddMessage(role="user", content=text)


async def stored_state(store: EventStore, tenant: str, sid: str) -> SessionState:
    events = await store.read_stream(tenant, sid)
    return fold(events, SessionState.new(sid, tenant))


async def test_two_cached_writers_of_one_session_lose_nothing_and_agree_with_the_log(pool):
    store, t, sid = EventStore(pool), tenant_id(), new_session_id()
    a, b = StateCache(), StateCache()
    writers = [handler(store, a), handler(store, b)]
    await writers[0].handle(CommandRequest(t, sid, [cmd.StartSession()]))
    versions = []
    for i in range(30):
        writer = writers[1] if i % 3 == 0 else writers[0]  # runs of two on a, then one on b
        answer = await writer.handle(CommandRequest(t, sid, [say(f"m{i}")]))
        versions.append(answer.result.version)
    assert versions == list(range(2, 32))
    events = await store.read_stream(t, sid)
    assert [e.data["content"] for e in events[1:]] == [f"m{i}" for i in range(30)]
    assert (await counts(pool, t, sid)) == (31, 31, 31)
    loaded = await store.load_state(t, sid)
    assert loaded[0].to_snapshot() == (await stored_state(store, t, sid)).to_snapshot()
    assert a.hits - a.stale >= 9  # the second of each run on a was decided without a read
    assert a.stale >= 9 and b.stale >= 9  # each first one after the other writer was caught


async def test_a_stale_cached_open_session_does_not_take_a_message_after_another_writer_closed_it(pool):
    store, t, sid = EventStore(pool), tenant_id(), new_session_id()
    cache = StateCache()
    mine, other = handler(store, cache), handler(store)
    await mine.handle(CommandRequest(t, sid, [cmd.StartSession()]))
    await mine.handle(CommandRequest(t, sid, [say("hello")]))  # cached: open at 2
    await other.handle(CommandRequest(t, sid, [cmd.CompleteSession(outcome="done")]))
    with pytest.raises(SessionClosedError):
        await mine.handle(CommandRequest(t, sid, [say("too late")]))
    assert (await counts(pool, t, sid)) == (3, 3, 3)
    assert len(cache) == 0 and cache.stale == 1


async def test_a_repeat_decided_on_a_stale_state_answers_where_the_session_is(pool):
    store, t, sid = EventStore(pool), tenant_id(), new_session_id()
    cache = StateCache()
    mine, other = handler(store, cache), handler(store)
    await mine.handle(CommandRequest(t, sid, [cmd.StartSession()]))
    await mine.handle(CommandRequest(t, sid, [say("hello")]))
    closed = await other.handle(CommandRequest(t, sid, [cmd.CompleteSession(outcome="done")]))
    await other.handle(CommandRequest(t, sid, [cmd.CompleteSession(outcome="done")]))  # no-op
    again = await mine.handle(CommandRequest(t, sid, [cmd.CompleteSession(outcome="done")]))
    assert again.events == () or list(again.events) == []
    assert (again.result.version, again.result.position) == (closed.result.version, closed.result.position)
    assert (await counts(pool, t, sid)) == (3, 3, 3)


async def test_if_match_is_checked_against_the_session_not_the_cache(pool):
    store, t, sid = EventStore(pool), tenant_id(), new_session_id()
    cache = StateCache()
    mine, other = handler(store, cache), handler(store)
    await mine.handle(CommandRequest(t, sid, [cmd.StartSession()]))
    await mine.handle(CommandRequest(t, sid, [say("a")]))  # cached at 2
    await other.handle(CommandRequest(t, sid, [say("b")]))  # the session is at 3
    ok = await mine.handle(CommandRequest(t, sid, [say("c")], expected_version=3))  # not the cache's 2
    assert ok.result.version == 4  # cached at 4 again
    await other.handle(CommandRequest(t, sid, [say("d")]))  # the session is at 5
    with pytest.raises(ConcurrencyError) as moved:  # the cache's version, not the session's
        await mine.handle(CommandRequest(t, sid, [say("e")], expected_version=4))
    assert moved.value.extra["current_version"] == 5
    assert (await counts(pool, t, sid)) == (5, 5, 5)
    assert cache.stale == 2


async def test_a_cached_handler_writes_what_an_uncached_one_writes(pool):
    """The same commands, one session through a cache (interleaved with another writer's), one
    without: the same events and the same final state, but for the session id."""
    store, t = EventStore(pool), tenant_id()
    script: list[list[cmd.Command]] = [
        [cmd.StartSession(workflow="w", agents=["a1"])],
        [say("hi"), cmd.RequestToolCall(call_id="c1", tool="search", arguments={"q": "x"})],
        [cmd.UpdateStateSection(agent="a1", section="plan", changes={"step": 1, "todo": ["a", "b"]})],
        [cmd.CompleteToolCall(call_id="c1", result={"hits": 3})],
        [cmd.CompleteToolCall(call_id="c1", result={"hits": 3})],  # a repeat: no event
        [cmd.UpdateStateSection(agent="a1", section="plan", changes={"todo": None, "step": 2})],
        [cmd.RequestApproval(approval_id="ap1", action="deploy", requested_by="a1")],
        [cmd.DecideApproval(approval_id="ap1", decision="approved", reviewer="bob")],
        [cmd.SaveCheckpoint(name="cp", step=3)],
        [cmd.CompleteSession(outcome="done")],
    ]
    cached_sid, plain_sid = new_session_id(), new_session_id()
    cache = StateCache()
    cached, plain = handler(store, cache), handler(store)
    for commands in script:
        await cached.handle(CommandRequest(t, cached_sid, commands))
        await plain.handle(CommandRequest(t, plain_sid, commands))
    with pytest.raises(SessionClosedError):
        await cached.handle(CommandRequest(t, cached_sid, [say("after")]))
    one, two = await store.read_stream(t, cached_sid), await store.read_stream(t, plain_sid)
    assert [(e.type, e.data) for e in one] == [(e.type, e.data) for e in two]
    assert cache.hits - cache.stale >= len(script) - 2  # all but the start (a miss) and the refusal
    a, b = await store.load(t, cached_sid), await store.load(t, plain_sid)
    assert (a.version, a.status) == (b.version, b.status)
    views = [SessionState.from_snapshot(row.state).to_snapshot() for row in (a, b)]
    for view in views:
        view.pop("session_id")
    assert views[0] == views[1]


async def test_the_command_api_reports_its_cache_in_metrics(http, tenant):
    sid = await start(http, tenant)
    for i in range(3):
        answer = await http.post(
            f"/v1/sessions/{sid}/messages", headers=tenant.writer, json={"role": "user", "content": f"m{i}"}
        )
        assert answer.status_code == 200, answer.text
    text = (await http.get("/metrics")).text
    found = {
        m[0]: float(m[1])
        for m in re.findall(r'agentlog_commands_state_cache_lookups_total\{outcome="(\w+)"\} (\S+)', text)
    }
    assert set(found) == {"hit", "stale", "miss", "bypassed"}
    assert found["hit"] >= 2
    assert re.search(r"^agentlog_commands_state_cache_sessions \d", text, re.M)
