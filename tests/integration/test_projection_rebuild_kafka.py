"""`agentlog projections rebuild NAME --source kafka`: the same rows as from the store, with the
records the topic lacks filled from the store (and counted), duplicates skipped, resumable.
"""

from __future__ import annotations

import uuid

from projections.rebuild.job import ProjectionRebuild
from projections.rebuild.sources import KafkaSource
from tests.integration.projection_rebuild_support import (
    GROUP,
    fresh_pool,  # noqa: F401 - a fixture
    project_live,
)
from tests.integration.projection_support import append, produce, read_models, support_case


async def _log_with_holes(pool, bootstrap: str, topic: str) -> dict:
    """Sessions in the store and projected live; on the topic one record is missing in the middle
    of a session, the last record of another is missing, and some records come twice."""
    recorded = []
    for i in range(6):
        recorded += await append(pool, ("t1", "t2")[i % 2], f"k-{i}-{uuid.uuid4().hex[:4]}", support_case())
    await project_live(pool, recorded)
    middle = recorded[4]  # version 5 of the first session
    last = recorded[2 * len(support_case()) - 1]  # the last version of the second session
    published = [r for r in recorded if r not in (middle, last)]
    await produce(bootstrap, topic, published + published[10:20])
    return {"events": len(recorded), "middle": middle, "last": last}


def kafka_rebuild(pool, name: str, bootstrap: str, topic: str, **options) -> ProjectionRebuild:
    source = KafkaSource(bootstrap, topic, idle_timeout_s=20)
    return ProjectionRebuild(pool, name, projector=GROUP, batch_size=25, source=source, **options)


async def test_projection_rebuild_from_kafka_equals_the_rebuild_from_the_store(
    fresh_pool, kafka_bootstrap: str, topic: str
) -> None:
    log = await _log_with_holes(fresh_pool, kafka_bootstrap, topic)
    live = await read_models(fresh_pool)
    for name in ("session_summaries", "session_timeline", "tool_stats"):
        from_kafka = await kafka_rebuild(fresh_pool, name, kafka_bootstrap, topic).run()
        assert (from_kafka.status, from_kafka.source) == ("swapped", "kafka"), name
        assert from_kafka.drift.clean, name
        assert from_kafka.events == log["events"] - 2 + 10  # records read, duplicates included
        assert from_kafka.filled_from_store == 1  # the middle version, when the next one came
        assert from_kafka.caught_up_in_swap == 1  # the last version, from the live guard at the swap
        kafka_rows = await read_models(fresh_pool)
        from_store = await ProjectionRebuild(fresh_pool, name, projector=GROUP).run()
        assert (from_store.status, from_store.filled_from_store, from_store.drift.clean) == ("swapped", 0, True)
        assert await read_models(fresh_pool) == kafka_rows == live, name


async def test_projection_rebuild_from_kafka_resumes_from_its_offsets(fresh_pool, kafka_bootstrap, topic) -> None:
    log = await _log_with_holes(fresh_pool, kafka_bootstrap, topic)
    live = await read_models(fresh_pool)
    first = await kafka_rebuild(fresh_pool, "approvals", kafka_bootstrap, topic, max_batches=2).run()
    assert first.status == "interrupted" and first.events <= 50
    stored = await fresh_pool.fetchval("SELECT cursor FROM agentlog_rebuild_approvals.rebuild_progress")
    assert sum(stored["partitions"].values()) == first.events

    second = await kafka_rebuild(fresh_pool, "approvals", kafka_bootstrap, topic).run()
    assert (second.status, second.resumed, second.events) == ("swapped", True, log["events"] - 2 + 10)
    assert second.drift.clean and await read_models(fresh_pool) == live

    # A rebuild from the store does not resume a shadow built from the topic: it starts over.
    partial = await ProjectionRebuild(fresh_pool, "approvals", projector=GROUP, batch_size=25, max_batches=1).run()
    restarted = await kafka_rebuild(fresh_pool, "approvals", kafka_bootstrap, topic).run()
    assert (partial.source, restarted.resumed, restarted.status) == ("store", False, "swapped")
