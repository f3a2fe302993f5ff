"""Whole relay processes: kill -9 in the middle of publishing under load, and a standby process
taking over from a killed leader. Counts at the end: every event present, per key in version order,
duplicates only as identical copies."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg

from tests.integration.relay_support import (
    RelayProcess,
    TopicReader,
    append,
    assert_complete_and_ordered,
    assert_duplicates_identical,
    new_session,
    outbox_count,
)
from tests.waiting import wait_until


class Load:
    """Appends to a set of sessions until stopped; `expected` holds each session's last version."""

    def __init__(self, dsn: str, sessions: int = 20) -> None:
        self.dsn, self.sessions = dsn, [new_session() for _ in range(sessions)]
        self.expected: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def _write(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                session_id = random.choice(self.sessions)
                version = await append(conn, session_id, random.randint(1, 5))
                self.expected[session_id] = max(self.expected.get(session_id, 0), version)
        finally:
            await conn.close()

    def start(self, writers: int = 3) -> None:
        self._tasks = [asyncio.create_task(self._write()) for _ in range(writers)]

    async def stop(self) -> int:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return sum(self.expected.values())


async def _drained(dsn: str) -> bool:
    return await outbox_count(dsn) == 0


async def _distinct(reader: TopicReader, n: int) -> bool:
    await reader.poll()
    return reader.distinct_events() >= n


async def test_relay_process_kill_9_mid_batch_under_load_loses_nothing_and_keeps_order(
    fresh_database_url: str, kafka_bootstrap: str, topic: str, tmp_path
) -> None:
    relay = RelayProcess(tmp_path / "relay.log", fresh_database_url, kafka_bootstrap, topic, batch_size=200)
    load = Load(fresh_database_url)
    async with TopicReader(kafka_bootstrap, topic) as reader:
        load.start()
        relay.start()
        for _ in range(3):
            floor = len(reader.records)
            await wait_until(lambda floor=floor: _distinct(reader, floor + 300), timeout=30, message="publishing")
            relay.kill()  # kill -9 while batches are in flight
            await wait_until(lambda: _backlog_at_least(fresh_database_url, 50), message="a backlog")
            relay = RelayProcess(relay.log_path, fresh_database_url, kafka_bootstrap, topic, batch_size=200).start()
        total = await load.stop()
        await wait_until(lambda: _drained(fresh_database_url), timeout=60, message="outbox drained")
        await wait_until(lambda: _distinct(reader, total), timeout=30, message=f"{total} distinct events")
        assert relay.stop() == 0, relay.log()[-3000:]
    assert_complete_and_ordered(reader.records, load.expected)
    duplicates = assert_duplicates_identical(reader.records)
    print(f"\n{total} events, {duplicates} duplicates after 3 kill -9")


async def _backlog_at_least(dsn: str, n: int) -> bool:
    return await outbox_count(dsn) >= n


async def test_relay_standby_process_takes_over_when_leader_is_killed(
    fresh_database_url: str, kafka_bootstrap: str, topic: str, tmp_path
) -> None:
    first = RelayProcess(tmp_path / "a.log", fresh_database_url, kafka_bootstrap, topic).start()
    await wait_until(first.is_leader, timeout=30, message="first relay leads")
    second = RelayProcess(tmp_path / "b.log", fresh_database_url, kafka_bootstrap, topic, standby_retry_ms=1000).start()
    await wait_until(lambda: "is STANDBY" in second.log(), timeout=30, message="second relay is standby")
    load = Load(fresh_database_url, sessions=10)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        async with TopicReader(kafka_bootstrap, topic) as reader:
            load.start(writers=2)
            await wait_until(lambda: _distinct(reader, 500), timeout=30, message="publishing")
            first.kill()
            killed_at = time.monotonic()
            marker = new_session()
            await append(conn, marker, 1)
            await wait_until(lambda: _has_key(reader, marker), timeout=30, message="standby publishes")
            takeover_s = time.monotonic() - killed_at
            total = await load.stop()
            await wait_until(lambda: _drained(fresh_database_url), timeout=60, message="outbox drained")
            await wait_until(lambda: _distinct(reader, total + 1), timeout=30, message="all events")
            assert second.is_leader()
            assert second.stop() == 0
    finally:
        await conn.close()
    assert_complete_and_ordered(reader.records, {**load.expected, marker: 1})
    assert_duplicates_identical(reader.records)
    print(f"\ntakeover: {takeover_s:.2f}s from kill -9 of the leader to a new event visible in Kafka")
    (tmp_path / "takeover.txt").write_text(f"{takeover_s:.3f}")


async def _has_key(reader: TopicReader, session_id: str) -> bool:
    await reader.poll()
    return any(r.key == session_id.encode() for r in reader.records)
