"""`agentlog export` and `agentlog import` as separate processes on the real Postgres: export ->
import -> replay is identical; an old-schema event is stored as it was and upcast on read; the
import is one transaction with its outbox rows; and every refusal names what is wrong and writes
nothing."""

from __future__ import annotations

import json
import uuid

import orjson

from eventstore.replay import Target, replay
from eventstore.store import EventStore
from eventstore.transcript import transcript
from tests.integration.command_api_fixtures import counts
from tests.integration.replay_support import ROOT, agentlog, new_session_id, write_support_case

GOLDEN = ROOT / "tests" / "golden"


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


async def export(database_url: str, tenant: str, session_id: str):
    return await agentlog("export", session_id, "--tenant", tenant, AGENTLOG_DATABASE_URL=database_url)


async def imported(database_url: str, *args: str):
    return await agentlog("import", *args, AGENTLOG_DATABASE_URL=database_url)


def replayed(events, session_id: str) -> str:
    """The state and what the agents knew at the end (agentlog replay --json's body), with the
    session's id as a placeholder."""
    result = replay(events, Target())
    body = {"state": result.state.to_snapshot(), **transcript(events).to_json()}
    return json.dumps(body, sort_keys=True, default=str).replace(session_id, "<session>")


def without_import_traces(text: str) -> list[dict]:
    """The file's lines without what an import changes on purpose: the session id of the header,
    the event ids it mints and the provenance it adds."""
    out = []
    for raw in text.splitlines():
        line = orjson.loads(raw)
        line.pop("session_id", None)
        line.pop("event_id", None)
        line.get("metadata", {}).pop("imported_from", None)
        out.append(line)
    return out


async def test_export_import_replay_is_identical(database_url, pool, tmp_path) -> None:
    tenant, sid, copy = new_tenant(), new_session_id(), new_session_id("copy")
    await write_support_case(EventStore(pool), tenant, sid)
    exported = await export(database_url, tenant, sid)
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr.strip() == f"exported 12 events of {sid} (tenant {tenant})"
    assert len(exported.stdout.splitlines()) == 13
    path = tmp_path / "case.jsonl"
    path.write_text(exported.stdout)

    done = await imported(database_url, str(path), "--as", copy, "--tenant", tenant)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == copy
    assert f"imported 12 events of {sid} from {path} into tenant {tenant} (version 12, position" in done.stderr
    assert await counts(pool, tenant, copy) in ((12, 12, 12), (12, 0, 12))  # outbox rows (a relay may run)

    again = await export(database_url, tenant, copy)
    assert without_import_traces(again.stdout) == without_import_traces(exported.stdout)
    store = EventStore(pool)
    source_events, copy_events = await store.read_stream(tenant, sid), await store.read_stream(tenant, copy)
    assert replayed(copy_events, copy) == replayed(source_events, sid)
    assert [e.recorded_at for e in copy_events] == [e.recorded_at for e in source_events]
    assert copy_events[2].metadata == {
        "actor": "key_billing",
        "tenant": tenant,
        "imported_from": {"session_id": sid, "event_id": str(source_events[2].event_id)},
    }


async def test_import_json_answers_and_the_files_tenant_by_default(database_url, tmp_path) -> None:
    sid = new_session_id()
    file_tenant = new_tenant()
    text = (GOLDEN / "support-case.jsonl").read_text().replace('"tenant":"acme"', f'"tenant":"{file_tenant}"', 1)
    case = tmp_path / "case.jsonl"
    case.write_text(text)
    done = await imported(database_url, str(case), "--as", sid, "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["session_id"], body["tenant"], body["version"], body["source_session_id"]) == (
        sid,
        file_tenant,
        12,
        "case-42",
    )
    assert len(body["event_ids"]) == 12


async def test_an_old_schema_event_is_stored_as_it_was_and_upcast_on_read(database_url, pool) -> None:
    tenant, sid = new_tenant(), new_session_id("old")
    done = await imported(database_url, str(GOLDEN / "support-case-2025.jsonl"), "--as", sid, "--tenant", tenant)
    assert done.returncode == 0, done.stderr
    stored = (await EventStore(pool).read_stream(tenant, sid))[1]
    assert (stored.type, stored.schema_version, stored.data) == (
        "MessageAdded",
        1,
        {"role": "user", "text": "I was charged twice, and I can't log in"},
    )
    conversation = transcript(await EventStore(pool).read_stream(tenant, sid)).to_json()["conversation"]
    assert conversation[0]["content"] == "I was charged twice, and I can't log in"
    again = await export(database_url, tenant, sid)
    assert orjson.loads(again.stdout.splitlines()[2])["schema_version"] == 1  # exported as stored, too


async def test_import_onto_an_existing_session_is_refused_and_writes_nothing(database_url, pool) -> None:
    tenant, sid = new_tenant(), new_session_id()
    await write_support_case(EventStore(pool), tenant, sid)
    done = await imported(database_url, str(GOLDEN / "model-calls.jsonl"), "--as", sid, "--tenant", tenant)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"agentlog import: session {sid!r} already exists in tenant {tenant!r} (at version 12); "
        "import it under another id with --as"
    )
    assert (await counts(pool, tenant, sid))[0] == 12


async def test_an_invalid_file_is_refused_with_its_line_and_nothing_of_any_file_is_written(
    database_url, pool, tmp_path
) -> None:
    tenant = new_tenant()
    lines = (GOLDEN / "support-case.jsonl").read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        "\n".join([*lines[:4], lines[4].replace('"StateSectionUpdated"', '"StateSectionErased"'), *lines[5:]])
    )
    good = GOLDEN / "model-calls.jsonl"
    done = await imported(database_url, str(good), str(broken), "--tenant", tenant)
    assert done.returncode == 1
    assert done.stderr.startswith(f"agentlog import: {broken} line 5: unknown event type 'StateSectionErased' (this")
    assert await counts(pool, tenant, "case-43") == (0, 0, 0)

    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text("\n".join([*lines[:3], "{not json", *lines[4:]]))
    done = await imported(database_url, str(garbled), "--tenant", tenant)
    assert done.returncode == 1 and f"{garbled} line 4: not JSON" in done.stderr
    missing = await imported(database_url, str(tmp_path / "nope.jsonl"), "--tenant", tenant)
    assert missing.returncode == 1 and "nope.jsonl: cannot read it: No such file or directory" in missing.stderr


async def test_import_usage_errors_exit_2(database_url) -> None:
    files = [str(GOLDEN / "support-case.jsonl"), str(GOLDEN / "model-calls.jsonl")]
    two = await imported(database_url, *files, "--as", "x-1")
    assert two.returncode == 2 and "--as takes one file" in two.stderr
    bad_id = await imported(database_url, files[0], "--as", "no spaces")
    assert bad_id.returncode == 2 and "is not a valid session id" in bad_id.stderr


async def test_export_of_an_unknown_session_exits_1_and_prints_nothing(database_url) -> None:
    done = await export(database_url, new_tenant(), "no-such-session")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == "agentlog export: session 'no-such-session' not found"
