"""docs/replay.md is executed: every `$ agentlog ...` example runs against the support case (in a
database of its own, so ids and positions are those of the doc) and prints what the doc shows,
up to timestamps, event ids and the local user name."""

from __future__ import annotations

import re

from eventstore import db
from eventstore.store import EventStore
from tests.integration.replay_support import ROOT, agentlog, write_support_case
from tests.integration.test_replay_kafka import produce
from tests.integration.timetravel_support import write_conversation, write_what_if

DOC = ROOT / "docs" / "replay.md"
_VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00 *"), "<T> "),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<ID>"),
    (re.compile(r"cli:\S+ *"), "cli:<user> "),
]


def normalise(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text.rstrip()


def examples(markdown: str) -> list[tuple[str, str]]:
    """(command line, expected output) for every `$ agentlog` line of the console blocks."""
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", markdown, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ agentlog "):
                found.append((line.removeprefix("$ agentlog "), []))
            else:
                found[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in found]


async def test_replay_doc_examples_print_what_the_doc_shows(fresh_database_url, kafka_bootstrap, topic, tmp_path):
    pool = await db.create_pool(fresh_database_url, min_size=1, max_size=2)
    try:
        events = await write_support_case(EventStore(pool), "acme", "case-42")
        # the same case with the billing agent's model calls, and "what if the refund had failed"
        await write_conversation(EventStore(pool), "acme", "case-43")
        await write_what_if(EventStore(pool), "acme", "case-42", "case-42-what-if", at_version=6)
    finally:
        await pool.close()
    await produce(kafka_bootstrap, topic, events)
    env = {
        "AGENTLOG_DATABASE_URL": fresh_database_url,
        "AGENTLOG_TENANT": "acme",
        "AGENTLOG_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AGENTLOG_KAFKA_TOPIC": topic,
    }
    cases = examples(DOC.read_text())
    assert len(cases) >= 10
    for line, expected in cases:
        # `> FILE` (export) keeps stdout in FILE, in a folder of this test where later commands run.
        command, _, into = line.partition(" > ")
        done = await agentlog(*command.split(), cwd=tmp_path, **env)
        if into:
            (tmp_path / into.strip()).write_text(done.stdout)
            done.stdout = ""
        # The doc shows a note (stderr) above the id a fork or an import prints (stdout).
        shown = done.stderr + done.stdout if command.startswith(("fork", "import")) else done.stdout + done.stderr
        assert normalise(shown) == normalise(expected), line
