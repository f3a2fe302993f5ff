"""Adaptive batching in the relay and the projector (issue 10): after an idle spell a single event
goes out at once, whatever the gathering window; once a batch holds several rows (load), a stream
of appends keeps gathering into batches of many; neither reorders, loses or doubles a session's
events.

The windows here are far longer than the defaults so that "at once" and "gathered" are told apart
by outcomes with generous bounds (an idle event arrives in well under half the window; a trickle of
appends ends up in far fewer batches than events), not by tight timings.
"""

from __future__ import annotations

import time
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from eventstore import db
from eventstore import events as ev
from tests.integration import projection_support as projections
from tests.integration.relay_support import (
    TopicReader,
    append,
    assert_complete_and_ordered,
    new_session,
    relay_settings,
    running_relay,
    shared_settings,
)
from tests.waiting import wait_until

IDLE_WINDOW_MS = 5_000  # an idle event must not wait for it: it arrives in well under half of it
BURST_WINDOW_MS = 500
TRICKLE_WINDOW_MS = 2_000


@pytest.fixture
async def fresh_pool(fresh_database_url: str):
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=6)
    yield pool
    await pool.close()


async def _polled(reader: TopicReader, n: int) -> bool:
    return await reader.poll() >= n


async def test_relay_publishes_one_event_after_an_idle_spell_at_once_whatever_the_window(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    session_id = new_session()
    relay_conf = relay_settings(batch_window_ms=IDLE_WINDOW_MS)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        async with running_relay(settings, relay_conf) as relay, TopicReader(kafka_bootstrap, topic) as reader:
            await wait_until(lambda: relay.is_leader, message="the relay leading")
            started = time.monotonic()
            await append(conn, session_id, 1)
            await wait_until(lambda: _polled(reader, 1), timeout=30, message="the one record on Kafka")
            elapsed = time.monotonic() - started
    finally:
        await conn.close()
    assert_complete_and_ordered(reader.records, {session_id: 1})
    assert elapsed < IDLE_WINDOW_MS / 1000 / 2, f"the idle event waited {elapsed:.2f} s: it sat out the window"


async def test_relay_gathers_a_stream_of_appends_into_batches_larger_than_one_in_version_order(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    sessions = [new_session() for _ in range(8)]
    appends = 120
    waiting = 10  # already there when the relay starts: its first read finds several rows (load)
    relay_conf = relay_settings(batch_window_ms=BURST_WINDOW_MS)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        for n in range(waiting):
            await append(conn, sessions[n % len(sessions)], 1)
        async with running_relay(settings, relay_conf) as relay, TopicReader(kafka_bootstrap, topic) as reader:
            await wait_until(lambda: relay.is_leader, message="the relay leading")
            for n in range(waiting, appends):  # one event per transaction, each its own NOTIFY
                await append(conn, sessions[n % len(sessions)], 1)
            await wait_until(lambda: _polled(reader, appends), timeout=60, message=f"{appends} records")
            # Counted once deleted (with the next read, or when the pass ends).
            await wait_until(
                lambda: relay.metrics.value("agentlog_relay_events_published_total") == appends,
                message="every row acknowledged and deleted",
            )
            batches = relay.metrics.value("agentlog_relay_batch_rows_count")
            single = relay.metrics.value("agentlog_relay_batch_rows_bucket", {"le": "1.0"})
    finally:
        await conn.close()
    assert_complete_and_ordered(reader.records, {s: appends // len(sessions) for s in sessions})
    assert len(reader.records) == appends, "no record published twice"
    assert single < batches, "every batch held a single row: the appends were not gathered"
    assert batches < appends / 4, f"{batches:.0f} batches for {appends} events"


async def test_relay_stops_listening_under_load_and_an_event_after_the_load_is_notified_at_once(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    # The poll fallback is far off: the event after the load reaches Kafka only if the relay
    # listens again (or read once more after LISTEN), not by polling.
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    sessions = [new_session() for _ in range(4)]
    expected = dict.fromkeys(sessions, 0)
    relay_conf = relay_settings(batch_window_ms=200, poll_interval_ms=60_000)
    conn = await asyncpg.connect(fresh_database_url)

    async def one(session_id: str) -> None:
        await append(conn, session_id, 1)
        expected[session_id] += 1

    try:
        for n in range(20):  # there when the relay starts: its first read finds several rows (load)
            await one(sessions[n % len(sessions)])
        async with running_relay(settings, relay_conf) as relay, TopicReader(kafka_bootstrap, topic) as reader:
            # is_leader is set before the term's connections are open and its drain exists
            await wait_until(lambda: relay._drain is not None, message="the relay leading, its drain running")
            deadline, n = time.monotonic() + 20, 0
            while relay._drain.listening and time.monotonic() < deadline:  # appends go on: a load
                await one(sessions[n % len(sessions)])
                n += 1
            quiet = not relay._drain.listening
            total = sum(expected.values())
            await wait_until(lambda: _polled(reader, total), timeout=30, message=f"{total} records")
            await wait_until(lambda: relay._drain.listening, timeout=10, message="listening again after the load")
            started = time.monotonic()
            await one(sessions[0])
            await wait_until(lambda: _polled(reader, total + 1), timeout=30, message="the event after the load")
            elapsed = time.monotonic() - started
    finally:
        await conn.close()
    assert quiet, "the relay listened all through the load"
    assert_complete_and_ordered(reader.records, expected)
    assert elapsed < 5, f"the event after the load waited {elapsed:.2f} s: not notified"


async def _produce_one_by_one(bootstrap: str, topic: str, recorded: list) -> None:
    """As the relay would, but each record acknowledged before the next is sent: a trickle."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for r in recorded:
            await (await producer.send(topic, r.kafka_value(), key=r.kafka_key(), headers=r.kafka_headers()))
    finally:
        await producer.stop()


def _messages(n: int) -> list[ev.Event]:
    return [ev.SessionStarted(workflow="batching")] + [
        ev.MessageAdded(role="user", content=f"message {i}", agent="a") for i in range(n - 1)
    ]


async def test_projector_applies_one_record_after_an_idle_spell_at_once_whatever_the_window(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    s = projections.settings(batch_window_ms=IDLE_WINDOW_MS)
    session_id = "s-" + uuid.uuid4().hex[:8]
    async with projections.running_projector(fresh_pool, kafka_bootstrap, topic, s) as projector:
        await wait_until(lambda: projector.assigned, timeout=30, message="partitions assigned")
        recorded = await projections.append(fresh_pool, "t1", session_id, _messages(1))
        started = time.monotonic()
        await projections.produce(kafka_bootstrap, topic, recorded)
        await wait_until(
            lambda: projections.applied_version(fresh_pool, s.group_id, "t1", session_id),
            timeout=30,
            message="the one record projected",
        )
        elapsed = time.monotonic() - started
    assert elapsed < IDLE_WINDOW_MS / 1000 / 2, f"the idle record waited {elapsed:.2f} s: it sat out the window"
    assert (projector.totals.applied, projector.totals.duplicates) == (1, 0)


async def test_projector_gathers_a_trickle_of_records_into_transactions_of_many_in_version_order(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    s = projections.settings(batch_window_ms=TRICKLE_WINDOW_MS)
    sessions = ["s-" + uuid.uuid4().hex[:8] for _ in range(4)]
    per_session = 20
    recorded = []
    for session_id in sessions:
        recorded += await projections.append(fresh_pool, "t1", session_id, _messages(per_session))
    # Interleaved across sessions, each session's records in version order, as the relay sends them.
    trickle = sorted(recorded, key=lambda r: (r.version, r.session_id))
    waiting = 10  # already on Kafka when the projector starts: its first batch has several (load)
    await projections.produce(kafka_bootstrap, topic, trickle[:waiting])
    async with projections.running_projector(fresh_pool, kafka_bootstrap, topic, s) as projector:
        await wait_until(lambda: projector.assigned, timeout=30, message="partitions assigned")
        await _produce_one_by_one(kafka_bootstrap, topic, trickle[waiting:])
        await wait_until(
            lambda: projector.totals.applied + projector.totals.duplicates >= len(recorded),
            timeout=60,
            message="all records projected",
        )
        transactions = projector.metrics.value("agentlog_projector_batches_total")
    assert (projector.totals.applied, projector.totals.duplicates, projector.totals.gap_filled) == (len(recorded), 0, 0)
    # The records already waiting, then the whole trickle (well under a window long) in one more.
    assert transactions <= 3, f"{transactions:.0f} transactions for {len(recorded)} records"
    summaries = await fresh_pool.fetch("SELECT session_id, message_count, last_version FROM session_summaries_v1")
    assert {tuple(r.values()) for r in summaries} == {(sid, per_session - 1, per_session) for sid in sessions}
    timeline = await fresh_pool.fetch(
        "SELECT session_id, version FROM session_timeline_v1 ORDER BY session_id, version"
    )
    assert [(r["session_id"], r["version"]) for r in timeline] == [
        (sid, v) for sid in sorted(sessions) for v in range(1, per_session + 1)
    ]
