"""Infrastructure faults on instances of our own (never the shared stack): the Kafka broker stopped
and restarted under load, and Postgres restarted under the relay. The relay must neither crash nor
lose events: the backlog grows while a service is away and drains when it returns."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg

from agentlog.stack import kafka_probe
from agentlog.stack.kafka import KafkaBroker
from agentlog.stack.postgres import PostgresCluster
from eventstore import migrations
from tests.factories import free_port
from tests.integration.relay_support import (
    TopicReader,
    append,
    assert_complete_and_ordered,
    assert_duplicates_identical,
    new_session,
    outbox_count,
    relay_settings,
    running_relay,
    shared_settings,
)
from tests.system.test_relay_crash import Load
from tests.waiting import wait_until


async def _distinct(reader: TopicReader, n: int) -> bool:
    await reader.poll()
    return reader.distinct_events() >= n


async def test_relay_loses_nothing_when_broker_is_stopped_and_restarted_under_load(
    fresh_database_url: str, tmp_path
) -> None:
    broker = KafkaBroker(home=tmp_path, port=free_port(), controller_port=free_port(), name="kafka-fault")
    broker.start()
    try:
        await kafka_probe.wait_ready(broker.bootstrap, 120, broker.is_running)
        topic = f"agentlog.fault.{uuid.uuid4().hex[:8]}.v1"
        settings = shared_settings(fresh_database_url, broker.bootstrap, topic)
        load = Load(fresh_database_url, sessions=10)
        async with running_relay(settings, relay_settings(batch_size=100)) as relay:
            load.start(writers=2)
            await wait_until(
                lambda: relay.metrics.value("agentlog_relay_events_published_total") > 300,
                timeout=60,
                message="publishing before the outage",
            )
            await asyncio.to_thread(broker.stop)
            published = relay.metrics.value("agentlog_relay_events_published_total")
            await wait_until(
                lambda: _backlog_at_least(fresh_database_url, 500),
                timeout=30,
                message="a backlog while the broker is down",
            )
            # The outage outlasts a delivery deadline (5 s), or the producer's own retries could
            # deliver the stuck batch after the restart without the relay ever seeing a failure.
            await wait_until(
                lambda: relay.metrics.total("agentlog_relay_publish_errors_total") >= 1,
                timeout=30,
                message="a failed publication while the broker is down",
            )
            assert not relay.task.done(), "the relay must keep running while Kafka is away"
            broker.start()
            await kafka_probe.wait_ready(broker.bootstrap, 120, broker.is_running)
            total = await load.stop()
            await wait_until(lambda: _drained(fresh_database_url), timeout=90, message="backlog drained")
            assert relay.metrics.value("agentlog_relay_events_published_total") > published
        async with TopicReader(broker.bootstrap, topic) as reader:
            await wait_until(lambda: _distinct(reader, total), timeout=30, message=f"{total} events")
    finally:
        broker.stop()
    assert_complete_and_ordered(reader.records, load.expected)
    assert_duplicates_identical(reader.records)


async def test_relay_reconnects_and_resumes_when_postgres_restarts(kafka_bootstrap: str, topic: str, tmp_path) -> None:
    # The postgres user must reach the data folder: pytest's tmp_path is private to root.
    home = Path(tempfile.mkdtemp(prefix="agentlog-relay-pg-", dir="/var/tmp"))
    home.chmod(0o755)
    cluster = PostgresCluster(home=home, port=free_port())
    cluster.init()
    cluster.start()
    try:
        await cluster.wait_ready()
        await asyncio.to_thread(migrations.upgrade, cluster.dsn)
        settings = shared_settings(cluster.dsn, kafka_bootstrap, topic)
        before, after = new_session(), new_session()
        async with running_relay(settings) as relay, TopicReader(kafka_bootstrap, topic) as reader:
            await _append_once(cluster.dsn, before, 5)
            await wait_until(lambda: _distinct(reader, 5), message="published before the restart")
            await asyncio.to_thread(cluster.stop)
            await wait_until(lambda: not relay.is_leader, message="the relay steps down")
            assert not relay.task.done()
            cluster.start()
            await cluster.wait_ready()
            await wait_until(lambda: relay.is_leader, timeout=30, message="the relay leads again")
            await _append_once(cluster.dsn, after, 5)
            await wait_until(lambda: _distinct(reader, 10), message="published after the restart")
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    assert_complete_and_ordered(reader.records, {before: 5, after: 5})


async def _append_once(dsn: str, session_id: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await append(conn, session_id, n)
    finally:
        await conn.close()


async def _drained(dsn: str) -> bool:
    return await outbox_count(dsn) == 0


async def _backlog_at_least(dsn: str, n: int) -> bool:
    return await outbox_count(dsn) >= n
