"""Leadership among relays in one process: one leader publishes, a standby takes over when the
leader stops or loses its lock connection, and order is kept across the handover."""

from __future__ import annotations

import asyncpg

from tests.integration.relay_support import (
    TopicReader,
    append,
    assert_complete_and_ordered,
    assert_duplicates_identical,
    new_session,
    outbox_count,
    running_relay,
    shared_settings,
)
from tests.waiting import wait_until


async def test_relay_standby_takes_over_when_leader_loses_its_lock_connection(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    sessions = [new_session() for _ in range(5)]
    expected = {s: 0 for s in sessions}
    conn = await asyncpg.connect(fresh_database_url)

    async def write(rounds: int) -> None:
        for i in range(rounds):
            s = sessions[i % len(sessions)]
            expected[s] = await append(conn, s, 2)

    try:
        async with (
            running_relay(settings, instance_id="relay-a") as first,
            running_relay(settings, instance_id="relay-b") as second,
            TopicReader(kafka_bootstrap, topic) as reader,
        ):
            leader = await wait_until(
                lambda: next((r for r in (first, second) if r.is_leader), None), message="a leader"
            )
            standby = second if leader is first else first
            await write(20)
            # Kill the leader's lock session from the server side, as a network cut or crash would.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'agentlog-relay-lock' AND pid IN "
                "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
            )
            await wait_until(lambda: standby.is_leader, timeout=15, message="the standby leads")
            await write(20)
            await wait_until(lambda: _drained(fresh_database_url), message="outbox drained")
            await wait_until(lambda: _polled(reader, sum(expected.values())), message="all records")
            await wait_until(lambda: not leader.is_leader, message="old leader stepped down")
    finally:
        await conn.close()
    assert_complete_and_ordered(reader.records, expected)
    assert_duplicates_identical(reader.records)


async def _drained(dsn: str) -> bool:
    return await outbox_count(dsn) == 0


async def _polled(reader: TopicReader, n: int) -> bool:
    await reader.poll()
    return reader.distinct_events() >= n
