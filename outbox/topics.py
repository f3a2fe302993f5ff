"""The relay's Kafka topic: created with the configured partitions when missing, and refused when
its settings would break what consumers rely on (every event of a session kept, in order).

Refused: cleanup.policy with `compact` (compaction keeps only the last record of a key, i.e. drops
a session's earlier events), retention.ms shorter than the configured minimum,
min.insync.replicas above the replication factor (acks=all could never succeed) and
max.message.bytes below the relay's largest record (the broker would reject a record forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from eventstore.errors import AgentlogError
from outbox.settings import RelaySettings

log = logging.getLogger(__name__)
UNKNOWN_TOPIC_OR_PARTITION = 3


class TopicNotReadyError(KafkaError):
    """The topic is not (yet) described with a leader for every partition, e.g. just after it was
    created: the controller has it, the broker's metadata not yet. Transient; the relay retries."""


class TopicConfigError(AgentlogError):
    """The topic exists with settings that break the relay's ordering or retention guarantees."""

    code = "topic_config_unsafe"
    status = 500


@dataclass(frozen=True)
class TopicFacts:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def unsafe_reasons(facts: TopicFacts, relay: RelaySettings) -> list[str]:
    """Why this topic must not be published to; empty when it is fine."""
    reasons = []
    policy = facts.configs.get("cleanup.policy", "delete")
    if "compact" in policy.split(","):
        reasons.append(
            f"cleanup.policy={policy}: compaction keeps only the last record per key and would drop "
            "a session's earlier events; use cleanup.policy=delete"
        )
    retention = int(facts.configs.get("retention.ms", "-1"))
    minimum = relay.topic_min_retention_ms
    if retention != -1 and minimum != -1 and retention < minimum:
        reasons.append(
            f"retention.ms={retention} is shorter than the required minimum {minimum} "
            "(AGENTLOG_RELAY_TOPIC_MIN_RETENTION_MS)"
        )
    min_isr = int(facts.configs.get("min.insync.replicas", "1"))
    if min_isr > facts.replication_factor:
        reasons.append(
            f"min.insync.replicas={min_isr} exceeds the replication factor "
            f"{facts.replication_factor}: no acks=all write could ever succeed"
        )
    max_message = int(facts.configs.get("max.message.bytes", str(relay.max_request_bytes)))
    if max_message < relay.max_request_bytes:
        reasons.append(
            f"max.message.bytes={max_message} is below the relay's max_request_bytes "
            f"{relay.max_request_bytes}: the broker would reject accepted records forever"
        )
    return reasons


async def describe_topic(admin: AIOKafkaAdminClient, topic: str) -> TopicFacts | None:
    """The topic's facts; None when it does not exist; TopicNotReadyError while a partition has no
    leader yet (a verdict on its settings would be about a half-known topic)."""
    described = (await admin.describe_topics([topic]))[0]
    if described["error_code"] == UNKNOWN_TOPIC_OR_PARTITION:
        return None
    partitions = described["partitions"]
    if described["error_code"] != 0 or not partitions or any(p["leader"] < 0 for p in partitions):
        raise TopicNotReadyError(f"topic {topic!r} has no leader for every partition yet")
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = responses[0].to_object()["resources"][0]["config_entries"]
    return TopicFacts(
        name=topic,
        partitions=len(partitions),
        replication_factor=min((len(p["replicas"]) for p in partitions), default=0),
        configs={e["config_names"]: e["config_value"] for e in entries},
    )


async def ensure_topic(bootstrap: str, topic: str, partitions: int, relay: RelaySettings) -> TopicFacts:
    """Create the topic if missing, then verify it; raises TopicConfigError when it is unsafe."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=relay.request_timeout_ms)
    await admin.start()
    try:
        facts = await describe_topic(admin, topic)
        if facts is None:
            await _create(admin, topic, partitions, relay)
            facts = await _await_created(admin, topic, relay.request_timeout_ms / 1000)
    finally:
        await admin.close()
    reasons = unsafe_reasons(facts, relay)
    if reasons:
        raise TopicConfigError(
            f"refusing to publish to Kafka topic {topic!r}: " + "; ".join(reasons),
            topic=topic,
            reasons=reasons,
        )
    return facts


async def _await_created(admin: AIOKafkaAdminClient, topic: str, timeout_s: float) -> TopicFacts:
    """A created topic reaches the broker's metadata a moment after CreateTopics answers: until then
    it is described as unknown or leaderless. Wait for it; TopicNotReadyError at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(TopicNotReadyError):
            facts = await describe_topic(admin, topic)
            if facts is not None:
                return facts
        if time.monotonic() >= deadline:
            raise TopicNotReadyError(f"topic {topic!r} was created but has no leader after {timeout_s:.0f}s")
        await asyncio.sleep(0.05)  # polling the broker's metadata, not synchronising a test


async def _create(admin: AIOKafkaAdminClient, topic: str, partitions: int, relay: RelaySettings) -> None:
    log.info("creating Kafka topic %s with %d partitions", topic, partitions)
    new = NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=relay.topic_replication_factor,
        topic_configs={"cleanup.policy": "delete"},
    )
    with contextlib.suppress(TopicAlreadyExistsError):  # another relay created it first
        await admin.create_topics([new])
