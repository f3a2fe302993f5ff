"""The export file format (eventstore/export_file.py): lines out, lines back, and a clear refusal
naming the line and the reason for every file this build could not import as it is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.export_file import ExportFileInvalidError, lines, parse
from eventstore.registry import to_stored
from eventstore.session_import import as_recorded, imported_event_id

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def recorded(events: list[ev.Event], *, session_id: str = "case-1", tenant: str = "acme") -> list[RecordedEvent]:
    out = []
    for n, event in enumerate(events, start=1):
        kind, schema, data = to_stored(event)
        out.append(
            RecordedEvent(
                n, session_id, n, uuid.uuid4(), kind, schema, data, tenant, T0 + timedelta(seconds=n), {"actor": "k1"}
            )
        )
    return out


def case() -> list[RecordedEvent]:
    return recorded(
        [
            ev.SessionStarted(workflow="support-case", agents=["billing"]),
            ev.MessageAdded(role="user", content="charged twice"),
            ev.SessionCompleted(outcome="resolved"),
        ]
    )


def file_lines(events: list[RecordedEvent] | None = None) -> list[bytes]:
    return b"".join(lines("acme", "case-1", events or case())).splitlines()


def refusal(text: list[bytes]) -> ExportFileInvalidError:
    with pytest.raises(ExportFileInvalidError) as caught:
        parse(text)
    return caught.value


def test_export_lines_parse_back_to_the_stored_events() -> None:
    events = case()
    text = file_lines(events)
    assert orjson.loads(text[0]) == {"agentlog_export": 1, "tenant": "acme", "session_id": "case-1", "events": 3}
    parsed = parse(text)
    assert (parsed.tenant, parsed.session_id) == ("acme", "case-1")
    assert [
        (e.version, e.event_id, e.type, e.schema_version, e.recorded_at, e.metadata, e.data) for e in parsed.events
    ] == [(e.version, e.event_id, e.type, e.schema_version, e.recorded_at, e.metadata, e.data) for e in events]
    assert b"".join(lines("acme", "case-1", events)) == b"".join(lines("acme", "case-1", events))  # same bytes


def test_an_old_schema_version_is_kept_as_stored_not_upcast() -> None:
    text = file_lines()
    line = orjson.loads(text[2])
    line["schema_version"], line["data"] = 1, {"role": "user", "text": "charged twice"}
    text[2] = orjson.dumps(line)
    parsed = parse(text)
    assert (parsed.events[1].schema_version, parsed.events[1].data) == (1, {"role": "user", "text": "charged twice"})


def test_imported_events_get_new_ids_derived_from_the_target_and_keep_their_provenance() -> None:
    parsed = parse(file_lines())
    first, again = as_recorded(parsed, "other", "copy-1"), as_recorded(parsed, "other", "copy-1")
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id == imported_event_id("other", "copy-1", parsed.events[0].event_id)
    assert first[0].event_id != parsed.events[0].event_id
    assert first[0].metadata == {
        "actor": "k1",
        "imported_from": {"session_id": "case-1", "event_id": str(parsed.events[0].event_id)},
    }
    assert (first[0].tenant, first[0].session_id, first[0].recorded_at) == (
        "other",
        "copy-1",
        parsed.events[0].recorded_at,
    )


def _edit(index: int, **changes) -> list[bytes]:
    text = file_lines()
    line = orjson.loads(text[index])
    line.update(changes)
    text[index] = orjson.dumps(line)
    return text


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ([], 1, "the file is empty"),
        ([b'{"type": "SessionStarted"}'], 1, "not an agentlog export"),
        ([b"not json"], 1, "not JSON"),
        ([b"[1, 2]"], 1, "expected a JSON object, got list"),
        (_edit(0, agentlog_export=2), 1, "export format 2; this agentlog reads format 1"),
        (_edit(0, session_id="has space"), 1, "is not a valid session id"),
        (_edit(0, events=4), 5, "the header announces 4 events, the file holds 3"),
        (_edit(2, type="MessageDeleted"), 3, "unknown event type 'MessageDeleted'"),
        (_edit(2, schema_version=3), 3, "MessageAdded v3 is newer than this reader (v2)"),
        (_edit(2, data={"role": "user"}), 3, "does not fit its model"),
        (_edit(2, version=3), 3, "version 3, expected 2"),
        (_edit(2, event_id="x"), 3, "event_id 'x' is not a UUID"),
        (_edit(2, recorded_at="yesterday"), 3, "recorded_at 'yesterday' is not an ISO 8601 time"),
        (_edit(2, recorded_at="2025-03-01T12:00:00"), 3, "with an offset"),
        (_edit(3, recorded_at="2025-03-01T11:00:00+00:00"), 4, "is before the previous event's"),
        (_edit(2, metadata=[]), 3, "metadata must be a JSON object"),
        (_edit(1, type="MessageAdded", schema_version=2, data={"role": "user", "content": "x"}), 2, "a session begins"),
    ],
)
def test_an_invalid_file_is_refused_naming_the_line_and_the_reason(text, line, reason) -> None:
    error = refusal(text)
    assert error.extra["line"] == line and reason in error.detail, error.detail
    assert str(error).startswith(f"line {line}: ")


def test_missing_and_unknown_keys_are_named() -> None:
    text = file_lines()
    line = orjson.loads(text[1])
    del line["recorded_at"]
    line["position"] = 7
    text[1] = orjson.dumps(line)
    assert refusal(text).detail == "line 2: missing recorded_at; unknown position"


def test_an_empty_line_in_the_middle_is_refused_and_trailing_ones_are_not() -> None:
    text = file_lines()
    assert len(parse([*text, b"", b""]).events) == 3
    assert refusal([text[0], b"", *text[1:]]).detail == "line 2: empty line"
