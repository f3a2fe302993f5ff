"""Property over the whole pipeline (issue 9): whatever the command API accepts reaches every read
model through the real relay, Kafka and projector, and the read models equal the fold.

Hypothesis generates sessions (tests/integration/command_strategies.py): a start and a few
requests of every command endpoint, with the values careless and hostile clients send. Each
request goes through the real command API (in-process ASGI app on a database of this test's own);
the real relay publishes the outbox to a topic of this test and the real projector applies it.
Both run once, as tasks of the test's loop, while hypothesis (in a worker thread) feeds examples
through them. Per example:

- every answer is a 2xx, or a 4xx problem+json with a stable code, and a 400/422 names the field
  and the reason; never a 5xx;
- the stored events are exactly those the 2xx answers name;
- once the projector reached the stream's version (a wait with a deadline, no sleep), nothing of
  the session is parked, and session_summaries, the state sections, the state audit log, the
  timeline, tool calls and approvals equal what the fold (eventstore/state.py) and the events say;
- every accepted state PATCH leaves the section equal, JSON type for JSON type, to the merge of
  what the client sent (true is not 1), so an accepted change is never silently dropped.

At the end the tenant's tool statistics equal the counts of its events, and the run prints its
counts (examples, requests accepted and refused, events projected).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr

from agentlog.edge.keys import create_key
from commands.api.app import create_app
from commands.api.settings import CommandsSettings
from commands.json_values import same_json
from eventstore import db
from eventstore import events as ev
from eventstore.merge_patch import apply_merge_patch
from eventstore.registry import decode
from eventstore.settings import Settings
from eventstore.state import fold
from eventstore.store import EventStore
from tests.factories import random_id, tenant_id
from tests.integration.command_strategies import AGENTS, FRESH_KEY, FRESH_SESSION, Script, Step, scripts, to_json_text
from tests.integration.pipeline_checks import Where, check_read_models, check_tool_stats
from tests.integration.projection_support import running_projector
from tests.integration.projection_support import settings as projector_settings
from tests.integration.relay_support import relay_settings, running_relay
from tests.waiting import wait_until

EXAMPLES = 150
PROJECTED_WITHIN_S = 30.0
REFUSAL_CODES = {
    404: {"approval_not_found", "model_call_not_found"},
    409: {
        "session_closed",
        "tool_call_not_open",
        "tool_call_id_in_use",
        "approval_already_decided",
        "approval_expired",
        "section_owned_by_other_agent",
        "session_already_started",
        "model_call_id_in_use",
        "compaction_id_in_use",
    },
    413: {"payload_too_large"},
}


@dataclass
class Pipeline:
    http: httpx.AsyncClient
    pool: Any
    tenant: str
    writer: dict[str, str]
    group: str


@dataclass
class Tally:
    """What the run exercised, printed at the end and checked for balance."""

    examples: int = 0
    requests: int = 0
    accepted: int = 0
    replayed: int = 0
    refused: Counter = field(default_factory=Counter)
    refused_fields: Counter = field(default_factory=Counter)
    events: int = 0
    forks: int = 0

    def line(self) -> str:
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(self.refused.items()))
        return (
            f"pipeline property: {self.examples} examples, {self.requests} requests, {self.accepted} accepted "
            f"({self.replayed} idempotent replays), {sum(self.refused.values())} refused ({refused}), "
            f"{self.events} events projected ({self.forks} forks); fields refused most: {self.refused_fields.most_common(8)}"
        )


@pytest.fixture
async def pipeline(fresh_database_url: str, kafka_bootstrap: str, topic: str):
    """Command API, relay and projector on a database and topic of this test, running once."""
    shared = Settings(
        database_url=SecretStr(fresh_database_url), kafka_bootstrap_servers=kafka_bootstrap, kafka_topic=topic
    )
    app = create_app(CommandsSettings(pool_size=10), shared=shared)
    pool = await db.create_pool(fresh_database_url, min_size=2, max_size=10)
    tenant = tenant_id()
    writer = {"Authorization": f"Bearer {await create_key(pool, tenant, 'writer')}"}
    group_settings = projector_settings(fetch_timeout_ms=50)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://agentlog.test") as http,
            running_relay(shared, relay_settings(poll_interval_ms=100)),
            running_projector(pool, kafka_bootstrap, topic, group_settings),
        ):
            yield Pipeline(http, pool, tenant, writer, group_settings.group_id)
    finally:
        await pool.close()


# --- sending --------------------------------------------------------------------------------


async def _send(
    p: Pipeline, method: str, url: str, text: str | None, step: Step | None = None, key: str | None = None
) -> httpx.Response:
    headers = dict(p.writer)
    if text is not None:
        merge = step is not None and step.merge_patch_media_type
        headers["Content-Type"] = "application/merge-patch+json" if merge else "application/json"
    if key is not None:
        headers["Idempotency-Key"] = key
    return await p.http.request(method, url, headers=headers, content=None if text is None else text.encode())


def _check_answer(response: httpx.Response, what: str, tally: Tally) -> dict | None:
    """The answer's body if it is a success; checks the shape of a refusal and returns None."""
    status = response.status_code
    assert status < 500, f"{what}: {status} {response.text}"
    tally.requests += 1
    if status < 300:
        body = response.json()
        assert set(body) >= {"session_id", "version", "position", "event_ids"}, body
        assert response.headers["etag"] == f'"{body["version"]}"'
        tally.accepted += 1
        return body
    assert response.headers["content-type"] == "application/problem+json", (what, response.text)
    problem = response.json()
    tally.refused[f"{status} {problem['code']}"] += 1
    if status in (400, 422):
        assert problem["errors"], (what, problem)
        assert all(e["field"] and e["reason"] for e in problem["errors"]), (what, problem)
        tally.refused_fields[problem["errors"][0]["field"].split(".")[0]] += 1
    else:
        assert problem["code"] in REFUSAL_CODES.get(status, ()), (what, problem)
    return None


