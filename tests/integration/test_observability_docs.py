"""docs/observability.md is executed: its `$ agentlog usage ...` examples run against the support
case with model calls (case-43), a fork of it that made one call of its own, and a case with a
cost budget that its third call crossed, projected by a real projector from Kafka, in a database
of its own; each prints what the doc shows (up to timestamps and ids)."""

from __future__ import annotations

from commands import models as cmd
from commands.fork import fork_session
from commands.handler import CommandHandler, CommandRequest
from eventstore import db
from eventstore.store import EventStore
from tests.integration.projection_support import applied_version, produce, running_projector, settings
from tests.integration.replay_support import ROOT, agentlog
from tests.integration.test_replay_docs import examples, normalise
from tests.integration.timetravel_support import model_call, write_conversation
from tests.waiting import wait_until

DOC = ROOT / "docs" / "observability.md"
SESSIONS = ("case-43", "case-43-retry", "case-44")


async def write_usage_case(store: EventStore, tenant: str) -> None:
    """case-43 (three gpt-4o calls of the billing agent), its fork case-43-retry after the first
    call (one gpt-4o-mini call of its own), and case-44 with a budget of $0.001 (three calls)."""
    await write_conversation(store, tenant, "case-43")
    meta = {"actor": "key_orchestrator", "tenant": tenant}
    await fork_session(store, tenant, "case-43", 3, new_session_id="case-43-retry", metadata=meta)
    handler = CommandHandler(store)
    retry = model_call("r2", [{"role": "user", "content": "Try the cheaper model"}], {"content": "Done."})
    await handler.handle(
        CommandRequest(
            tenant, "case-43-retry", [cmd.RecordModelCall(**{**retry, "model": "gpt-4o-mini"})], metadata=meta
        )
    )
    start = cmd.StartSession(workflow="support-case", agents=["billing"], budget={"max_cost_usd": 0.001})
    await handler.handle(CommandRequest(tenant, "case-44", [start], metadata=meta))
    for n in (1, 2, 3):
        body = model_call(f"b{n}", [{"role": "user", "content": f"Attempt {n}"}], {"content": "Working on it."})
        await handler.handle(CommandRequest(tenant, "case-44", [cmd.RecordModelCall(**body)], metadata=meta))


async def project(url: str, bootstrap: str, topic: str, tenant: str) -> None:
    """Publish the case as the relay does and wait until a projector applied every session."""
    pool = await db.create_pool(url, min_size=1, max_size=4)
    try:
        store = EventStore(pool)
        recorded = [r for sid in SESSIONS for r in await store.read_stream(tenant, sid)]
        last = {sid: max(r.version for r in recorded if r.session_id == sid) for sid in SESSIONS}
        s = settings()
        async with running_projector(pool, bootstrap, topic, s):
            await produce(bootstrap, topic, recorded)

            async def applied() -> bool:
                return all([await applied_version(pool, s.group_id, tenant, sid) >= v for sid, v in last.items()])

            await wait_until(applied, timeout=60, message="the usage case projected")
    finally:
        await pool.close()


async def test_observability_doc_usage_examples_print_what_the_doc_shows(fresh_database_url, kafka_bootstrap, topic):
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=2)
    try:
        await write_usage_case(EventStore(pool), "acme")
    finally:
        await pool.close()
    await project(fresh_database_url, kafka_bootstrap, topic, "acme")
    env = {"AGENTLOG_DATABASE_URL": fresh_database_url, "AGENTLOG_TENANT": "acme"}
    cases = examples(DOC.read_text())
    assert len(cases) >= 4
    for command, expected in cases:
        done = await agentlog(*command.split(), **env)
        assert normalise(done.stdout + done.stderr) == normalise(expected), command
