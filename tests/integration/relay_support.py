"""Test support for relay tests: write events the way an append does (streams row lock first, then
events and outbox rows in the same transaction; plain SQL matching schema 0001 until the store
lands), read a topic back from the beginning, and check per-session order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from eventstore.envelope import from_envelope
from eventstore.settings import Settings
from outbox.relay import Relay
from outbox.settings import RelaySettings
from tests.factories import random_id

LOCK_STREAM = """
INSERT INTO streams (tenant, session_id, version, status) VALUES ($1, $2, $3, 'open')
ON CONFLICT (tenant, session_id) DO UPDATE SET version = streams.version + $3, updated_at = now()
RETURNING version
"""
INSERT_EVENTS = """
INSERT INTO events (tenant, session_id, version, event_id, type, schema_version, data, metadata)
SELECT $1, $2, v, gen_random_uuid(), 'MessageAdded', 1,
       jsonb_build_object('role', 'agent', 'content', $4::text, 'n', v), '{"correlation_id": "c"}'::jsonb
FROM generate_series($3::bigint, $5::bigint) AS v
RETURNING position
"""
INSERT_OUTBOX = """
INSERT INTO outbox (position, tenant, session_id) SELECT p, $2, $3 FROM unnest($1::bigint[]) AS p ORDER BY p
"""


async def append(
    conn: asyncpg.Connection, session_id: str, count: int = 1, *, tenant: str = "t1", content: str = "hello"
) -> int:
    """Append `count` events to a session in one transaction; returns the new version."""
    async with conn.transaction():
        return await append_in_transaction(conn, session_id, count, tenant=tenant, content=content)


async def append_in_transaction(
    conn: asyncpg.Connection, session_id: str, count: int = 1, *, tenant: str = "t1", content: str = "hello"
) -> int:
    version = await conn.fetchval(LOCK_STREAM, tenant, session_id, count)
    positions = [
        r["position"]
        for r in await conn.fetch(INSERT_EVENTS, tenant, session_id, version - count + 1, content, version)
    ]
    await conn.execute(INSERT_OUTBOX, positions, tenant, session_id)
    return version


def relay_settings(**overrides: Any) -> RelaySettings:
    values: dict[str, Any] = {
        "poll_interval_ms": 200,
        "standby_retry_ms": 200,
        "heartbeat_ms": 200,
        "retry_backoff_max_ms": 1000,
        "delivery_timeout_ms": 5000,
        "request_timeout_ms": 5000,
    }
    values.update(overrides)
    return RelaySettings(**values)


def shared_settings(database_url: str, bootstrap: str, topic: str) -> Settings:
    return Settings(database_url=database_url, kafka_bootstrap_servers=bootstrap, kafka_topic=topic)


@asynccontextmanager
async def running_relay(settings: Settings, relay: RelaySettings | None = None, **kwargs):
    """A relay running as a task of this event loop; stopped and awaited on exit."""
    stop = asyncio.Event()
    async with Relay(settings, relay or relay_settings(), **kwargs) as instance:
        task = asyncio.create_task(instance.run(stop))
        instance.task = task  # type: ignore[attr-defined]
        try:
            yield instance
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)


async def outbox_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM outbox")
    finally:
        await conn.close()


class TopicReader:
    """Reads a topic from the beginning (no group): every record ever written, in partition order."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._topic = topic

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._topic)
        if not partitions:
            partitions = await self._consumer._client._wait_on_metadata(self._topic)
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._consumer.stop()

    async def poll(self) -> int:
        for batch in (await self._consumer.getmany(timeout_ms=200, max_records=5000)).values():
            self.records.extend(batch)
        return len(self.records)

    def distinct_events(self) -> int:
        return len({dict(r.headers)["event_id"] for r in self.records})


def versions_by_session(records: list) -> dict[str, list[int]]:
    """Per key, versions of each event's first copy in topic order (duplicates dropped)."""
    seen: set[str] = set()
    out: dict[str, list[int]] = defaultdict(list)
    for record in records:
        event = from_envelope(record.value)
        assert record.key == event.session_id.encode()
        assert dict(record.headers)["event_id"] == str(event.event_id).encode()
        if str(event.event_id) in seen:
            continue
        seen.add(str(event.event_id))
        out[event.session_id].append(event.version)
    return out


def assert_complete_and_ordered(records: list, expected: dict[str, int]) -> None:
    """Every session holds versions 1..N in order (after dropping duplicates) and nothing else."""
    got = versions_by_session(records)
    assert set(got) == set(expected), f"sessions differ: {set(got) ^ set(expected)}"
    for session_id, last in expected.items():
        assert got[session_id] == list(range(1, last + 1)), f"{session_id}: {got[session_id][:50]}"


def assert_duplicates_identical(records: list) -> int:
    """Copies of one event id carry the same value; returns how many duplicates there are."""
    first: dict[bytes, bytes] = {}
    duplicates = 0
    for record in records:
        event_id = dict(record.headers)["event_id"]
        if event_id in first:
            duplicates += 1
            assert first[event_id] == record.value
        else:
            first[event_id] = record.value
    return duplicates


def new_session() -> str:
    return random_id("s")


class RelayProcess:
    """`agentlog relay` as a child process, for crash tests (kill -9) and leadership across processes."""

    def __init__(self, log_path, database_url: str, bootstrap: str, topic: str, **relay_env: Any) -> None:
        import os
        import sys

        self.log_path = log_path
        self.env = {
            **os.environ,
            "AGENTLOG_DATABASE_URL": database_url,
            "AGENTLOG_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AGENTLOG_KAFKA_TOPIC": topic,
            "AGENTLOG_RELAY_POLL_INTERVAL_MS": "200",
            "AGENTLOG_RELAY_STANDBY_RETRY_MS": "200",
            "AGENTLOG_RELAY_HEARTBEAT_MS": "200",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.update({f"AGENTLOG_RELAY_{k.upper()}": str(v) for k, v in relay_env.items()})
        self.argv = [sys.executable, "-m", "agentlog", "relay"]
        self.proc = None

    def start(self) -> RelayProcess:
        import subprocess
        from pathlib import Path

        root = Path(__file__).resolve().parents[2]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    def log(self) -> str:
        from pathlib import Path

        return Path(self.log_path).read_text(errors="replace")

    def is_leader(self) -> bool:
        return "is now the LEADER" in self.log()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
