"""The whole system as processes (`agentlog serve commands`, `serve queries`, `relay`, `project`)
on the real Postgres and Kafka: the support-case demo of docs/demo.md through both HTTP APIs, and
a concurrent load with kill -9 of the relay and of the projector, counted at the end in the store,
on the topic and in the read models: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest

from agentlog.edge import keys as auth
from eventstore.envelope import HEADER_NAMES, from_envelope
from tests.integration.relay_support import (
    TopicReader,
    assert_complete_and_ordered,
    assert_duplicates_identical,
)
from tests.system.demo_doc import DOC, README, demo_requests
from tests.system.processes import System
from tests.waiting import wait_until

pytestmark = pytest.mark.system


async def _key(dsn: str, tenant: str, role: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await auth.create_key(conn, tenant, role, "system test")
    finally:
        await conn.close()


@pytest.fixture
async def system(fresh_database_url, kafka_bootstrap, topic, tmp_path):
    running = System(fresh_database_url, kafka_bootstrap, topic, tmp_path / "logs")
    try:
        await running.start()
        yield running
    finally:
        codes = running.close()
    # Every component ends a SIGTERM with a graceful stop and exit code 0.
    assert codes == {name: 0 for name in codes}, codes


async def _send(client: httpx.AsyncClient, request) -> httpx.Response:
    response = await client.request(request.method, request.url, headers=request.headers, content=request.body)
    assert response.is_success, (request.method, request.url, response.status_code, response.text)
    return response


async def _run_demo(system: System, key: str, markdown: str | None = None) -> dict[str, httpx.Response]:
    """Send every curl request of docs/demo.md (or `markdown`); the last answer per method and path."""
    variables = {"CMD": system.commands_url, "QRY": system.queries_url, "KEY": key}
    answers: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for group in demo_requests(variables, markdown):
            responses = await asyncio.gather(*(_send(client, r) for r in group))
            for request, response in zip(group, responses, strict=False):
                answers[f"{request.method} {request.url.split('//', 1)[1].split('/', 1)[1]}"] = response
    return answers


async def test_system_support_case_demo_reads_back_through_the_query_api(system, fresh_database_url):
    key = await _key(fresh_database_url, "acme", "writer")
    answers = await _run_demo(system, key)
    assert answers["POST v1/sessions/case-42/complete"].json()["version"] == 10
    assert answers["GET v1/approvals?status=pending"].json()["items"][0]["approval_id"] == "approve-refund"

    session = answers["GET v1/sessions/case-42?min_version=10"].json()
    assert (session["status"], session["version"], session["outcome"]) == ("completed", 10, "resolved")
    assert session["counts"] == {"messages": 2, "tool_calls": 1, "tool_failures": 0, "errors": 0}
    sections = answers["GET v1/sessions/case-42/state?min_version=10"].json()["sections"]
    assert sections["billing"]["value"] == {"duplicate_charge": "ch_2", "amount": "42.00"}
    assert (sections["account"]["value"]["locked"], sections["account"]["owner"]) == (True, "account")
    timeline = answers["GET v1/sessions/case-42/timeline?min_version=10"].json()["items"]
    assert [item["version"] for item in timeline] == list(range(1, 11))
    assert timeline[-1]["type"] == "SessionCompleted"
    call = answers["GET v1/sessions/case-42/tool-calls?min_version=10"].json()["items"]
    assert [(c["call_id"], c["tool"], c["status"]) for c in call] == [("refund-1", "payments.refund", "completed")]
    audit = answers["GET v1/sessions/case-42/audit?min_version=10"].json()["items"]
    assert sorted((a["section"], a["agent"]) for a in audit) == [("account", "account"), ("billing", "billing")]
    approved = answers["GET v1/approvals?status=approved"].json()["items"]
    assert [(a["approval_id"], a["status"]) for a in approved] == [("approve-refund", "approved")]
    stats = answers["GET v1/stats/tools"].json()["items"]
    assert [(s["tool"], s["calls"], s["completed"]) for s in stats] == [("payments.refund", 1, 1)]
    listed = answers["GET v1/sessions?status=completed&workflow=support-case"].json()["items"]
    assert [s["session_id"] for s in listed] == ["case-42"]
    await _assert_demo_records_on_kafka(system)


async def test_readme_try_it_state_patch_names_the_agent_in_the_query_not_in_a_header(
    system,
    fresh_database_url,
):
    """Regression: the README's PATCH sent `X-Agent: billing`, which the API ignores (422, `agent`
    missing); the agent goes in `?agent=`. Every curl line of "Try it" now runs as written."""
    key = await _key(fresh_database_url, "dev", "admin")
    readme = README.read_text().replace("localhost:8000", "$CMD").replace("localhost:8001", "$QRY")
    answers = await _run_demo(system, key, readme)
    assert len(answers) == 3
    assert answers["PATCH v1/sessions/case-4711/state/billing?agent=billing"].json()["version"] == 2
    assert answers["GET v1/sessions/case-4711?min_version=2"].json()["version"] == 2


async def _assert_demo_records_on_kafka(system: System) -> None:
    """The records docs/demo.md describes: key = session id, the contract's headers, the envelope."""
    env = system.env
    async with TopicReader(env["AGENTLOG_KAFKA_BOOTSTRAP_SERVERS"], env["AGENTLOG_KAFKA_TOPIC"]) as reader:

        async def all_ten() -> bool:
            await reader.poll()
            return reader.distinct_events() >= 10

        await wait_until(all_ten, timeout=20, message="the demo's 10 records")
    first_copies = {dict(r.headers)["event_id"]: r for r in reader.records}
    records = sorted(first_copies.values(), key=lambda r: int(dict(r.headers)["session_version"]))
    assert {r.key for r in records} == {b"case-42"} and len({r.partition for r in records}) == 1
    doc = DOC.read_text()
    for record in records:
        assert [name for name, _ in record.headers] == list(HEADER_NAMES)
        event = from_envelope(record.value)
        assert dict(record.headers)["session_version"] == str(event.version).encode()
    refund = from_envelope(records[4].value)
    assert (refund.type, refund.metadata["correlation_id"]) == ("ToolCallRequested", "case-42-refund")
    assert all(f'"{name}"' in doc for name in HEADER_NAMES), "docs/demo.md shows every header"


