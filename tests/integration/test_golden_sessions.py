"""Golden sessions (tests/golden/README.md): exported sessions, some written by older schemas,
imported into the real stack and compared with their recorded expectation.

Each `tests/golden/<case>.jsonl` is imported with `agentlog import` (a separate process) into a
database and topic of this test's own; the real relay publishes the outbox and the real
projector builds the read models; then per session: the history lines, every replay step's
state diff (the fold), the replayed state with what the agents knew, and what the query API
answers (summary, projected state, timeline, tool calls, audit, approvals, model calls, the
context of each model call, blame, forks, and a fork's diff against its source) must equal
`tests/golden/<case>.expected.json`. Any change of the fold, an upcaster, a projection or an
answer that alters what a recorded session says fails here, loudly, with a diff.

Expectations change only deliberately: `AGENTLOG_GOLDEN_UPDATE=1` rewrites them (review with
`git diff tests/golden`); a missing expectation is a failure, never written silently.
"""

from __future__ import annotations

import difflib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from eventstore import db
from eventstore.export_file import parse
from eventstore.history import history_entry
from eventstore.replay import Target, steps
from eventstore.settings import Settings
from eventstore.store import EventStore
from projections.api.app import create_app
from projections.settings import QueriesSettings
from tests.integration.projection_support import running_projector
from tests.integration.projection_support import settings as projector_settings
from tests.integration.relay_support import running_relay, shared_settings
from tests.integration.replay_support import ROOT, agentlog

GOLDEN = ROOT / "tests" / "golden"
# Import order: a fork after its source, so its lineage resolves as it did when it was recorded.
CASES = ["support-case", "support-case-what-if", "model-calls", "support-case-2025", "legacy-refund-failed"]
TENANT = "golden"
UPDATE_ENV = "AGENTLOG_GOLDEN_UPDATE"
# Where a row sits in this log, not what the session says: positions and ids the import mints.
VOLATILE_KEYS = frozenset({"position", "last_position", "requested_position", "event_id", "event_ids"})


def normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def as_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def test_every_golden_file_is_a_case() -> None:
    assert sorted(CASES) == sorted(p.name.removesuffix(".jsonl") for p in GOLDEN.glob("*.jsonl"))


async def _get(queries: httpx.AsyncClient, reader: dict, path: str, **params: Any) -> Any:
    response = await queries.get(path, params=params, headers=reader)
    assert response.status_code == 200, (path, response.text)
    return response.json()


async def _answers(queries: httpx.AsyncClient, reader: dict, sid: str, last: int, fork_source) -> dict[str, Any]:
    base = f"/v1/sessions/{sid}"
    summary = await _get(queries, reader, base, min_version=last, wait_ms=30_000)
    calls = (await _get(queries, reader, f"{base}/model-calls", limit=200))["items"]
    approvals = (await _get(queries, reader, "/v1/approvals", limit=200))["items"]
    answers = {
        "summary": summary,
        "state": await _get(queries, reader, f"{base}/state"),
        "timeline": (await _get(queries, reader, f"{base}/timeline", limit=200))["items"],
        "tool_calls": (await _get(queries, reader, f"{base}/tool-calls", limit=200))["items"],
        "audit": (await _get(queries, reader, f"{base}/audit", limit=200))["items"],
        "approvals": [a for a in approvals if a["session_id"] == sid],
        "model_calls": calls,
        "contexts": {c["call_id"]: await _get(queries, reader, f"{base}/context", call_id=c["call_id"]) for c in calls},
        "blame": (await _get(queries, reader, f"{base}/blame"))["entries"],
        "forks": (await _get(queries, reader, f"{base}/forks"))["items"],
    }
    if fork_source is not None:
        source, at = fork_source
        answers["diff_against_source"] = await _get(
            queries, reader, f"/v1/sessions/{source}/diff", **{"from": at, "other": sid}
        )
    return answers


async def _observed(store: EventStore, queries: httpx.AsyncClient, reader: dict, sid: str) -> dict[str, Any]:
    events = await store.read_stream(TENANT, sid)
    last = events[-1].version
    forked = events[0].data if events[0].type == "SessionForked" else None
    fork_source = (forked["source_session_id"], forked["source_version"]) if forked else None
    return normalised(
        {
            "session_id": sid,
            "history": [history_entry(e) for e in events],
            "steps": [{"version": s.event.version, "diff": s.diff.to_json()} for s in steps(events, Target())],
            "replayed": await _get(queries, reader, f"/v1/sessions/{sid}/state", at_version=last),
            "query_api": await _answers(queries, reader, sid, last, fork_source),
        }
    )


def _compare_or_update(case: str, observed: dict[str, Any]) -> str | None:
    path = GOLDEN / f"{case}.expected.json"
    text = as_text(observed)
    if os.environ.get(UPDATE_ENV) == "1":
        path.write_text(text)
        return None
    if not path.exists():
        return f"{case}: no expectation {path.name}; record it deliberately with {UPDATE_ENV}=1 and review it"
    expected = path.read_text()
    if expected == text:
        return None
    diff = difflib.unified_diff(
        expected.splitlines(), text.splitlines(), f"{case} expected", f"{case} now", lineterm=""
    )
    return "\n".join(diff)


async def test_golden_sessions_replay_project_and_answer_as_recorded(fresh_database_url, kafka_bootstrap, topic):
    if os.environ.get(UPDATE_ENV) == "1" and os.environ.get("CI"):
        pytest.fail(f"{UPDATE_ENV}=1 under CI: expectations are rewritten only by a person, on purpose")
    files = [str(GOLDEN / f"{case}.jsonl") for case in CASES]
    done = await agentlog("import", *files, "--tenant", TENANT, AGENTLOG_DATABASE_URL=fresh_database_url)
    assert done.returncode == 0, done.stderr
    sessions = {case: parse(Path(f).read_bytes().splitlines()).session_id for case, f in zip(CASES, files, strict=True)}
    assert done.stdout.split() == list(sessions.values())

    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=5)
    group = f"agentlog.test.golden.{uuid.uuid4().hex[:8]}.v1"
    app = create_app(
        QueriesSettings(projector_group=group), shared=Settings(database_url=SecretStr(fresh_database_url))
    )
    try:
        reader = {"Authorization": f"Bearer {await create_key(pool, TENANT, 'reader')}"}
        async with (
            running_relay(shared_settings(fresh_database_url, kafka_bootstrap, topic)),
            running_projector(pool, kafka_bootstrap, topic, projector_settings(group_id=group)),
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://queries") as queries,
        ):
            store = EventStore(pool)
            # Every session projected before any is observed: a source's /forks lists its forks.
            for sid in sessions.values():
                last = (await store.load(TENANT, sid)).version
                await _get(queries, reader, f"/v1/sessions/{sid}", min_version=last, wait_ms=30_000)
            failures = [
                failure
                for case, sid in sessions.items()
                if (failure := _compare_or_update(case, await _observed(store, queries, reader, sid)))
            ]
    finally:
        await pool.close()
    if os.environ.get(UPDATE_ENV) == "1":
        pytest.skip(f"{UPDATE_ENV}=1: rewrote {len(CASES)} expectations in tests/golden; review them with git diff")
    assert not failures, "golden sessions changed:\n" + "\n\n".join(failures)