@dataclass
class Outcome:
    """What the client learned from the answers of one script: its session, then its forks."""

    sessions: list[str] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    # per session, the client's own merge of the state changes it had accepted
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)


def _accepted_patches(step: Step, text: str | None) -> list[tuple[str, Any]]:
    """(section, patch) of each state change an accepted request carried, as the server parsed them."""
    if text is None:
        return []
    if step.method == "PATCH":
        return [(step.section, json.loads(text))]
    if step.path == "/commands":
        items = json.loads(text)["commands"]
        return [(i["section"], i["changes"]) for i in items if i.get("type") == "update_state_section"]
    return []


async def _run_step(p: Pipeline, index: int, step: Step, outcome: Outcome, tally: Tally) -> None:
    sid = outcome.sessions[-1] if step.on_fork else outcome.sessions[0]
    text = step.text()
    if text is not None:
        text = text.replace(FRESH_SESSION, f"{outcome.sessions[0]}.f{index}")
    url = f"/v1/sessions/{sid}{step.path}"
    key = f"{sid}.{index}" if step.idempotency_key == FRESH_KEY else step.idempotency_key
    body = _check_answer(await _send(p, step.method, url, text, step, key), f"{step.method} {step.path}", tally)
    if step.repeat:
        again = await _send(p, step.method, url, text, step, key)
        repeated = _check_answer(again, f"repeat of {step.method} {step.path}", tally)
        if body is not None:
            assert repeated == body and again.headers.get("idempotent-replayed") == "true", (body, again.text)
            tally.replayed += 1
        elif repeated is not None:  # a refusal stores no answer, so the repeat was decided afresh
            body = repeated
    if body is None:
        return
    outcome.event_ids.update(body["event_ids"])
    if step.path == "/fork" and body["event_ids"]:
        await _forked(p, sid, body["session_id"], json.loads(text)["at_version"], outcome)
    sections = outcome.sections[sid]
    for section, patch in _accepted_patches(step, text):
        sections[section] = apply_merge_patch(sections.get(section, {}), patch)


