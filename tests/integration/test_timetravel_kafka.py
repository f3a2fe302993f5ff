"""`agentlog context`, `blame` and `diff` with `--source kafka` against the real Kafka: the topic
(with duplicates, and other sessions and tenants on it) answers exactly what Postgres answers,
a fork's lineage included; a topic that lacks part of a session is an error naming the version,
and an unknown session or model call is the same clear error as from Postgres."""

from __future__ import annotations

import json
import uuid

import pytest

from eventstore.store import EventStore
from tests.integration.replay_support import agentlog, new_session_id, write_support_case
from tests.integration.test_replay_kafka import both_sources, kafka_env, produce
from tests.integration.timetravel_support import write_conversation, write_what_if


@pytest.fixture
async def published(pool, kafka_bootstrap, topic):
    """On the topic: the support case, its "what if the refund had failed" fork, and the case
    with model calls, partly twice (at least once), beside a session of another tenant with the
    same id. Returns (tenant, support case id, fork id, model-calls case id)."""
    store = EventStore(pool)
    tenant, other = f"t-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    case, fork, calls = new_session_id(), new_session_id("what-if"), new_session_id("calls")
    source = await write_support_case(store, tenant, case)
    await write_what_if(store, tenant, case, fork, at_version=6)
    await write_conversation(store, tenant, calls)
    forked = await store.read_stream(tenant, fork)
    conversation = await store.read_stream(tenant, calls)
    twin = await write_support_case(store, other, case)
    records = [*conversation[:3], *source[:7], *twin, *forked, *source[4:], *conversation[1:], *forked[:1]]
    await produce(kafka_bootstrap, topic, records)
    return tenant, case, fork, calls


async def test_context_from_kafka_equals_context_from_postgres(database_url, kafka_bootstrap, topic, published):
    tenant, _, _, calls = published
    env = kafka_env(database_url, kafka_bootstrap, topic)
    outputs = []
    for args in (["--call", "m3", "--json"], ["--at-version", "4", "--format", "anthropic"]):
        pg, kafka = await both_sources(env, "context", calls, "--tenant", tenant, *args)
        assert kafka == pg, args
        outputs.append(kafka)
    as_json, anthropic = outputs
    assert (json.loads(as_json)["call_id"], len(json.loads(as_json)["request"]["messages"])) == ("m3", 4)
    assert json.loads(anthropic)["system"] == "You are the billing agent of ACME."


async def test_blame_from_kafka_equals_blame_from_postgres_for_a_session_and_a_fork(
    database_url, kafka_bootstrap, topic, published
):
    tenant, case, fork, _ = published
    env = kafka_env(database_url, kafka_bootstrap, topic)
    pg, kafka = await both_sources(env, "blame", case, "--tenant", tenant, "--json", "--at-version", "9")
    assert kafka == pg and json.loads(pg)["version"] == 9
    pg, kafka = await both_sources(env, "blame", fork, "--tenant", tenant, "--json")
    assert kafka == pg
    origins = {e["path"]: (e["session_id"], e["version"]) for e in json.loads(kafka)["entries"]}
    assert origins["/sections/billing/duplicate_charge"] == (case, 3)  # through the lineage, from the topic


async def test_diff_from_kafka_equals_diff_from_postgres_for_a_fork_against_its_source(
    database_url, kafka_bootstrap, topic, published
):
    tenant, case, fork, _ = published
    env = kafka_env(database_url, kafka_bootstrap, topic)
    pg, kafka = await both_sources(env, "diff", f"{case}@12", fork, "--tenant", tenant, "--json")
    assert kafka == pg
    out = json.loads(kafka)
    assert (out["common_steps"], out["right"]) == (6, {"session_id": fork, "version": 2})
    assert [(e["step"], e["same"]) for e in out["events"]][:2] == [(7, False), (8, False)]


async def test_context_blame_and_diff_from_kafka_missing_a_version_exit_1_naming_it(
    database_url, kafka_bootstrap, topic, pool
):
    store = EventStore(pool)
    tenant, case, calls = f"t-{uuid.uuid4().hex[:8]}", new_session_id(), new_session_id("calls")
    source = await write_support_case(store, tenant, case)
    await write_conversation(store, tenant, calls)
    conversation = await store.read_stream(tenant, calls)
    await produce(kafka_bootstrap, topic, [*source[:4], *source[5:], *conversation[:2], *conversation[3:]])
    env = kafka_env(database_url, kafka_bootstrap, topic)
    for command, expected in [
        (["context", calls, "--call", "m3"], f"session {calls!r}: version 3 is missing at version 4"),
        (["blame", case], f"session {case!r}: version 5 is missing at version 6"),
        (["diff", case, "2", "9"], f"session {case!r}: version 5 is missing at version 6"),
    ]:
        done = await agentlog(*command, "--tenant", tenant, "--source", "kafka", **env)
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.startswith(f"agentlog {command[0]}: {expected}; the source does not hold the whole session")
        assert done.stdout == ""


async def test_unknown_session_and_call_from_kafka_are_the_errors_postgres_gives(
    database_url, kafka_bootstrap, topic, published
):
    tenant, case, _, calls = published
    env = kafka_env(database_url, kafka_bootstrap, topic)
    for args, expected in [
        (["context", calls, "--call", "m9"], "no model call 'm9' in this session (3 model calls recorded)"),
        (["blame", "never-published"], "session 'never-published' not found"),
        (["diff", case, "2", "30"], f"version 30 is outside the session {case}, which has versions 1 to 12"),
    ]:
        done = await agentlog(*args, "--tenant", tenant, "--source", "kafka", **env)
        assert (done.returncode, done.stderr.strip()) == (1, f"agentlog {args[0]}: {expected}"), args


async def test_a_read_up_to_a_version_holds_exactly_the_session_up_to_it(pool, kafka_bootstrap, topic, published):
    """`to_version` (diff, context and blame at a version) stops once every version up to it is in
    hand: the same events as Postgres up to it, and a last version at least that far; past the
    session's end it reads everything and names the real last version."""
    from agentlog.cli.replay_sources import read_from_kafka

    tenant, _, _, calls = published
    stored = await EventStore(pool).read_stream(tenant, calls)
    for upto in (1, 3, len(stored)):
        read = await read_from_kafka(kafka_bootstrap, topic, tenant, calls, to_version=upto)
        assert [(e.version, e.event_id) for e in read.events] == [(e.version, e.event_id) for e in stored[:upto]]
        assert upto <= read.last_version <= len(stored)
    beyond = await read_from_kafka(kafka_bootstrap, topic, tenant, calls, to_version=len(stored) + 5)
    assert (len(beyond.events), beyond.last_version) == (len(stored), len(stored))
