"""The store's diff of two versions of one session (eventstore/diff_store.py), which folds once to
the lower version from its fold snapshot and compares only what the events between touched
(eventstore/diff_forward.py), on the real store: byte for byte the diff of the two lineages read
from version 1 (eventstore/diff.py), either way round, for generated sessions (hypothesis), for
a session and its fork with snapshots every few events, and when it falls back to the whole
comparison (a model call id recorded twice)."""

from __future__ import annotations

import uuid

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import events as ev
from eventstore.diff import Side, diff
from eventstore.diff_store import diff_on_store
from eventstore.errors import AgentlogError
from eventstore.fold_snapshots import write_due
from eventstore.registry import to_stored
from eventstore.store import EventStore
from tests.integration.command_api_fixtures import new_session_id, tenant  # noqa: F401  (fixtures)
from tests.integration.test_fold_snapshots import write
from tests.integration.test_knowledge_snapshots import chained, lineage_of  # noqa: F401  (fixture)
from tests.unit.test_knowledge import sessions


async def _both(store: EventStore, tenant: str, left: tuple[str, int], right: tuple[str, int]) -> tuple[bytes, bytes]:
    """(the store's diff, the diff of the lineages from version 1), as JSON bytes or the error."""

    async def outcome(work):
        try:
            return orjson.dumps((await work()).to_json())
        except AgentlogError as exc:
            return type(exc).__name__.encode()

    async def whole():
        return diff(
            Side(*left, await lineage_of(store, tenant, *left)), Side(*right, await lineage_of(store, tenant, *right))
        )

    return await outcome(lambda: diff_on_store(store, tenant, left, right)), await outcome(whole)


async def test_two_versions_of_a_session_and_of_its_fork_either_way_round(chained, tenant):
    store, sid, fork_id = chained
    for session in (sid, fork_id):
        last = (await store.load(tenant.name, session)).version
        versions = sorted({1, 2, 3, 4, 5, 8, 9, 12, 13, 14, last - 1, last} & set(range(1, last + 1)))
        for a in versions:
            for b in versions:
                got, expected = await _both(store, tenant.name, (session, a), (session, b))
                assert got == expected, (session, a, b)


async def test_a_model_call_recorded_twice_falls_back_to_the_whole_comparison(pool, tenant):
    store, sid = EventStore(pool), new_session_id()
    call = ev.ModelCallRecorded(call_id="m1", model="m", request=ev.ModelRequest(messages=[], tools=[{"name": "s"}]))
    later = ev.ModelCallRecorded(call_id="m2", model="m", request=ev.ModelRequest(messages=[], tools_from="m1"))
    again = ev.ModelCallRecorded(call_id="m1", model="m", request=ev.ModelRequest(messages=[], tools=[]))
    events = [ev.SessionStarted(agents=["a"]), call, later, ev.MessageAdded(role="user", content="hi"), again]
    await store.append(tenant.name, sid, [to_stored(e) for e in events], expected_version=0)  # as the log may hold
    await write_due(store, tenant.name, sid, len(events), 2)
    for a, b in ((3, 5), (5, 2), (1, 5)):
        got, expected = await _both(store, tenant.name, (sid, a), (sid, b))
        assert got == expected, (a, b)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(events=sessions, every=st.integers(1, 6), data=st.data())
async def test_the_store_diff_equals_the_diff_of_the_lineages_for_generated_sessions(pool, tenant, events, every, data):
    store, sid = EventStore(pool), f"gen-{uuid.uuid4().hex[:10]}"
    await write(store, tenant.name, sid, events)
    await write_due(store, tenant.name, sid, len(events), every)
    for _ in range(3):
        a = data.draw(st.integers(1, len(events)), label="a")
        b = data.draw(st.integers(1, len(events)), label="b")
        got, expected = await _both(store, tenant.name, (sid, a), (sid, b))
        assert got == expected, (a, b)
