"""read_all never skips a row that commits late with a lower position (safe high-water mark)."""

from __future__ import annotations

import uuid

from eventstore import db
from eventstore.store import NO_STREAM, EventStore
from tests.waiting import wait_until

APPEND = ("SELECT new_version, last_position FROM agentlog_append($1, $2, -1, $3, $4, $5, $6, "
          "'{}'::jsonb, '{}'::jsonb, 'open', NULL, NULL, NULL)")


async def _at_least(read, n: int):
    events = await read
    return events if len(events) >= n else None


def _event(content: str) -> tuple[str, int, dict]:
    return ("MessageAdded", 2, {"role": "user", "content": content, "agent": None})


async def test_read_all_holds_back_a_later_commit_while_an_earlier_transaction_is_open(
    fresh_database_url: str,
) -> None:
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    store = EventStore(pool)
    slow = await db.connect(fresh_database_url)
    try:
        transaction = slow.transaction()
        await transaction.start()
        early = await slow.fetchrow(APPEND, "t", "early", [uuid.uuid4()], ["MessageAdded"], [2],
                                    [_event("first")[2]])
        late = await store.append("t", "late", [_event("second")], expected_version=NO_STREAM)
        assert late.position > early["last_position"]

        assert await store.read_all(0, 100) == []  # the later commit waits for the open one

        await transaction.commit()
        # xids are cluster-wide: another database's open transaction may hold us back a moment.
        seen = await wait_until(lambda: _at_least(store.read_all(0, 100), 2), timeout=30,
                                message="both events to pass the high-water mark")
        assert [(e.session_id, e.position) for e in seen] == [
            ("early", early["last_position"]), ("late", late.position)]
    finally:
        await slow.close()
        await pool.close()


async def test_read_all_pages_in_position_order_after_the_cursor(fresh_database_url: str) -> None:
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=2)
    store = EventStore(pool)
    try:
        for i in range(5):
            await store.append("t", f"s{i}", [_event(f"m{i}"), _event(f"n{i}")],
                               expected_version=NO_STREAM)
        first = await wait_until(lambda: _at_least(store.read_all(0, 4), 4), timeout=30,
                                 message="events")
        rest = await wait_until(lambda: _at_least(store.read_all(first[-1].position, 100), 6),
                                timeout=30,
                                message="the rest")
        positions = [e.position for e in first + rest]
        assert positions == sorted(positions) and len(positions) == 10
        assert [e.data["content"] for e in first[:2]] == ["m0", "n0"]
    finally:
        await pool.close()
