"""`agentlog status` / `projections status` must report real lag, never a lag of 0 it did not measure."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from eventstore import db
from projections.admin import projection_status


async def test_projection_status_reports_lag_of_unconsumed_records(fresh_database_url, kafka_bootstrap, topic):
    # Regression: the end offsets were looked up through a consumer without metadata for the
    # topic, found no partitions, and the status said lag 0 for a projector that had read nothing.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, b"{}", key=f"s{i}".encode())
    finally:
        await producer.stop()
    pool = await db.create_pool(fresh_database_url, max_size=2)
    try:
        status = await projection_status(pool, kafka_bootstrap, topic)
    finally:
        await pool.close()
    assert status and all(p["kafka_error"] is None for p in status)
    assert {p["lag_events"] for p in status} == {5}
