"""`agentlog replay --source kafka` against the real Kafka: the topic, with duplicates and other
sessions and tenants on it, replays to exactly what Postgres replays to; a topic that lacks part of
the session is an error, not a wrong state."""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from eventstore.envelope import RecordedEvent
from eventstore.store import EventStore
from outbox.partitions import partition_of
from tests.integration.replay_support import agentlog, new_session_id, write_support_case


async def produce(bootstrap: str, topic: str, events: list[RecordedEvent]) -> None:
    """What the relay does: key = session id, value = envelope, headers per the contract."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(topic, e.kafka_value(), key=e.kafka_key(), headers=e.kafka_headers()) for e in events
        ]
        for future in sent:
            await future
    finally:
        await producer.stop()


@pytest.fixture
async def published(pool, kafka_bootstrap, topic):
    """A support case on the topic twice over in part (at least once), among a session of
    another tenant with the same id and another session of the same tenant."""
    store = EventStore(pool)
    tenant, session_id = f"t-{uuid.uuid4().hex[:8]}", new_session_id()
    events = await write_support_case(store, tenant, session_id)
    same_id_other_tenant = await write_support_case(store, f"o-{uuid.uuid4().hex[:8]}", session_id)
    neighbour = await write_support_case(store, tenant, new_session_id())
    records = events[:6] + neighbour + same_id_other_tenant[:3] + events[3:] + events[:2]
    await produce(kafka_bootstrap, topic, records)
    return tenant, session_id


def kafka_env(database_url: str, kafka_bootstrap: str, topic: str) -> dict[str, str]:
    return {
        "AGENTLOG_DATABASE_URL": database_url,
        "AGENTLOG_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AGENTLOG_KAFKA_TOPIC": topic,
    }


async def both_sources(env: dict[str, str], *args: str) -> tuple[str, str]:
    from_pg = await agentlog(*args, "--source", "postgres", **env)
    from_kafka = await agentlog(*args, "--source", "kafka", **env)
    assert from_pg.returncode == 0, from_pg.stderr
    assert from_kafka.returncode == 0, from_kafka.stderr
    return from_pg.stdout, from_kafka.stdout


async def test_replay_from_kafka_equals_replay_from_postgres(database_url, kafka_bootstrap, topic, published):
    tenant, session_id = published
    env = kafka_env(database_url, kafka_bootstrap, topic)
    for target in ([], ["--to-version", "5"], ["--to-checkpoint", "triaged"]):
        pg, kafka = await both_sources(env, "replay", session_id, "--tenant", tenant, "--json", *target)
        pg_doc, kafka_doc = json.loads(pg), json.loads(kafka)
        assert (pg_doc.pop("source"), kafka_doc.pop("source")) == ("postgres", "kafka")
        assert kafka_doc == pg_doc


async def test_replay_steps_and_history_from_kafka_equal_those_from_postgres(
    database_url, kafka_bootstrap, topic, published
):
    tenant, session_id = published
    env = kafka_env(database_url, kafka_bootstrap, topic)
    pg, kafka = await both_sources(env, "replay", session_id, "--tenant", tenant, "--step", "--json")
    assert kafka == pg and len(kafka.splitlines()) == 12
    pg, kafka = await both_sources(env, "history", session_id, "--tenant", tenant)
    assert kafka == pg


async def test_replay_from_kafka_scanning_all_partitions_finds_the_same_session(
    database_url, kafka_bootstrap, topic, published
):
    tenant, session_id = published
    env = kafka_env(database_url, kafka_bootstrap, topic)
    done = await agentlog(
        "replay", session_id, "--tenant", tenant, "--json", "--source", "kafka", "--all-partitions", **env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 12


async def test_replay_from_kafka_missing_a_version_exits_1_naming_it(database_url, kafka_bootstrap, topic, pool):
    tenant, session_id = f"t-{uuid.uuid4().hex[:8]}", new_session_id()
    events = await write_support_case(EventStore(pool), tenant, session_id)
    await produce(kafka_bootstrap, topic, events[:4] + events[5:])
    done = await agentlog(
        "replay", session_id, "--tenant", tenant, "--source", "kafka", **kafka_env(database_url, kafka_bootstrap, topic)
    )
    assert done.returncode == 1 and "version 5 is missing" in done.stderr


async def test_replay_from_kafka_of_a_session_not_on_the_topic_is_unknown(
    database_url, kafka_bootstrap, topic, published
):
    tenant, _ = published
    done = await agentlog(
        "replay",
        "never-published",
        "--tenant",
        tenant,
        "--source",
        "kafka",
        **kafka_env(database_url, kafka_bootstrap, topic),
    )
    assert done.returncode == 1 and "session 'never-published' not found" in done.stderr


async def test_replay_from_a_topic_that_does_not_exist_exits_1(database_url, kafka_bootstrap):
    missing = f"agentlog.test.missing-{uuid.uuid4().hex[:8]}.v1"
    done = await agentlog(
        "replay", "case-1", "--tenant", "acme", "--source", "kafka", **kafka_env(database_url, kafka_bootstrap, missing)
    )
    assert done.returncode == 1 and f"topic {missing!r} does not exist" in done.stderr


def test_key_partition_is_the_partition_the_default_producer_chooses():
    from aiokafka.partitioner import DefaultPartitioner

    for session_id in ("case-1", "support-42", "x" * 128):
        assert partition_of(session_id, 3) == DefaultPartitioner()(session_id.encode(), [0, 1, 2], [0, 1, 2])
