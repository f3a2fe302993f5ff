"""What the agents knew, from fold snapshots (issue 11, flat cost), on the real store: with
snapshots every few events (their knowledge parts, eventstore/knowledge.py), `GET /state`,
`/diff`, `/context`, `/model-calls` and the CLI's `replay --only`, `context` and `diff` start at the
nearest snapshot and answer exactly what the pure functions answer over the lineage read from
version 1, for a session whose model calls reference each other and for a fork of it; a broken
chain of parts falls back to an earlier snapshot or to version 1 with the same answer."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from commands.fork import fork_session
from eventstore import events as ev
from eventstore.context import context_at
from eventstore.diff import Side, diff, state_of
from eventstore.fold_snapshots import write_due
from eventstore.lineage import read_lineage
from eventstore.registry import to_stored
from eventstore.replay import ordered
from eventstore.settings import Settings
from eventstore.store import EventStore
from eventstore.transcript import transcript
from projections.api.app import create_app
from projections.settings import QueriesSettings
from tests.integration.command_api_fixtures import new_session_id, tenant  # noqa: F401  (fixtures)
from tests.integration.replay_support import agentlog
from tests.integration.test_fold_snapshots import write

EVERY = 4


def chained_session(turns: int) -> list[ev.Event]:
    """Each model call references the previous call, its answer and the new message."""
    events: list[ev.Event] = [ev.SessionStarted(agents=["a", "b"], allow_shared_sections=True)]
    previous = None
    for k in range(turns):
        items = [{"ref": "call", "call_id": previous}, {"ref": "response", "call_id": previous}] if previous else []
        items.append({"ref": "message", "index": k})
        events += [
            ev.MessageAdded(role="user", content=f"turn {k}"),
            ev.StateSectionUpdated(agent="ab"[k % 2], section="notes", changes={f"k{k % 3}": k}),
            ev.ToolCallRequested(call_id=f"t{k}", tool="search", arguments={"q": k}, agent="a"),
            ev.ToolCallCompleted(call_id=f"t{k}", result={"hits": k}),
            ev.ModelCallRecorded(
                call_id=f"m{k}",
                agent="a",
                model="m",
                request=ev.ModelRequest(messages=items, tools=[] if previous else [{"name": "s"}], tools_from=previous),
                response=ev.ModelResponse(content=f"answer {k}"),
            ),
        ]
        previous = f"m{k}"
    return events


@pytest.fixture
async def queries(database_url: str):
    app = create_app(QueriesSettings(), shared=Settings(database_url=SecretStr(database_url)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://queries") as client:
            yield client


@pytest.fixture
async def chained(pool, tenant):
    """A session of 31 events and a fork of it at version 13 with 8 more, snapshots every 4."""
    store, sid, fork_id = EventStore(pool), new_session_id(), new_session_id()
    await write(store, tenant.name, sid, chained_session(6))
    await fork_session(store, tenant.name, sid, 13, new_session_id=fork_id)
    later: list[ev.Event] = []
    for k in range(2):  # the fork's own turns: its calls reference the source's m1 and message 3
        later += [
            ev.MessageAdded(role="user", content=f"fork turn {k}"),
            ev.StateSectionUpdated(agent="a", section="notes", changes={"k0": f"fork {k}"}),
            ev.ToolCallCompleted(call_id="t2", result={"hits": -k}),
            ev.ModelCallRecorded(
                call_id=f"f{k}",
                model="m",
                request=ev.ModelRequest(messages=[{"ref": "call", "call_id": "m1"}, {"ref": "message", "index": 3}]),
            ),
        ]
    last = (await store.load(tenant.name, fork_id)).version
    await store.append(tenant.name, fork_id, [to_stored(e) for e in later], expected_version=last)
    for session in (sid, fork_id):
        version = (await store.load(tenant.name, session)).version
        assert await write_due(store, tenant.name, session, version, EVERY) == version // EVERY
    return store, sid, fork_id


async def lineage_of(store: EventStore, tenant: str, session_id: str, version: int | None = None):
    async def read(sid: str, upto: int | None):
        return ordered(await store.read_stream(tenant, sid, to_version=upto), session_id=sid)

    return await read_lineage(read, session_id, version)


async def test_state_context_and_model_calls_over_http_equal_the_fold_from_version_1(chained, queries, tenant):
    store, sid, fork_id = chained
    for session in (sid, fork_id):
        last = (await store.load(tenant.name, session)).version
        for v in range(1, last + 1):
            lineage = await lineage_of(store, tenant.name, session, v)
            got = (
                await queries.get(f"/v1/sessions/{session}/state", params={"at_version": v}, headers=tenant.reader)
            ).json()
            assert got["state"] == state_of(lineage).to_snapshot(), (session, v)
            assert {k: got[k] for k in ("conversation", "tool_calls", "approvals", "model_calls")} == transcript(
                lineage
            ).to_json(), (session, v)
            if any(e.type == "ModelCallRecorded" for e in lineage):
                answer = await queries.get(
                    f"/v1/sessions/{session}/context", params={"at_version": v}, headers=tenant.reader
                )
                assert answer.json() == context_at(lineage).to_json(), (session, v)
        calls = (
            await queries.get(f"/v1/sessions/{session}/model-calls", params={"limit": 3}, headers=tenant.reader)
        ).json()
        assert calls["items"] == transcript(await lineage_of(store, tenant.name, session)).to_json()["model_calls"][:3]


async def test_diff_over_http_and_the_cli_equals_the_diff_of_the_lineages(chained, queries, tenant, database_url):
    store, sid, fork_id = chained
    pairs = [((sid, 3), (sid, 29)), ((sid, 13), (sid, 14)), ((sid, 31), (fork_id, 9)), ((sid, 12), (fork_id, 1))]
    for (a, va), (b, vb) in pairs:
        expected = diff(
            Side(a, va, await lineage_of(store, tenant.name, a, va)),
            Side(b, vb, await lineage_of(store, tenant.name, b, vb)),
        ).to_json()
        params = {"from": va, "to": vb, **({"other": b} if b != a else {})}
        got = await queries.get(f"/v1/sessions/{a}/diff", params=params, headers=tenant.reader)
        assert got.json() == expected, (a, va, b, vb)
    done = await agentlog(
        "diff", f"{sid}@31", f"{fork_id}@9", "--tenant", tenant.name, "--json", AGENTLOG_DATABASE_URL=database_url
    )
    assert done.returncode == 0, done.stderr
    expected = diff(
        Side(sid, 31, await lineage_of(store, tenant.name, sid, 31)),
        Side(fork_id, 9, await lineage_of(store, tenant.name, fork_id, 9)),
    ).to_json()
    assert json.loads(done.stdout) == {"tenant": tenant.name, **expected}


async def test_the_cli_views_start_at_a_snapshot_and_a_broken_chain_falls_back(chained, pool, tenant, database_url):
    store, _, fork_id = chained
    lineage = await lineage_of(store, tenant.name, fork_id, 7)

    async def conversation() -> list:
        done = await agentlog(
            "replay", fork_id, "--tenant", tenant.name, "--to-version", "7", "--only", "conversation", "--json",
            AGENTLOG_DATABASE_URL=database_url,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["conversation"]

    assert await conversation() == transcript(lineage).to_json()["conversation"]
    update = "UPDATE fold_snapshots_v1 SET knowledge = $3::json WHERE tenant = $1 AND session_id = $2 AND version = 4"
    part = await pool.fetchval(
        "SELECT knowledge FROM fold_snapshots_v1 WHERE tenant = $1 AND session_id = $2 AND version = 4",
        tenant.name,
        fork_id,
    )
    marked = {**part, "conversation": [*part["conversation"], {"role": "x", "content": "from the snapshot"}]}
    await pool.execute(update, tenant.name, fork_id, marked)
    shown = [m["content"] for m in await conversation()]
    assert shown[-2:] == ["from the snapshot", "fork turn 1"]  # it started at version 4
    await pool.execute(update, tenant.name, fork_id, None)  # a part missing: the chain ends before it
    assert await conversation() == transcript(lineage).to_json()["conversation"]
    context = await agentlog(
        "context", fork_id, "--tenant", tenant.name, "--at-version", "7", "--json", AGENTLOG_DATABASE_URL=database_url
    )
    assert context.returncode == 0, context.stderr
    assert json.loads(context.stdout) == context_at(lineage).to_json()
