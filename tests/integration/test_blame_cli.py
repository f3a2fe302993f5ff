"""`agentlog blame` as a separate process on a session made through the real command API:
overlapping merge patches by two agents, a value removed later, a version in the past, a fork."""

from __future__ import annotations

import json

from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    command_app,
    http,
    new_session_id,
    start,
    tenant,
)
from tests.integration.replay_support import agentlog


async def patch(http, tenant, sid: str, section: str, agent: str, changes: dict) -> int:
    response = await http.patch(
        f"/v1/sessions/{sid}/state/{section}", params={"agent": agent}, json=changes, headers=tenant.writer
    )
    assert response.status_code == 200, response.text
    return response.json()["version"]


async def blame(database_url: str, tenant: str, *args: str):
    return await agentlog("blame", *args, "--tenant", tenant, AGENTLOG_DATABASE_URL=database_url)


async def test_blame_names_the_agent_and_key_that_last_set_each_value(database_url, http, tenant) -> None:
    sid = await start(http, tenant, agents=["billing", "account"], allow_shared_sections=True)
    v2 = await patch(http, tenant, sid, "case", "billing", {"charge": "ch_2", "amount": 42, "flag": "dup"})
    v3 = await patch(http, tenant, sid, "case", "account", {"amount": 40, "locked": True})
    v4 = await patch(http, tenant, sid, "case", "billing", {"flag": None})
    done = await blame(database_url, tenant.name, sid, "--section", "case", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["version"], out["last_version"], out["section"]) == (v4, v4, "case")
    by_path = {e["path"]: (e["value"], e["version"], e["agent"], e["type"]) for e in out["entries"]}
    assert by_path == {
        "/sections/case/charge": ("ch_2", v2, "billing", "StateSectionUpdated"),
        "/sections/case/amount": (40, v3, "account", "StateSectionUpdated"),
        "/sections/case/locked": (True, v3, "account", "StateSectionUpdated"),
    }
    assert all(e["actor"] and e["actor"] in tenant.writer["Authorization"] for e in out["entries"])

    past = await blame(database_url, tenant.name, sid, "--at-version", str(v2), "--json")
    entries = {e["path"]: e["version"] for e in json.loads(past.stdout)["entries"]}
    assert entries == {
        "/status": 1,
        "/sections/case/charge": v2,
        "/sections/case/amount": v2,
        "/sections/case/flag": v2,
    }


async def test_blame_table_and_errors(database_url, http, tenant) -> None:
    sid = await start(http, tenant, agents=["billing"])
    await patch(http, tenant, sid, "billing", "billing", {"dup": "ch_2"})
    done = await blame(database_url, tenant.name, sid)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"blame of {sid} at version 2 of 2"
    assert lines[1].split() == ["PATH", "VALUE", "VERSION", "TYPE", "AGENT", "ACTOR", "RECORDED_AT"]
    assert lines[3].split()[:5] == ["/sections/billing/dup", "ch_2", "2", "StateSectionUpdated", "billing"]
    unknown = await blame(database_url, tenant.name, sid, "--section", "nope")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        "agentlog blame: no section 'nope' in this state (sections: billing)",
    )
    too_far = await blame(database_url, tenant.name, sid, "--at-version", "9")
    assert too_far.stderr.strip() == "agentlog blame: --at-version 9 is outside the session, which has versions 1 to 2"


async def test_blame_of_a_fork_points_inherited_values_at_the_source(database_url, http, tenant) -> None:
    sid = await start(http, tenant, agents=["billing"])
    await patch(http, tenant, sid, "billing", "billing", {"dup": "ch_2"})
    fork_id = new_session_id()
    forked = await agentlog(
        "fork", sid, "--tenant", tenant.name, "--at-version", "2", "--new-id", fork_id,
        AGENTLOG_DATABASE_URL=database_url,
    )  # fmt: skip
    assert forked.returncode == 0, forked.stderr
    await patch(http, tenant, fork_id, "billing", "billing", {"note": "retry"})
    done = await blame(database_url, tenant.name, fork_id, "--json")
    origins = {e["path"]: (e["session_id"], e["version"]) for e in json.loads(done.stdout)["entries"]}
    assert origins == {
        "/status": (fork_id, 1),
        "/sections/billing/dup": (sid, 2),
        "/sections/billing/note": (fork_id, 2),
    }
