"""`diff` of two points read from the event store, starting at fold snapshots: each side's state and
what its agents knew come from the nearest snapshot at or before its version
(eventstore/fold_snapshots.py), and only the events after the common steps are read.

Invariant: equal to eventstore/diff.py `diff` of the two lineages (tests/integration/
test_diff_cli.py and test_timetravel_api.py compare). A lineage is a list of segments (session,
first version, last version): a fork's is its source's, up to the fork point, then its own from
version 2 (its SessionForked is a marker), or its own alone when the source cannot be read, as
eventstore/lineage.py reads it. A step is the same on both sides exactly when it is the same
event, i.e. the same (session, version), so the common steps follow from the segments alone.
"""

from __future__ import annotations

from typing import Any

from eventstore.diff import SessionDiff, Side, comparable, diff_of
from eventstore.diff_forward import diff_forward
from eventstore.envelope import RecordedEvent
from eventstore.fold_snapshots import fold_to
from eventstore.large_reads import gc_paused
from eventstore.lineage import MAX_DEPTH, fork_origin
from eventstore.store import EventStore

Segment = tuple[str, int, int]  # (session id, first version, last version)


async def segments(store: EventStore, tenant: str, session_id: str, version: int, depth: int = 0) -> list[Segment]:
    """The steps of the session's lineage up to `version`, as segments, oldest first."""
    own = [(session_id, 1, version)]
    origin = fork_origin(await store.read_stream(tenant, session_id, from_version=1, to_version=1))
    if origin is None or depth >= MAX_DEPTH:
        return own
    source = await store.load(tenant, origin.source_session_id)
    if source is None or source.version == 0:
        return own  # the fork stands alone: its SessionForked is its first step
    upto = min(origin.source_version, source.version)
    upstream = await segments(store, tenant, origin.source_session_id, upto, depth + 1)
    return upstream + ([(session_id, 2, version)] if version >= 2 else [])


def common_steps(a: list[Segment], b: list[Segment]) -> int:
    common = 0
    for (sa, fa, la), (sb, fb, lb) in zip(a, b, strict=False):
        if (sa, fa) != (sb, fb):
            break
        common += min(la, lb) - fa + 1
        if la != lb:
            break
    return common


async def steps_after(store: EventStore, tenant: str, lineage: list[Segment], skip: int) -> list[RecordedEvent]:
    """The lineage's steps after the first `skip`, read from the store."""
    out: list[RecordedEvent] = []
    for session_id, first, last in lineage:
        n = last - first + 1
        if skip >= n:
            skip -= n
            continue
        out += await store.read_stream(tenant, session_id, from_version=first + skip, to_version=last)
        skip = 0
    return out


async def _view(store: EventStore, tenant: str, session_id: str, version: int) -> dict[str, Any]:
    point = await fold_to(store, tenant, session_id, version, with_blame=False, with_knowledge=True)
    assert point.knowledge is not None  # asked for
    return comparable(point.state, point.knowledge.transcript())


async def diff_on_store(store: EventStore, tenant: str, left: tuple[str, int], right: tuple[str, int]) -> SessionDiff:
    """The diff of `left` and `right` ((session, version), both existing in `tenant`)."""
    with gc_paused():  # two views as large as the session (eventstore/large_reads.py)
        return await _diff(store, tenant, left, right)


async def _diff(store: EventStore, tenant: str, left: tuple[str, int], right: tuple[str, int]) -> SessionDiff:
    a = await segments(store, tenant, *left)
    b = await segments(store, tenant, *right)
    common = common_steps(a, b)
    left_tail = await steps_after(store, tenant, a, common)
    right_tail = await steps_after(store, tenant, b, common)
    if left[0] == right[0]:
        found = await _forward(store, tenant, left, right, common, left_tail, right_tail)
        if found is not None:
            return found
    views = await _view(store, tenant, *left), await _view(store, tenant, *right)
    return diff_of(Side(*left), Side(*right), common, left_tail, right_tail, *views)


async def _forward(
    store: EventStore,
    tenant: str,
    left: tuple[str, int],
    right: tuple[str, int],
    common: int,
    left_tail: list[RecordedEvent],
    right_tail: list[RecordedEvent],
) -> SessionDiff | None:
    """Two versions of one session: the fold at the lower one, carried on to the higher with the
    events between (the higher side's steps after the common ones, eventstore/diff_forward.py)."""
    session_id = left[0]
    low, high = sorted((left[1], right[1]))
    point = await fold_to(store, tenant, session_id, low, with_blame=False, with_knowledge=True)
    assert point.knowledge is not None  # asked for
    events = right_tail if left[1] <= right[1] else left_tail
    if [(e.session_id, e.version) for e in events] != [(session_id, v) for v in range(low + 1, high + 1)]:
        return None
    return diff_forward(Side(*left), Side(*right), common, left_tail, right_tail, point.state, point.knowledge, events)
