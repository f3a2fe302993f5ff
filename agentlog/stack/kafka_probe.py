"""Kafka readiness is a real client round trip, not an open port: metadata, create a topic,
an idempotent produce with acks=all, and a consumer-group consume with an offset commit."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

PROBE_TOPIC = "agentlog.stack-probe.v1"


async def ensure_topic(bootstrap: str, topic: str, partitions: int = 1, config: dict | None = None) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, topic_configs=config or {})]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def round_trip(bootstrap: str, timeout_s: float = 30.0) -> float:
    """One full produce/consume/commit cycle; returns its duration in seconds."""
    started = time.monotonic()
    await ensure_topic(bootstrap, PROBE_TOPIC)
    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(PROBE_TOPIC, marker, key=b"probe")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        PROBE_TOPIC,
        bootstrap_servers=bootstrap,
        group_id="agentlog.stack-probe.v1",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            if any(record.value == marker for records in batch.values() for record in records):
                await consumer.commit()
                return time.monotonic() - started
        raise TimeoutError("probe record not consumed in time")
    finally:
        await consumer.stop()


async def wait_ready(bootstrap: str, timeout_s: float, is_alive=lambda: True) -> float:
    # While a broker starts, aiokafka logs every refused connection as an error; the probe's own
    # timeout message is the one that matters, so those are muted for the wait.
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        return await _wait_ready(bootstrap, timeout_s, is_alive)
    finally:
        client_log.setLevel(level)


async def _wait_ready(bootstrap: str, timeout_s: float, is_alive) -> float:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError("the broker process exited")
        try:
            return await asyncio.wait_for(round_trip(bootstrap), timeout=max(5.0, deadline - time.monotonic()))
        except (KafkaError, OSError, TimeoutError) as exc:
            last = exc
            await asyncio.sleep(0.5)
    raise TimeoutError(f"Kafka at {bootstrap} not ready after {timeout_s:.0f}s: {last!r}")
