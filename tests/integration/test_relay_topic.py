"""The relay's topic check: a missing topic is created with the configured partitions; a topic whose
settings would drop or block events is refused with a message naming the setting."""

from __future__ import annotations

import asyncio

import pytest

from agentlog.stack import kafka_probe
from outbox.relay import run_relay
from outbox.topics import TopicConfigError, TopicFacts, ensure_topic, unsafe_reasons
from tests.factories import topic_name
from tests.integration.relay_support import relay_settings, shared_settings


def _name() -> str:
    return topic_name()


async def test_relay_refuses_topic_when_cleanup_policy_is_compact(
    fresh_database_url: str, kafka_bootstrap: str
) -> None:
    topic = _name()
    await kafka_probe.ensure_topic(kafka_bootstrap, topic, 3, {"cleanup.policy": "compact"})
    settings = shared_settings(fresh_database_url, kafka_bootstrap, topic)
    with pytest.raises(TopicConfigError) as raised:
        await asyncio.wait_for(run_relay(settings, relay_settings(), asyncio.Event()), timeout=30)
    assert "cleanup.policy=compact" in str(raised.value)
    assert raised.value.problem()["code"] == "topic_config_unsafe"


async def test_relay_refuses_topic_when_retention_is_shorter_than_the_minimum(kafka_bootstrap: str) -> None:
    topic = _name()
    await kafka_probe.ensure_topic(kafka_bootstrap, topic, 1, {"retention.ms": "60000"})
    with pytest.raises(TopicConfigError, match=r"retention\.ms=60000 is shorter"):
        await ensure_topic(kafka_bootstrap, topic, 1, relay_settings())


async def test_relay_creates_missing_topic_with_configured_partitions(kafka_bootstrap: str) -> None:
    topic = _name()
    facts = await ensure_topic(kafka_bootstrap, topic, 5, relay_settings())
    assert (facts.partitions, facts.configs["cleanup.policy"]) == (5, "delete")
    again = await ensure_topic(kafka_bootstrap, topic, 5, relay_settings())
    assert again.partitions == 5


async def test_relays_creating_their_topics_at_once_all_see_them_created(kafka_bootstrap: str) -> None:
    """A created topic reaches the broker's metadata after CreateTopics answers; describing it at once
    found it unknown or leaderless, and a relay starting at that moment died of it (outbox never
    published). Twelve at once hit that window every time before the fix."""
    topics = [_name() for _ in range(12)]
    facts = await asyncio.gather(*(ensure_topic(kafka_bootstrap, topic, 3, relay_settings()) for topic in topics))
    assert [(f.name, f.partitions, f.replication_factor) for f in facts] == [(t, 3, 1) for t in topics]


def test_topic_unsafe_when_min_insync_replicas_exceed_replication_factor() -> None:
    facts = TopicFacts(
        "t",
        3,
        1,
        {"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": "2", "max.message.bytes": "1048588"},
    )
    assert [r.split(" ")[0] for r in unsafe_reasons(facts, relay_settings())] == ["min.insync.replicas=2"]


def test_topic_unsafe_when_broker_max_message_bytes_below_relay_max_request() -> None:
    facts = TopicFacts(
        "t",
        3,
        1,
        {"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": "1", "max.message.bytes": "1000"},
    )
    assert [r.split(" ")[0] for r in unsafe_reasons(facts, relay_settings())] == ["max.message.bytes=1000"]
