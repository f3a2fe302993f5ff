"""Session summaries written by a batch's one MERGE per round (issue 10) are exactly those its
per-event upserts write: every kind of change (start, fork, counts, agents, checkpoints, closing,
a late start event), several sessions per batch, a session with several events in one batch
(rounds), one with more than MAX_ROUNDS (the executemany fallback), on the real Postgres."""

from __future__ import annotations

import datetime
import uuid

import pytest

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import to_stored
from projections.projector.applier import BatchApplier, bulk_rounds
from projections.read_models import summaries
from projections.read_models.catalog import PROJECTIONS
from projections.read_models.projection import BULK, MAX_ROUNDS, Write

T0 = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def session_events(k: int) -> list[ev.Event]:
    """A session's story; k varies the agents, counts and order between sessions."""
    agent = f"agent-{k % 3}"
    return [
        ev.SessionStarted(workflow=f"wf-{k}", title=f"case {k}", agents=["lead", agent]),
        ev.MessageAdded(role="user", content="hi"),
        ev.MessageAdded(role="assistant", content="hello", agent=f"helper-{k}"),
        ev.ToolCallRequested(call_id="t1", tool="search", arguments={"q": k}, agent=agent),
        ev.ToolCallFailed(call_id="t1", error="timeout"),
        ev.CheckpointSaved(name=f"step-{k}", step=k),
        ev.ErrorRecorded(message="boom", agent="lead"),
        ev.MessageAdded(role="assistant", content="again", agent=agent),
        ev.CheckpointSaved(name="later", step=k + 1),
        ev.SessionCompleted(outcome="resolved") if k % 2 else ev.SessionFailed(reason="gave up"),
    ]


def fork_events() -> list[ev.Event]:
    snap = {"workflow": "wf-f", "agents": ["x"], "counts": {"messages": 4, "tool_calls": 2, "errors": 1}}
    snap["last_checkpoint"] = {"name": "from-source", "step": 7}
    return [
        ev.SessionForked(source_session_id="source", source_version=9, state=snap),
        ev.MessageAdded(role="user", content="forked", agent="y"),
    ]


def recorded(tenant: str, stories: dict[str, list[ev.Event]]) -> list[RecordedEvent]:
    """The stories interleaved as a topic delivers them: each session in order."""
    out: list[RecordedEvent] = []
    position, versions = 0, dict.fromkeys(stories, 0)
    while any(versions[s] < len(events) for s, events in stories.items()):
        for sid, events in stories.items():
            if versions[sid] < len(events):
                event = events[versions[sid]]
                versions[sid] += 1
                position += 1
                type_, schema_version, data = to_stored(event)
                out.append(
                    RecordedEvent(
                        position=position,
                        session_id=sid,
                        version=versions[sid],
                        event_id=uuid.uuid4(),
                        type=type_,
                        schema_version=schema_version,
                        data=data,
                        tenant=tenant,
                        recorded_at=T0 + datetime.timedelta(seconds=position),
                        metadata={},
                    )
                )
    return out


def batches(records: list[RecordedEvent]) -> list[list[RecordedEvent]]:
    """Batches of 9 (several sessions, up to 3 events of one), then the busy session alone (more
    than MAX_ROUNDS events of one session: the executemany fallback)."""
    busy = [r for r in records if r.session_id == "busy"]
    rest = [r for r in records if r.session_id != "busy"]
    return [rest[i : i + 9] for i in range(0, len(rest), 9)] + [busy]


async def apply_all(pool, applier: BatchApplier, parts: list[list[RecordedEvent]]) -> None:
    for part in parts:
        async with pool.acquire() as conn, conn.transaction():
            await applier.apply(conn, part, savepoint=False)


async def summary_rows(pool, tenant: str) -> list[dict]:
    rows = await pool.fetch(f"SELECT * FROM {summaries.TABLE} WHERE tenant = $1 ORDER BY session_id", tenant)
    return [{k: v for k, v in dict(row).items() if k != "tenant"} for row in rows]


@pytest.fixture
def without_bulk_summaries():
    """The per-event upserts as an executemany, as before the bulk form."""
    saved = BULK.pop(summaries.UPSERT)
    yield
    BULK[summaries.UPSERT] = saved


async def test_the_bulk_form_writes_what_the_per_event_upserts_write(pool, request):
    stories = {f"s{k}": session_events(k) for k in range(4)}
    stories["fork"] = fork_events()
    # a late start: its status stays what later events set (the upsert's `unknown` rule)
    stories["late"] = [*session_events(9)[1:6], session_events(9)[0], *session_events(9)[6:]]
    stories["busy"] = session_events(5)
    bulk_tenant, plain_tenant = f"bulk-{uuid.uuid4().hex[:6]}", f"plain-{uuid.uuid4().hex[:6]}"

    bulk_parts = batches(recorded(bulk_tenant, stories))
    assert any(len(bulk_rounds(BULK[summaries.UPSERT], summary_writes(p)) or []) > 1 for p in bulk_parts)
    assert bulk_rounds(BULK[summaries.UPSERT], summary_writes(bulk_parts[-1])) is None  # > MAX_ROUNDS
    await apply_all(pool, BatchApplier(PROJECTIONS, "bulk-summaries-a", 3), bulk_parts)
    request.getfixturevalue("without_bulk_summaries")
    await apply_all(pool, BatchApplier(PROJECTIONS, "bulk-summaries-b", 3), batches(recorded(plain_tenant, stories)))

    bulk, plain = await summary_rows(pool, bulk_tenant), await summary_rows(pool, plain_tenant)
    assert len(bulk) == len(stories)
    assert bulk == plain
    by_id = {row["session_id"]: row for row in bulk}
    assert by_id["s1"]["agents"] == ["lead", "agent-1", "helper-1"] and by_id["s1"]["status"] == "completed"
    assert by_id["s1"]["message_count"] == 3 and by_id["s1"]["last_checkpoint"] == "later"
    assert by_id["fork"]["forked_from"] == "source" and by_id["fork"]["message_count"] == 5


def summary_writes(records: list[RecordedEvent]) -> list[Write]:
    from eventstore.registry import decode

    return [w for r in records for w in summaries.on_event(r, decode(r))]


def test_rounds_keep_each_rows_writes_in_order_and_at_most_one_per_round():
    bulk = BULK[summaries.UPSERT]
    writes = [Write(summaries.UPSERT, ("t", sid, n)) for n, sid in enumerate(["a", "b", "a", "c", "a", "b"])]
    rounds = bulk_rounds(bulk, writes)
    assert [[(w.args[1], w.args[2]) for w in r] for r in rounds] == [
        [("a", 0), ("b", 1), ("c", 3)],
        [("a", 2), ("b", 5)],
        [("a", 4)],
    ]
    many = [Write(summaries.UPSERT, ("t", "a", n)) for n in range(MAX_ROUNDS + 1)]
    assert bulk_rounds(bulk, many) is None
    assert len(bulk_rounds(bulk, many[:MAX_ROUNDS])) == MAX_ROUNDS
