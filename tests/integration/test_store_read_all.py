"""read_all never skips a row that commits late: (transaction id, position) order and cursor,
held back at the oldest open transaction (safe high-water mark)."""

from __future__ import annotations

import uuid

from eventstore import db
from eventstore.store import NO_STREAM, EventStore, LogCursor
from tests.waiting import wait_until

APPEND = (
    "SELECT new_version, last_position FROM agentlog_append($1, $2, -1, $3, $4, $5, $6, "
    "'{}'::jsonb, '{}'::jsonb, 'open', NULL, NULL, NULL)"
)


def _event(content: str) -> tuple[str, int, dict]:
    return ("MessageAdded", 2, {"role": "user", "content": content, "agent": None})


async def _append_raw(conn, session_id: str, content: str) -> int:
    row = await conn.fetchrow(APPEND, "t", session_id, [uuid.uuid4()], ["MessageAdded"], [2], [_event(content)[2]])
    return row["last_position"]


def _read_at_least(store: EventStore, n: int, after: LogCursor | None = None, limit: int = 100):
    async def read():
        events, cursor = await store.read_all(after, limit)
        return (events, cursor) if len(events) >= n else None

    return read


async def test_read_all_holds_back_a_later_commit_while_an_earlier_transaction_is_open(
    fresh_database_url: str,
) -> None:
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    store = EventStore(pool)
    slow = await db.connect(fresh_database_url)
    try:
        transaction = slow.transaction()
        await transaction.start()
        early = await _append_raw(slow, "early", "first")
        late = await store.append("t", "late", [_event("second")], expected_version=NO_STREAM)
        assert late.position > early

        assert (await store.read_all(None, 100))[0] == []  # the later commit waits for the open one

        await transaction.commit()
        # xids are cluster-wide: another database's open transaction may hold us back a moment.
        seen, _ = await wait_until(
            _read_at_least(store, 2), timeout=30, message="both events to pass the high-water mark"
        )
        assert [(e.session_id, e.position) for e in seen] == [("early", early), ("late", late.position)]
    finally:
        await slow.close()
        await pool.close()


async def test_read_all_returns_a_lower_position_of_a_later_committing_transaction_after_the_cursor(
    fresh_database_url: str,
) -> None:
    """The race a position cursor loses: A takes its xid first, B draws a lower position, A
    commits and is read while B is open, then B commits below the position already read."""
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=2)
    store = EventStore(pool)
    first, second = await db.connect(fresh_database_url), await db.connect(fresh_database_url)
    try:
        a, b = first.transaction(), second.transaction()
        await a.start()
        await first.fetchval("SELECT pg_current_xact_id()")  # A's xid is taken before B's
        await b.start()
        low = await _append_raw(second, "b-session", "b draws first")
        high = await _append_raw(first, "a-session", "a draws second")
        assert low < high
        await a.commit()
        seen, cursor = await wait_until(
            _read_at_least(store, 1), timeout=30, message="A's event to pass the high-water mark"
        )
        assert [(e.session_id, e.position) for e in seen] == [("a-session", high)]

        await b.commit()
        late, after = await wait_until(
            _read_at_least(store, 1, cursor), timeout=30, message="B's lower position to be read after A's cursor"
        )
        assert [(e.session_id, e.position) for e in late] == [("b-session", low)]
        assert after > cursor and after.position == low
        assert (await store.read_all(after, 100))[0] == []
    finally:
        await first.close()
        await second.close()
        await pool.close()


async def test_read_all_pages_after_the_cursor_without_skipping_or_repeating(
    fresh_database_url: str,
) -> None:
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=2)
    store = EventStore(pool)
    try:
        for i in range(5):
            await store.append("t", f"s{i}", [_event(f"m{i}"), _event(f"n{i}")], expected_version=NO_STREAM)
        first, cursor = await wait_until(_read_at_least(store, 4, limit=4), timeout=30, message="events")
        assert len(first) == 4
        rest, end = await wait_until(_read_at_least(store, 6, cursor), timeout=30, message="the rest")
        positions = [e.position for e in first + rest]
        assert positions == sorted(positions) and len(set(positions)) == 10
        assert [e.data["content"] for e in first[:2]] == ["m0", "n0"]
        assert [(e.session_id, e.version) for e in rest[-2:]] == [("s4", 1), ("s4", 2)]
        assert await store.read_all(end, 100) == ([], end)
    finally:
        await pool.close()