# --- load with crashes ----------------------------------------------------------------------------


class Load:
    """Clients that send commands to a set of sessions until stopped; every answer must be 2xx."""

    def __init__(self, url: str, key: str, sessions: int) -> None:
        run = uuid.uuid4().hex[:6]
        self.url, self.key = url, key
        self.sessions = [f"load-{run}-{i}" for i in range(sessions)]
        self.accepted: Counter[str] = Counter()  # events accepted per session
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    def _commands(self, session_id: str, n: int) -> tuple[str, str, dict]:
        """(method, path, body): messages, state patches, tool-call batches."""
        kind = n % 3
        if kind == 0:
            return "POST", "messages", {"role": "assistant", "content": f"turn {n}", "agent": "a"}
        if kind == 1:
            return "PATCH", "state/notes?agent=a", {"turn": n, f"k{n % 7}": n}
        call = f"c-{uuid.uuid4().hex[:8]}"
        return (
            "POST",
            "commands",
            {
                "commands": [
                    {"type": "request_tool_call", "call_id": call, "tool": f"tool{n % 4}", "agent": "a"},
                    {"type": "complete_tool_call", "call_id": call, "result": {"n": n}, "duration_ms": n % 50},
                ]
            },
        )

    async def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30) as client:
            n = seed
            while not self.stop.is_set():
                session_id = rng.choice(self.sessions)
                method, path, body = self._commands(session_id, n)
                r = await client.request(method, f"/v1/sessions/{session_id}/{path}", json=body)
                assert r.status_code == 200, r.text
                # A patch that changes nothing appends nothing: count what the answer says.
                self.accepted[session_id] += len(r.json()["event_ids"])
                n += 1

    async def start(self, clients: int) -> None:
        async with httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}) as c:
            for session_id in self.sessions:
                r = await c.post("/v1/sessions", json={"session_id": session_id, "workflow": "load", "agents": ["a"]})
                assert r.status_code == 201, r.text
                self.accepted[session_id] += 1
        self.tasks = [asyncio.create_task(self._client(i)) for i in range(clients)]

    def check(self) -> None:
        for task in self.tasks:
            if task.done():
                task.result()  # a failed client fails the test at once

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def _scalar(dsn: str, sql: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _grown_by(load: Load, dsn: str, events: int) -> None:
    floor = await _scalar(dsn, "SELECT count(*) FROM events")

    async def grown() -> bool:
        load.check()
        return await _scalar(dsn, "SELECT count(*) FROM events") >= floor + events

    await wait_until(grown, timeout=30, message=f"{events} more events")


PROJECTED_BEHIND = """
SELECT count(*) FROM streams s LEFT JOIN projection_session_versions v
  ON v.projector = $1 AND v.tenant = s.tenant AND v.session_id = s.session_id
WHERE v.version IS DISTINCT FROM s.version
"""


async def test_system_under_load_with_relay_and_projector_killed_loses_and_doubles_nothing(
    system,
    fresh_database_url,
    tmp_path,
):
    dsn = fresh_database_url
    load = Load(system.commands_url, await _key(dsn, "acme", "writer"), sessions=40)
    await load.start(clients=4)
    await _grown_by(load, dsn, 300)
    system.relay.kill()  # kill -9 mid-publish: records in flight, rows not yet deleted
    await _grown_by(load, dsn, 150)
    assert await _scalar(dsn, "SELECT count(*) FROM outbox") >= 150  # writes went on without a relay
    await system.relay.start().wait_ready()
    await _grown_by(load, dsn, 300)
    system.projector.kill()  # kill -9 mid-batch: read models and offsets roll back together
    await _grown_by(load, dsn, 150)
    group = system.env["AGENTLOG_PROJECTOR_GROUP_ID"]
    assert await _scalar(dsn, PROJECTED_BEHIND, group) > 0  # the successor has work to catch up
    await system.projector.start().wait_ready(timeout=45)
    await _grown_by(load, dsn, 150)
    await load.finish()

    await wait_until(lambda: _scalar(dsn, "SELECT count(*) = 0 FROM outbox"), timeout=30, message="outbox drained")
    await wait_until(
        lambda: _caught_up(dsn, group), timeout=40, message="every session projected to its stream version"
    )
    await _assert_counts(system, dsn, load)


async def _caught_up(dsn: str, group: str) -> bool:
    return await _scalar(dsn, PROJECTED_BEHIND, group) == 0


async def _assert_counts(system: System, dsn: str, load: Load) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM events")
        streams = dict(await conn.fetch("SELECT session_id, version FROM streams"))
        timeline = await conn.fetch(
            "SELECT session_id, count(*) AS n, min(version) AS lo, max(version) AS hi "
            "FROM session_timeline_v1 GROUP BY session_id"
        )
        summaries = dict(await conn.fetch("SELECT session_id, last_version FROM session_summaries_v1"))
        calls = await conn.fetchval("SELECT count(*) FROM tool_calls_v1 WHERE status = 'completed'")
        stats_calls = await conn.fetchval("SELECT sum(calls) FROM tool_stats_v1")
        requested = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'ToolCallRequested'")
        audits = await conn.fetchval("SELECT count(*) FROM state_audit_v1")
        patches = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'StateSectionUpdated'")
        parked = await conn.fetchval("SELECT count(*) FROM projection_parked_events")
    finally:
        await conn.close()
    # Store = what the clients were told was accepted.
    assert streams == dict(load.accepted) and total == sum(load.accepted.values())
    # Kafka: every event, per key in version order; any duplicate is an identical copy.
    async with TopicReader(
        system.env["AGENTLOG_KAFKA_BOOTSTRAP_SERVERS"], system.env["AGENTLOG_KAFKA_TOPIC"]
    ) as reader:

        async def complete() -> bool:
            await reader.poll()
            return reader.distinct_events() >= total

        await wait_until(complete, timeout=30, message=f"{total} distinct records on the topic")
    assert_complete_and_ordered(reader.records, streams)
    duplicates = assert_duplicates_identical(reader.records)
    # Read models: one timeline row per version, summaries at the stream version, no double effects.
    assert {r["session_id"]: (r["n"], r["lo"], r["hi"]) for r in timeline} == {
        sid: (v, 1, v) for sid, v in streams.items()
    }
    assert summaries == streams
    assert calls == stats_calls == requested and audits == patches and parked == 0
    print(
        f"\n{total} events in {len(streams)} sessions; {len(reader.records)} records "
        f"({duplicates} duplicates) after kill -9 of the relay and the projector"
    )
