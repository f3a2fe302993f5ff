"""`agentlog diff` as a separate process: two versions of a session made through the command API,
and a fork against its source aligned at the fork point."""

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
from tests.integration.test_blame_cli import patch


async def diff(database_url: str, tenant: str, *args: str):
    return await agentlog("diff", *args, "--tenant", tenant, AGENTLOG_DATABASE_URL=database_url)


async def test_diff_of_two_versions_shows_pointer_paths_and_the_events_between(database_url, http, tenant) -> None:
    sid = await start(http, tenant, agents=["billing"])
    await patch(http, tenant, sid, "billing", "billing", {"dup": "ch_2"})
    await patch(http, tenant, sid, "billing", "billing", {"dup": None, "refund": "re_7"})
    done = await diff(database_url, tenant.name, sid, "2", "3", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["common_steps"] == 2
    assert out["state"]["added"] == [{"path": "/sections/billing/refund", "value": "re_7"}]
    assert out["state"]["removed"] == [{"path": "/sections/billing/dup", "value": "ch_2"}]
    assert [(e["step"], e["left"], e["right"]["version"]) for e in out["events"]] == [(3, None, 3)]


async def test_diff_of_a_fork_against_its_source_is_aligned_at_the_fork_point(database_url, http, tenant) -> None:
    sid = await start(http, tenant, agents=["billing"])
    await patch(http, tenant, sid, "billing", "billing", {"dup": "ch_2"})
    await patch(http, tenant, sid, "billing", "billing", {"refund": "re_7"})
    fork_id = new_session_id()
    forked = await agentlog(
        "fork", sid, "--tenant", tenant.name, "--at-version", "2", "--new-id", fork_id,
        AGENTLOG_DATABASE_URL=database_url,
    )  # fmt: skip
    assert forked.returncode == 0, forked.stderr
    await patch(http, tenant, fork_id, "billing", "billing", {"refund": "re_9"})
    done = await diff(database_url, tenant.name, f"{sid}@3", fork_id, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["left"], out["right"]) == ({"session_id": sid, "version": 3}, {"session_id": fork_id, "version": 2})
    assert out["common_steps"] == 2
    [step] = out["events"]
    assert (step["step"], step["same"]) == (3, False)
    assert (step["left"]["session_id"], step["left"]["version"]) == (sid, 3)
    assert (step["right"]["session_id"], step["right"]["version"]) == (fork_id, 2)
    changed = {c["path"]: (c["from"], c["to"]) for c in out["state"]["changed"]}
    assert changed["/sections/billing/refund"] == ("re_7", "re_9")

    text = await diff(database_url, tenant.name, f"{sid}@3", f"{fork_id}@2")
    lines = text.stdout.splitlines()
    assert lines[0] == f"{sid}@3 -> {fork_id}@2: 2 steps in common"
    assert "  ~ /sections/billing/refund: re_7 -> re_9" in lines


async def test_diff_errors_name_the_session_or_version(database_url, http, tenant) -> None:
    sid = await start(http, tenant)
    too_far = await diff(database_url, tenant.name, sid, "1", "5")
    assert too_far.returncode == 1
    assert too_far.stderr.strip() == f"agentlog diff: version 5 is outside the session {sid}, which has versions 1 to 1"
    unknown = await diff(database_url, tenant.name, f"{sid}@1", "nope-2@1")
    assert unknown.stderr.strip() == "agentlog diff: session 'nope-2' not found"
    bad = await diff(database_url, tenant.name, sid, "x", "1")
    assert bad.returncode == 2
