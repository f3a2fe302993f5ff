"""A poison event is parked, the rest goes on, and `retry-parked` applies it after a fix."""

from __future__ import annotations

import uuid

import pytest

from eventstore import db
from eventstore.upcasting import UPCASTERS
from projections import admin
from projections.read_models.catalog import PROJECTIONS
from tests.integration.projection_support import (
    append,
    insert_raw,
    produce,
    running_projector,
    settings,
    support_case,
)
from tests.waiting import wait_until

# A v1 MessageAdded written by a buggy client: "body" instead of "text".
POISON = {"role": "user", "body": "hello from an old client"}


def _fixed_v1_to_v2(data: dict) -> dict:
    return {"role": data["role"], "content": data.get("text", data.get("body")), "agent": None}


@pytest.fixture
async def fresh_pool(fresh_database_url: str):
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def test_projection_poison_event_parked_then_retried_after_fix(
    fresh_pool, kafka_bootstrap: str, topic: str, monkeypatch
) -> None:
    sick, healthy = "s-" + uuid.uuid4().hex[:8], "s-" + uuid.uuid4().hex[:8]
    recorded = await append(fresh_pool, "t1", sick, support_case()[:2])
    recorded.append(await insert_raw(fresh_pool, "t1", sick, 3, "MessageAdded", 1, POISON))
    recorded += await append(fresh_pool, "t1", sick, support_case()[2:], first_version=4)
    recorded += await append(fresh_pool, "t1", healthy, support_case())
    await produce(kafka_bootstrap, topic, recorded)
    s = settings(max_retries=2)
    async with running_projector(fresh_pool, kafka_bootstrap, topic, s) as projector:
        await wait_until(lambda: projector.totals.applied >= len(recorded), timeout=30, message="all applied")

    handling = {p.name for p in PROJECTIONS if p.handles("MessageAdded")}
    parked = await fresh_pool.fetch("SELECT projection, version, error, attempts FROM projection_parked_events")
    assert {(r["projection"], r["version"]) for r in parked} == {(name, 3) for name in handling}
    assert all("KeyError" in r["error"] and r["attempts"] == 2 for r in parked)
    rows = {
        r["session_id"]: r
        for r in await fresh_pool.fetch(
            "SELECT session_id, status, message_count, last_version, has_parked_events FROM session_summaries_v1"
        )
    }
    assert (rows[sick]["status"], rows[sick]["message_count"], rows[sick]["has_parked_events"]) == (
        "completed",
        3,
        True,
    )
    assert (rows[healthy]["message_count"], rows[healthy]["has_parked_events"]) == (3, False)
    status = {
        s_["projection"]: s_
        for s_ in await admin.projection_status(fresh_pool, kafka_bootstrap, topic, group_id=s.group_id)
    }
    assert status["session_timeline"]["parked"] == 1 and status["tool_calls"]["parked"] == 0
    assert status["session_summaries"]["lag_events"] == 0

    assert await admin.retry_parked(fresh_pool, projector=s.group_id) == (0, len(handling))
    monkeypatch.setitem(UPCASTERS, ("MessageAdded", 1), _fixed_v1_to_v2)
    assert await admin.retry_parked(fresh_pool, "session_timeline", projector=s.group_id) == (1, 0)
    assert await admin.retry_parked(fresh_pool, projector=s.group_id) == (len(handling) - 1, 0)
    summary = await fresh_pool.fetchrow(
        "SELECT status, message_count, has_parked_events FROM session_summaries_v1 WHERE session_id = $1", sick
    )
    assert tuple(summary.values()) == ("completed", 4, False)
    line = await fresh_pool.fetchval(
        "SELECT summary FROM session_timeline_v1 WHERE session_id = $1 AND version = 3", sick
    )
    assert line == "user: hello from an old client"


async def test_projection_retry_parked_rejects_unknown_projection(fresh_pool) -> None:
    with pytest.raises(ValueError, match="unknown projection"):
        await admin.retry_parked(fresh_pool, "no_such_projection")


def test_projection_list_names_every_projection_and_its_tables() -> None:
    listed = {p["name"]: p for p in admin.list_projections()}
    assert listed["tool_stats"]["tables"] == ["tool_stats_v1"]
    assert "ToolCallFailed" in listed["tool_calls"]["event_types"]
    assert len(listed) == len(PROJECTIONS)
