"""Appends on a pool with deferred NOTIFY (the command API's): their transactions send none, the
OutboxWake sends one after they commit, and the relay publishes on that wake alone. Other
sessions' appends notify from the transaction as before (migration 0013)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from eventstore import db
from eventstore import events as ev
from eventstore.outbox_wake import CHANNEL, DEFERRED, OutboxWake
from eventstore.registry import to_stored
from eventstore.store import NO_STREAM, EventStore
from tests.integration.relay_support import TopicReader, relay_settings, running_relay, shared_settings
from tests.waiting import wait_until

MESSAGE = to_stored(ev.MessageAdded(role="user", content="hello"))
MARKER = "marker"


class Listener:
    """A LISTEN on the relay's channel; payloads in delivery (= commit) order."""

    def __init__(self) -> None:
        self.payloads: list[str] = []

    def __call__(self, conn, pid, channel, payload) -> None:
        self.payloads.append(payload)


@pytest.fixture
async def listening(fresh_database_url: str):
    conn = await db.connect(fresh_database_url)
    listener = Listener()
    await conn.add_listener(CHANNEL, listener)
    try:
        yield conn, listener
    finally:
        await conn.close()


async def _marked(conn: asyncpg.Connection, listener: Listener) -> list[str]:
    """What arrived before a marker NOTIFY sent now (notifications arrive in commit order)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, MARKER)
    await wait_until(lambda: MARKER in listener.payloads, timeout=10, message="the marker notification")
    return listener.payloads[: listener.payloads.index(MARKER)]


async def test_a_deferred_pool_appends_without_notifying(fresh_database_url: str, listening) -> None:
    conn, listener = listening
    pool = await db.create_pool(fresh_database_url, server_settings=DEFERRED)
    try:
        await EventStore(pool).append("t", "s-1", [MESSAGE], expected_version=NO_STREAM)
    finally:
        await pool.close()
    assert await _marked(conn, listener) == [], "the append's transaction sent a NOTIFY"


async def test_other_sessions_append_and_notify_from_the_transaction(fresh_database_url: str, listening) -> None:
    conn, listener = listening
    pool = await db.create_pool(fresh_database_url)
    try:
        await EventStore(pool).append("t", "s-1", [MESSAGE], expected_version=NO_STREAM)
    finally:
        await pool.close()
    assert await _marked(conn, listener) == [""]


async def test_the_wake_notifies_after_the_append_commits(fresh_database_url: str, listening) -> None:
    _conn, listener = listening
    pool = await db.create_pool(fresh_database_url, server_settings=DEFERRED)
    wake = OutboxWake(pool)
    try:
        await EventStore(pool, wake=wake).append("t", "s-1", [MESSAGE], expected_version=NO_STREAM)
        await wait_until(lambda: listener.payloads == [""], timeout=10, message="the wake's NOTIFY")
    finally:
        await wake.aclose()
        await pool.close()
    assert wake.sent == 1


async def test_many_appends_coalesce_into_few_notifies(fresh_database_url: str, listening) -> None:
    conn, listener = listening
    pool = await db.create_pool(fresh_database_url, max_size=8, server_settings=DEFERRED)
    gap = 0.05
    wake = OutboxWake(pool, min_gap_s=gap)
    store = EventStore(pool, wake=wake)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await asyncio.gather(*(store.append("t", f"s-{i}", [MESSAGE], expected_version=NO_STREAM) for i in range(100)))
        await wake.aclose()  # sends what is queued
        elapsed = loop.time() - started
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 100
    finally:
        await pool.close()
    await wait_until(lambda: len(listener.payloads) == wake.sent, timeout=10, message="every NOTIFY delivered")
    assert 1 <= wake.sent <= elapsed / gap + 1, f"{wake.sent} NOTIFYs for 100 appends in {elapsed:.2f} s"
    assert wake.sent < 100


async def test_a_failed_wake_never_fails_the_append_and_the_relay_still_finds_the_row(
    fresh_database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    pool = await db.create_pool(fresh_database_url, server_settings=DEFERRED)
    dead = await db.create_pool(fresh_database_url, min_size=1, max_size=1)
    await dead.close()
    wake = OutboxWake(dead)  # every NOTIFY it tries fails
    session = f"s-{uuid.uuid4().hex[:8]}"
    try:
        await EventStore(pool, wake=wake).append("t", session, [MESSAGE], expected_version=NO_STREAM)
        await wake.aclose()
        assert wake.sent == 0
        # The relay's fallback poll (short here) publishes the row nobody woke it for.
        settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
        async with (
            running_relay(settings, relay_settings(poll_interval_ms=200)),
            TopicReader(kafka_bootstrap, topic) as reader,
        ):

            async def published() -> bool:
                await reader.poll()
                return reader.distinct_events() == 1

            await wait_until(published, timeout=30, message="the row published by the fallback poll")
    finally:
        await pool.close()


async def test_the_relay_publishes_on_the_wake_alone(fresh_database_url: str, kafka_bootstrap: str, topic: str) -> None:
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    # A fallback poll of ten minutes: only a NOTIFY can make the relay read the new rows in time.
    relay = relay_settings(poll_interval_ms=600_000)
    pool = await db.create_pool(fresh_database_url, server_settings=DEFERRED)
    wake = OutboxWake(pool)
    store = EventStore(pool, wake=wake)
    try:
        async with running_relay(settings, relay) as running, TopicReader(kafka_bootstrap, topic) as reader:
            await wait_until(lambda: running.is_leader, timeout=30, message="the relay leads")

            async def published(n: int) -> bool:
                await reader.poll()
                return reader.distinct_events() == n

            for n in range(1, 4):  # an idle relay, woken each time
                await store.append("t", f"s-{n}", [MESSAGE], expected_version=NO_STREAM)
                await wait_until(lambda n=n: published(n), timeout=30, message=f"event {n} published")
    finally:
        await wake.aclose()
        await pool.close()


async def test_a_poke_just_after_a_notify_waits_out_the_gap(fresh_database_url: str, listening) -> None:
    """The gap holds between two NOTIFYs even when the first one's task had ended (nothing was
    queued) before the next append committed."""
    _conn, listener = listening
    pool = await db.create_pool(fresh_database_url, server_settings=DEFERRED)
    gap = 0.2
    wake = OutboxWake(pool, min_gap_s=gap)
    loop = asyncio.get_running_loop()
    try:
        before_first = loop.time()
        wake.poke()
        await wait_until(lambda: wake.sent == 1, timeout=10, message="the first NOTIFY")
        wake.poke()
        await wait_until(lambda: wake.sent == 2, timeout=10, message="the second NOTIFY")
        second_sent = loop.time()
        await wait_until(lambda: len(listener.payloads) == 2, timeout=10, message="both NOTIFYs delivered")
    finally:
        await wake.aclose()
        await pool.close()
    assert second_sent - before_first >= gap
