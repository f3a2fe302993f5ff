"""`agentlog replay` and `agentlog history` as a separate process against the real Postgres:
targets, steps, JSON output, tenant isolation and the errors a user sees."""

from __future__ import annotations

import json
import uuid

import pytest

from eventstore.state import fold
from eventstore.store import EventStore
from tests.integration.replay_support import agentlog, new_session_id, write_support_case


@pytest.fixture
async def case(pool):
    tenant, session_id = f"t-{uuid.uuid4().hex[:8]}", new_session_id()
    events = await write_support_case(EventStore(pool), tenant, session_id)
    return tenant, session_id, events


async def test_replay_to_version_prints_the_fold_of_the_first_n_events(database_url, case):
    tenant, session_id, events = case
    done = await agentlog(
        "replay", session_id, "--tenant", tenant, "--to-version", "4", "--json", AGENTLOG_DATABASE_URL=database_url
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["state"] == fold(events[:4]).to_snapshot()
    assert (out["version"], out["last_version"], out["source"]) == (4, 12, "postgres")
    assert out["last_event"]["type"] == "StateSectionUpdated"
    assert out["state"]["sections"] == {"billing": {"duplicate_charge": "ch_2"}, "account": {"locked": True}}


async def test_replay_without_target_prints_the_current_state_as_text(database_url, case):
    tenant, session_id, events = case
    done = await agentlog("replay", session_id, AGENTLOG_DATABASE_URL=database_url, AGENTLOG_TENANT=tenant)
    assert done.returncode == 0, done.stderr
    header, last, state = done.stdout.split("\n", 2)
    assert header.startswith(f"session {session_id} (tenant {tenant}) at version 12 of 12")
    assert last.startswith("last event: v12 SessionCompleted") and "resolved" in last
    assert json.loads(state) == fold(events).to_snapshot()


async def test_replay_to_checkpoint_stops_at_the_checkpoint_event(database_url, case):
    tenant, session_id, _events = case
    done = await agentlog(
        "replay",
        session_id,
        "--tenant",
        tenant,
        "--to-checkpoint",
        "refund-requested",
        "--json",
        AGENTLOG_DATABASE_URL=database_url,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["version"] == 8 and out["state"]["last_checkpoint"]["name"] == "refund-requested"


async def test_replay_at_time_takes_the_last_event_recorded_by_then(database_url, case):
    tenant, session_id, events = case
    done = await agentlog(
        "replay",
        session_id,
        "--tenant",
        tenant,
        "--at",
        events[5].recorded_at.isoformat(),
        "--json",
        AGENTLOG_DATABASE_URL=database_url,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == fold(events[:6]).to_snapshot()


async def test_replay_step_json_prints_one_diff_object_per_event(database_url, case):
    tenant, session_id, _events = case
    done = await agentlog(
        "replay",
        session_id,
        "--tenant",
        tenant,
        "--step",
        "--json",
        "--to-version",
        "7",
        AGENTLOG_DATABASE_URL=database_url,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["version"] for line in lines] == list(range(1, 8))
    requested = lines[5]["diff"]
    assert {"path": "/open_calls/refund-1", "value": "payments.refund"} in requested["added"]
    assert lines[2]["actor"] == "key_billing" and lines[2]["agent"] == "billing"


async def test_replay_step_text_shows_added_and_changed_paths(database_url, case):
    tenant, session_id, _ = case
    done = await agentlog("replay", session_id, "--tenant", tenant, "--step", AGENTLOG_DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    assert '      + /sections/account = {"locked":true}' in done.stdout
    assert "      ~ /status: open -> completed" in done.stdout


async def test_replay_reports_progress_on_stderr_when_long(database_url, case):
    # --step reads and folds the whole session (a replay to a version starts at a fold snapshot
    # and folds at most K events: nothing long to report)
    tenant, session_id, _ = case
    done = await agentlog(
        "replay",
        session_id,
        "--tenant",
        tenant,
        "--step",
        "--json",
        AGENTLOG_DATABASE_URL=database_url,
        AGENTLOG_REPLAY_PROGRESS_EVERY="3",
        AGENTLOG_REPLAY_PAGE_SIZE="4",
    )
    assert done.returncode == 0, done.stderr
    assert "folding: 12/12 (100%)" in done.stderr
    assert f"reading {session_id} from postgres: 8" in done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]  # stdout stays JSON lines
    assert lines[-1]["version"] == 12


async def test_replay_of_unknown_session_exits_1_with_a_message(database_url):
    done = await agentlog("replay", "no-such-session", "--tenant", "acme", AGENTLOG_DATABASE_URL=database_url)
    assert done.returncode == 1
    assert "session 'no-such-session' not found" in done.stderr and done.stdout == ""


async def test_replay_of_another_tenants_session_is_an_unknown_session(database_url, case):
    _, session_id, _ = case
    done = await agentlog("replay", session_id, "--tenant", "someone-else", AGENTLOG_DATABASE_URL=database_url)
    assert done.returncode == 1 and f"session {session_id!r} not found" in done.stderr


async def test_replay_to_version_beyond_the_end_exits_1_naming_the_last_version(database_url, case):
    tenant, session_id, _ = case
    done = await agentlog(
        "replay", session_id, "--tenant", tenant, "--to-version", "13", AGENTLOG_DATABASE_URL=database_url
    )
    assert done.returncode == 1
    assert "--to-version 13 is outside the session, which has versions 1 to 12" in done.stderr


async def test_replay_at_a_time_before_the_session_exits_1_naming_its_first_event(database_url, case):
    tenant, session_id, events = case
    done = await agentlog(
        "replay", session_id, "--tenant", tenant, "--at", "2020-01-01T00:00:00Z", AGENTLOG_DATABASE_URL=database_url
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == (
        "agentlog replay: --at 2020-01-01T00:00:00+00:00 is before the session's first event "
        f"({events[0].recorded_at.isoformat()})"
    )
    garbled = await agentlog(
        "replay", session_id, "--tenant", tenant, "--at", "last tuesday", AGENTLOG_DATABASE_URL=database_url
    )
    assert garbled.returncode == 1
    assert (
        garbled.stderr.strip()
        == "agentlog replay: --at 'last tuesday' is not an ISO 8601 time (e.g. 2025-03-01T12:00:00Z)"
    )


async def test_history_blame_and_fork_of_an_unknown_session_exit_1_naming_it(database_url):
    for args in (
        ["history", "no-such-session"],
        ["blame", "no-such-session"],
        ["fork", "no-such-session", "--at-version", "1"],
    ):
        done = await agentlog(*args, "--tenant", "acme", AGENTLOG_DATABASE_URL=database_url)
        assert (done.returncode, done.stdout) == (1, ""), args
        assert done.stderr.strip() == f"agentlog {args[0]}: session 'no-such-session' not found", args


async def test_replay_to_unknown_checkpoint_exits_1_listing_checkpoints(database_url, case):
    tenant, session_id, _ = case
    done = await agentlog(
        "replay", session_id, "--tenant", tenant, "--to-checkpoint", "paid", AGENTLOG_DATABASE_URL=database_url
    )
    assert done.returncode == 1
    assert "no checkpoint named 'paid' in this session (checkpoints: triaged, refund-requested)" in done.stderr


async def test_replay_without_tenant_exits_2(database_url, case):
    _, session_id, _ = case
    done = await agentlog("replay", session_id, AGENTLOG_DATABASE_URL=database_url, AGENTLOG_TENANT="")
    assert done.returncode == 2 and "--tenant is required" in done.stderr


async def test_replay_when_postgres_is_unreachable_exits_1_without_a_traceback(unused_tcp_port):
    done = await agentlog(
        "replay",
        "case-1",
        "--tenant",
        "acme",
        AGENTLOG_DATABASE_URL=f"postgresql://agentlog@127.0.0.1:{unused_tcp_port}/x",
    )
    assert done.returncode == 1
    assert "cannot reach the event store database" in done.stderr
    assert "Traceback" not in done.stderr


async def test_history_lists_versions_types_actors_and_summaries(database_url, case):
    tenant, session_id, _events = case
    done = await agentlog("history", session_id, "--tenant", tenant, AGENTLOG_DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["VERSION", "TYPE", "RECORDED_AT", "ACTOR/AGENT", "SUMMARY"]
    assert len(rows) == 12
    assert rows[5].split()[:2] == ["6", "ToolCallRequested"]
    assert "key_billing/billing" in rows[5] and "call refund-1: payments.refund" in rows[5]


async def test_history_json_carries_every_event(database_url, case):
    tenant, session_id, events = case
    done = await agentlog("history", session_id, "--tenant", tenant, "--json", AGENTLOG_DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [e["event_id"] for e in out["events"]] == [str(e.event_id) for e in events]
    assert out["events"][-1]["summary"] == "completed: resolved"