async def _forked(p: Pipeline, source: str, fork: str, at_version: int, outcome: Outcome) -> None:
    """A fork starts from the source's fold at the version asked for, sections and all."""
    store = EventStore(p.pool)
    forked = decode((await store.read_stream(p.tenant, fork))[0])
    assert isinstance(forked, ev.SessionForked) and forked.source_session_id == source, forked
    assert forked.source_version == at_version
    at = fold(await store.read_stream(p.tenant, source, to_version=at_version))
    assert same_json(forked.state["sections"], dict(at.sections)), (forked.state, at.sections)
    outcome.sessions.append(fork)
    outcome.sections[fork] = copy.deepcopy(dict(at.sections))


async def _run_script(p: Pipeline, sid: str, script: Script, tally: Tally) -> Outcome:
    outcome = Outcome(sessions=[sid], sections={sid: {}})
    start = {"session_id": sid, **script.start}
    body = _check_answer(
        await _send(p, "POST", "/v1/sessions", to_json_text(start, ascii_only=script.start_ascii_only)),
        "start",
        tally,
    )
    if body is None:  # a refused start: the steps still run, on a clean one
        fallback = json.dumps({"session_id": sid, "agents": AGENTS})
        body = _check_answer(await _send(p, "POST", "/v1/sessions", fallback), "clean start", tally)
        assert body is not None
    outcome.event_ids.update(body["event_ids"])
    for index, step in enumerate(script.steps):
        await _run_step(p, index, step, outcome, tally)
    return outcome


# --- the read models against the fold -------------------------------------------------------


async def _projected_version(p: Pipeline, sid: str) -> int:
    value = await p.pool.fetchval(
        "SELECT version FROM projection_session_versions WHERE projector = $1 AND tenant = $2 AND session_id = $3",
        p.group,
        p.tenant,
        sid,
    )
    return value or 0


async def _check_projected(p: Pipeline, outcome: Outcome, tally: Tally) -> None:
    stored = {sid: await EventStore(p.pool).read_stream(p.tenant, sid) for sid in outcome.sessions}
    # refused requests wrote nothing, accepted ones what they answered
    assert {str(e.event_id) for events in stored.values() for e in events} == outcome.event_ids
    for sid, events in stored.items():
        assert [e.version for e in events] == list(range(1, len(events) + 1))
        version = len(events)
        await wait_until(
            lambda sid=sid, version=version: _at_least(p, sid, version),
            timeout=PROJECTED_WITHIN_S,
            interval=0.01,
            message=f"{sid} at v{version}",
        )
        state = await check_read_models(Where(p.pool, p.tenant, sid), events)
        assert same_json(dict(state.sections), outcome.sections[sid]), (state.sections, outcome.sections[sid])
        tally.events += version
    tally.forks += len(outcome.sessions) - 1


async def _at_least(p: Pipeline, sid: str, version: int) -> bool:
    return await _projected_version(p, sid) >= version


# Hypothesis warns when the global random state moves while it generates; here the API's retry
# jitter and the relay's backoff move it from the loop's thread, which generation does not use.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # wide and long values, by design
async def test_whatever_the_command_api_accepts_reaches_every_read_model_equal_to_the_fold(pipeline) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally()

    async def example(script: Script) -> None:
        sid = random_id("s", 16)
        outcome = await _run_script(pipeline, sid, script, tally)
        await _check_projected(pipeline, outcome, tally)
        tally.examples += 1

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(script=scripts())
    def run(script: Script) -> None:
        asyncio.run_coroutine_threadsafe(example(script), loop).result(timeout=120)

    # Hypothesis drives from a worker thread so that this loop keeps running the API, the relay
    # and the projector the examples flow through.
    await asyncio.to_thread(run)
    await check_tool_stats(pipeline.pool, pipeline.tenant)
    print(tally.line())
    assert tally.examples >= EXAMPLES
    assert tally.accepted >= tally.requests // 4, tally.line()
    assert tally.events >= tally.examples * 2, tally.line()
