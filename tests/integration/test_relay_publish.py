"""The relay against the real Postgres and Kafka: every event once per key in version order, late
commits with lower outbox ids (also while pipelining a backlog), wake-up, oversized records parked,
status."""

from __future__ import annotations

import asyncio
import random

import asyncpg
from aiokafka.partitioner import DefaultPartitioner

from outbox.status import outbox_status
from tests.integration.relay_support import (
    TopicReader,
    append,
    append_in_transaction,
    assert_complete_and_ordered,
    new_session,
    outbox_count,
    relay_settings,
    running_relay,
    shared_settings,
    versions_by_session,
)
from tests.waiting import wait_until


async def _writer(dsn: str, sessions: list[str], appends: int, expected: dict[str, int]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(appends):
            session_id = random.choice(sessions)
            count = random.randint(1, 4)
            version = await append(conn, session_id, count)
            expected[session_id] = max(expected.get(session_id, 0), version)
    finally:
        await conn.close()


async def test_relay_publishes_every_event_once_per_key_in_version_order_when_sessions_write_concurrently(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    sessions = [new_session() for _ in range(30)]
    expected: dict[str, int] = {}
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    async with (
        running_relay(settings, relay_settings(batch_size=50)) as relay,
        TopicReader(kafka_bootstrap, topic) as reader,
    ):
        await asyncio.gather(*(_writer(fresh_database_url, sessions, 60, expected) for _ in range(8)))
        total = sum(expected.values())

        async def all_published() -> bool:
            await reader.poll()
            return len(reader.records) >= total and await outbox_count(fresh_database_url) == 0

        await wait_until(all_published, timeout=60, message=f"{total} records and an empty outbox")
        assert relay.metrics.value("agentlog_relay_events_published_total") == total
    assert len(reader.records) == total, "no failure happened, so no duplicate is expected"
    assert_complete_and_ordered(reader.records, expected)


async def test_relay_publishes_late_commit_with_lower_outbox_id_in_session_order(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    late, early = new_session(), new_session()
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    slow = await asyncpg.connect(fresh_database_url)
    fast = await asyncpg.connect(fresh_database_url)
    try:
        async with running_relay(settings) as _relay, TopicReader(kafka_bootstrap, topic) as reader:
            tx = slow.transaction()
            await tx.start()
            await append_in_transaction(slow, late, 2)  # takes the lower outbox ids, commits last
            await append(fast, early, 3)

            async def published(session_id: str, n: int):
                await reader.poll()
                return sum(1 for r in reader.records if r.key == session_id.encode()) >= n

            await wait_until(lambda: published(early, 3), message="the early commit published")
            await tx.commit()
            await wait_until(lambda: published(late, 2), message="the late commit published")
            await append(fast, late, 1)
            await wait_until(lambda: published(late, 3), message="the next version published")
            # Deleted after the ack: at the end of the pass, or by the next read (a window later
            # while the relay is not listening after a load).
            await wait_until(lambda: outbox_count_is(fresh_database_url, 0), message="the outbox emptied")
    finally:
        await slow.close()
        await fast.close()
    assert_complete_and_ordered(reader.records, {late: 3, early: 3})


async def outbox_count_is(database_url: str, n: int) -> bool:
    return await outbox_count(database_url) == n


async def test_relay_publishes_late_commit_before_its_sessions_next_version_when_pipelining_a_backlog(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    """A row committing late with a lower id than rows already sent, followed by its session's next
    version, both while one pipelined pass works through a backlog: reading on with `id > last`
    would send the next version first (and the late row only on a later pass)."""
    late = new_session()
    backlog = {new_session(): 100 for _ in range(200)}
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    slow = await asyncpg.connect(fresh_database_url)
    fast = await asyncpg.connect(fresh_database_url)
    try:
        tx = slow.transaction()
        await tx.start()
        await append_in_transaction(slow, late, 1)  # the lowest outbox id, invisible for now
        async with fast.transaction():
            for session_id, count in backlog.items():
                await append_in_transaction(fast, session_id, count)
        relay_conf = relay_settings(batch_size=20, max_in_flight_batches=2)
        async with running_relay(settings, relay_conf) as relay, TopicReader(kafka_bootstrap, topic) as reader:
            await wait_until(
                lambda: relay.metrics.value("agentlog_relay_events_published_total") > 0,
                message="the relay reading past the uncommitted row",
            )
            await tx.commit()
            await append(fast, late, 1)  # version 2, with a higher id than the whole backlog
            assert await outbox_count(fresh_database_url) > 1000, "the pass must still be under way"
            total = sum(backlog.values()) + 2
            await wait_until(lambda: _empty(fresh_database_url), timeout=60, message="outbox drained")
            await wait_until(lambda: _polled(reader, total), message=f"{total} records")
    finally:
        await slow.close()
        await fast.close()
    assert_complete_and_ordered(reader.records, {**backlog, late: 2})


async def test_relay_puts_each_session_on_the_partition_the_default_partitioner_picks_for_its_key(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    """The relay chooses partitions itself (per-partition record batches): a key must land where
    a plain `send()` would put it, so relays of different versions agree on each session's partition."""
    sessions = [new_session() for _ in range(12)]
    conn = await asyncpg.connect(fresh_database_url)
    try:
        for session_id in sessions:
            await append(conn, session_id, 2)
    finally:
        await conn.close()
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    async with running_relay(settings), TopicReader(kafka_bootstrap, topic) as reader:
        await wait_until(lambda: _polled(reader, 2 * len(sessions)), message="all records")
    partitions = [0, 1, 2]  # the `topic` fixture's
    assert {(r.key, r.partition) for r in reader.records} == {
        (s.encode(), DefaultPartitioner()(s.encode(), partitions, partitions)) for s in sessions
    }


async def test_relay_parks_a_record_larger_than_the_producer_accepts_and_keeps_publishing(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    big, other = new_session(), new_session()
    conn = await asyncpg.connect(fresh_database_url)
    try:
        await append(conn, big, 1)
        await append(conn, big, 1, content="x" * 8000)
        await append(conn, big, 1)
        await append(conn, other, 2)
        relay_conf = relay_settings(max_request_bytes=4096, check_topic=False)
        async with running_relay(settings, relay_conf) as relay, TopicReader(kafka_bootstrap, topic) as reader:
            await wait_until(lambda: _empty(fresh_database_url), message="outbox drained")
            await wait_until(lambda: _polled(reader, 4), message="4 records")
            assert relay.metrics.value("agentlog_relay_parked_total") == 1
        parked = await conn.fetch("SELECT session_id, error FROM outbox_parked")
    finally:
        await conn.close()
    assert [(r["session_id"], "MessageSizeTooLargeError" in r["error"]) for r in parked] == [(big, True)]
    assert versions_by_session(reader.records) == {big: [1, 3], other: [1, 2]}


async def _empty(dsn: str) -> bool:
    return await outbox_count(dsn) == 0


async def _polled(reader: TopicReader, n: int) -> bool:
    return await reader.poll() >= n


async def test_outbox_status_reports_backlog_oldest_age_and_leader(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    pool = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await append(conn, new_session(), 5)
        before = await outbox_status(pool)
        assert before["backlog"] == 5 and before["oldest_age_seconds"] >= 0 and before["leader"] is None
        settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
        async with running_relay(settings, instance_id="relay-status-test") as relay:
            await wait_until(lambda: _empty(fresh_database_url), message="outbox drained")
            during = await outbox_status(pool)
            assert relay.is_leader
        after = await outbox_status(pool)
    finally:
        await pool.close()
    assert during["backlog"] == 0 and during["oldest_age_seconds"] == 0
    assert during["leader"]["instance_id"] == "relay-status-test"
    assert after["leader"] is None, "a relay that stopped cleanly removes its row"
