"""What the agents knew, started at fold snapshots (issue 11, flat cost): the knowledge parts the
snapshots carry, read back through JSON as the store keeps them and carried on with the events
after the last, give at every version the same transcript (conversation, tool calls, approvals,
model-call summaries), the same diff view and the same rebuilt model requests (or the same error)
as folding the lineage from version 1, for sessions and for forks."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import events as ev
from eventstore.context import ContextIndex
from eventstore.diff import comparable, state_of
from eventstore.errors import AgentlogError
from eventstore.fold_snapshots import FoldPoint
from eventstore.knowledge import Knowledge, chain
from eventstore.transcript import transcript

from .test_fold_snapshots import START, STORABLE, _through_json, step
from .timetravel_events import fork_of, recorded

model_ids = st.sampled_from(["m1", "m2", "m3"])
references = st.one_of(
    st.builds(lambda i: {"ref": "message", "index": i}, st.integers(0, 3)),
    st.builds(lambda c: {"ref": "call", "call_id": c}, model_ids),
    st.builds(lambda c, a: {"ref": "call", "call_id": c, "start": a, "stop": a + 1}, model_ids, st.integers(0, 2)),
    st.builds(lambda c: {"ref": "response", "call_id": c}, model_ids),
    st.just({"ref": "compaction", "compaction_id": "k1"}),
    st.builds(lambda text: {"role": "user", "content": text}, st.text(STORABLE, max_size=3)),
)
referencing = st.one_of(
    st.builds(
        lambda mid, items, tools_from, system_from: ev.ModelCallRecorded(
            call_id=mid,
            model="m",
            request=ev.ModelRequest(
                messages=items,
                tools=[] if tools_from else [{"name": "search"}],
                tools_from=tools_from,
                system=None if system_from else "be brief",
                system_from=system_from,
            ),
            response=ev.ModelResponse(content=f"answer of {mid}"),
        ),
        model_ids,
        st.lists(references, max_size=3),
        st.one_of(st.none(), model_ids),
        st.one_of(st.none(), model_ids),
    ),
    st.builds(
        lambda items: ev.ContextCompacted(compaction_id="k1", replaced=[], replacement=items),
        st.lists(references, max_size=2),
    ),
)
rich_step = st.one_of(step, referencing)


def once(events: list[ev.Event], seen: set[str] | None = None) -> list[ev.Event]:
    """`events` without a second ModelCallRecorded of a call id or ContextCompacted of a compaction
    id (the decider refuses one with another payload; a request referencing its own id would then
    loop, and a compaction re-recorded as two references to itself doubles what it stands for each
    time: 2**25 messages)."""
    seen = set() if seen is None else seen
    kept = []
    for event in events:
        if isinstance(event, ev.ModelCallRecorded | ev.ContextCompacted):
            key = event.call_id if isinstance(event, ev.ModelCallRecorded) else f"compaction {event.compaction_id}"
            if key in seen:
                continue
            seen.add(key)
        kept.append(event)
    return kept


sessions = st.builds(lambda steps: once([START, *steps]), st.lists(rich_step, min_size=1, max_size=25))


def _contexts(index: ContextIndex) -> dict[str, Any]:
    """Each call's rebuilt request, or the error rebuilding it gives."""
    out: dict[str, Any] = {}
    for call_id in index.calls:
        try:
            out[call_id] = index.context(call_id).to_json()
        except AgentlogError as exc:
            out[call_id] = (type(exc).__name__, str(exc))
    return out


def _summaries(index: ContextIndex) -> Any:
    try:
        return index.summaries()
    except AgentlogError as exc:
        return (type(exc).__name__, str(exc))


def _written(point: FoldPoint) -> tuple[FoldPoint, dict[str, Any]]:
    """The point and its row's knowledge part as a reader gets them back (json as orjson)."""
    row = point.row("acme", "s")
    return point, orjson.loads(orjson.dumps(row[-1]))


def _assert_knowledge_from_snapshots_equals_from_version_1(lineage, own, every: int) -> None:
    before = len(lineage) - len(own)
    # the writer: one point carried on from version 1, a row every `every` versions
    writer = FoldPoint(0, state_of(lineage[:before]), _through_json(FoldPoint(0, state_of([]), _empty())).blame)
    writer.knowledge = Knowledge.of(lineage[:before])
    parts: list[tuple[int, dict[str, Any]]] = []
    for v in range(1, len(own) + 1):
        writer = writer.after(own[v - 1 : v])
        if v % every == 0:
            writer, part = _written(writer)
            parts.append((v, part))
        full = lineage[: before + v]
        expected = Knowledge.of(full)
        usable = chain([p for p in parts if p[0] <= v])
        base = parts[len(usable) - 1][0] if usable else 0
        started = Knowledge.from_parts(usable).add_all(own[base:v]) if usable else Knowledge.of(lineage[: before + v])
        from_1 = expected.transcript(model_calls=False).to_json()
        assert started.transcript(model_calls=False).to_json() == from_1
        assert _summaries(started.index) == _summaries(expected.index)
        assert _contexts(started.index) == _contexts(expected.index)
        if not isinstance(_summaries(expected.index), tuple):
            assert comparable(state_of(full), started.transcript()) == comparable(state_of(full), transcript(full))


def _empty():
    from eventstore.blame import BlameFold

    return BlameFold()


@settings(max_examples=80, deadline=None)
@given(events=sessions, every=st.integers(1, 5))
def test_knowledge_from_snapshot_parts_equals_knowledge_from_version_1_at_every_version(events, every):
    own = recorded(events)
    _assert_knowledge_from_snapshots_equals_from_version_1(own, own, every)


@settings(max_examples=40, deadline=None)
@given(source=sessions, later=st.lists(rich_step, max_size=10), data=st.data(), every=st.integers(1, 4))
def test_knowledge_of_a_fork_from_snapshot_parts_equals_knowledge_from_version_1(source, later, data, every):
    events = recorded(source)
    at = data.draw(st.integers(1, len(events)), label="fork at")
    seen = {e.call_id for e in source[:at] if isinstance(e, ev.ModelCallRecorded)}
    own, lineage = fork_of(events, at, once(later, seen))
    _assert_knowledge_from_snapshots_equals_from_version_1(lineage, own, every)


def test_a_missing_part_ends_the_chain_there():
    parts = [(2, {"after": 0}), (4, {"after": 2}), (8, {"after": 6}), (10, {"after": 8})]
    assert chain(parts) == [{"after": 0}, {"after": 2}]
    assert chain([(2, None), (4, {"after": 2})]) == []
