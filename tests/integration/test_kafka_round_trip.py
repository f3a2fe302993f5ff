"""aiokafka against this broker version: idempotent produce, consumer-group consume and commit,
and a restarted consumer of the same group resumes after the committed offset."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from tests.waiting import wait_until


async def _consume(bootstrap: str, topic: str, group: str, expected: int) -> list:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list = []
    try:

        async def got_all() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.extend(records)
            return len(seen) >= expected

        await wait_until(got_all, timeout=30, interval=0, message=f"{expected} records")
        await consumer.commit()
        return seen
    finally:
        await consumer.stop()


async def test_kafka_idempotent_produce_group_consume_commit(kafka_bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, f"v{i}".encode(), key=f"s{i % 4}".encode(), headers=[("type", b"Probe")])
            for i in range(40)
        ]
        metadata = [await future for future in futures]
    finally:
        await producer.stop()
    assert all(m.offset >= 0 for m in metadata)

    group = f"agentlog.test.{uuid.uuid4().hex[:8]}"
    records = await _consume(kafka_bootstrap, topic, group, 40)
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(40))
    # per key, order is the order sent
    for key in {r.key for r in records}:
        values = [int(r.value[1:]) for r in records if r.key == key]
        assert values == sorted(values)
    assert all(r.headers == (("type", b"Probe"),) for r in records)

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or {0, 1, 2}]
        committed = {tp.partition: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()
    ends = {}
    for m in metadata:
        ends[m.partition] = max(ends.get(m.partition, -1), m.offset + 1)
    assert {p: committed[p] for p in ends} == ends
