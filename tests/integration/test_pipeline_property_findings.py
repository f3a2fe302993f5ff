"""What the pipeline property test (test_pipeline_property.py) found, each kept as a test named
after it, on the real command API and Postgres."""

from __future__ import annotations

from eventstore.state import fold
from eventstore.store import EventStore
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    counts,
    http,
    start,
    tenant,
)


async def test_command_api_state_patch_true_over_1_is_stored_not_dropped_as_a_repeat(http, tenant, pool) -> None:
    """A section holding {"a": 1} patched with {"a": true} answered 200 with no event (Python's
    True == 1 made the decider take it for a repeat), so the section kept 1."""
    sid = await start(http, tenant, agents=["billing"])
    url = f"/v1/sessions/{sid}/state/sec?agent=billing"
    assert (await http.patch(url, json={"a": 1, "b": [0]}, headers=tenant.writer)).status_code == 200
    changed = await http.patch(url, json={"a": True, "b": [False]}, headers=tenant.writer)
    assert changed.status_code == 200, changed.text
    assert len(changed.json()["event_ids"]) == 1
    state = fold(await EventStore(pool).read_stream(tenant.name, sid))
    assert state.sections["sec"] == {"a": True, "b": [False]}
    assert [type(state.sections["sec"]["a"]), type(state.sections["sec"]["b"][0])] == [bool, bool]
    same_number = await http.patch(url, json={"a": True, "b": [False]}, headers=tenant.writer)
    assert same_number.json()["event_ids"] == []  # a real repeat is still recognised


async def test_command_api_idempotency_key_reused_names_the_header_field(http, tenant, pool) -> None:
    """A 422 names the field it refuses: `idempotency_key_reused` came without `errors`."""
    sid = await start(http, tenant)
    headers = {**tenant.writer, "Idempotency-Key": "reused-1"}
    url = f"/v1/sessions/{sid}/messages"
    assert (await http.post(url, json={"role": "user", "content": "a"}, headers=headers)).status_code == 200
    before = await counts(pool, tenant.name, sid)
    reused = await http.post(url, json={"role": "user", "content": "b"}, headers=headers)
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    problem = reused.json()
    assert problem["code"] == "idempotency_key_reused"
    assert [e["field"] for e in problem["errors"]] == ["header.Idempotency-Key"]
    assert problem["errors"][0]["reason"]
    assert await counts(pool, tenant.name, sid) == before
