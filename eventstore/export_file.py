"""The export file of one session (`agentlog export` / `agentlog import`, golden sessions).

Format (JSON lines, UTF-8): a header line, then one line per stored event in version order:

    {"agentlog_export": 1, "tenant": T, "session_id": S, "events": N}
    {"version": 1, "event_id": ..., "type": ..., "schema_version": ..., "recorded_at": ...,
     "metadata": {...}, "data": {...}}

Invariant: an event line is the stored row as it is, never upcast: its type, schema version and
data are what the log holds, so an old payload stays old and is lifted on read like any stored
event. Keys are sorted, so exporting the same events gives the same bytes. `parse` accepts a file
only when every event would be readable by this build (known type, a schema version it can
upcast, data that fits the model) and versions run 1..N with recorded times never going back;
otherwise it raises ExportFileInvalidError naming the line and the reason, before anything is
written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from eventstore.envelope import RecordedEvent
from eventstore.errors import AgentlogError, EventDecodingError, UnknownEventTypeError
from eventstore.events import SessionForked, SessionStarted
from eventstore.ids import is_valid_id
from eventstore.registry import EVENT_TYPES, from_stored

FORMAT_VERSION = 1
_EVENT_KEYS = {"version", "event_id", "type", "schema_version", "recorded_at", "metadata", "data"}
_FIRST_TYPES = (SessionStarted.TYPE, SessionForked.TYPE)


class ExportFileInvalidError(AgentlogError):
    """An export file this build cannot import as it is: `line` and `reason` say where and why."""

    code = "export_file_invalid"
    status = 422


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    """One event line: the stored event without its place in a particular log (position, tenant,
    session), which the importing store gives it."""

    version: int
    event_id: uuid.UUID
    type: str
    schema_version: int
    recorded_at: datetime
    metadata: dict[str, Any]
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "event_id": str(self.event_id),
            "type": self.type,
            "schema_version": self.schema_version,
            "recorded_at": self.recorded_at.isoformat(),
            "metadata": self.metadata,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class ExportedSession:
    tenant: str
    session_id: str
    events: list[ExportedEvent]


def header(tenant: str, session_id: str, count: int) -> dict[str, Any]:
    return {"agentlog_export": FORMAT_VERSION, "tenant": tenant, "session_id": session_id, "events": count}


def lines(tenant: str, session_id: str, events: Sequence[RecordedEvent]) -> Iterator[bytes]:
    """The file's lines (each ending in a newline) for a session's stored events."""
    yield _dumps(header(tenant, session_id, len(events)))
    for e in events:
        yield _dumps(
            ExportedEvent(e.version, e.event_id, e.type, e.schema_version, e.recorded_at, e.metadata, e.data).to_json()
        )


def _dumps(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def parse(text: Iterable[bytes | str]) -> ExportedSession:
    """The session of an export file's lines; raises ExportFileInvalidError (line, reason)."""
    numbered = list(enumerate(text, start=1))
    while numbered and not _strip(numbered[-1][1]):
        numbered.pop()  # trailing newlines
    if not numbered:
        raise _invalid(1, "the file is empty; expected a header line")
    head = _header(*numbered[0])
    events: list[ExportedEvent] = []
    for number, raw in numbered[1:]:
        event = _event(number, raw, expected_version=len(events) + 1)
        if events and event.recorded_at < events[-1].recorded_at:
            raise _invalid(number, f"recorded_at {event.recorded_at.isoformat()} is before the previous event's")
        events.append(event)
    if len(events) != head["events"]:
        raise _invalid(len(numbered) + 1, f"the header announces {head['events']} events, the file holds {len(events)}")
    if events[0].type not in _FIRST_TYPES:
        raise _invalid(2, f"a session begins with {' or '.join(_FIRST_TYPES)}, not {events[0].type}")
    return ExportedSession(head["tenant"], head["session_id"], events)


def _strip(raw: bytes | str) -> bytes | str:
    return raw.strip()


def _invalid(line: int, reason: str) -> ExportFileInvalidError:
    return ExportFileInvalidError(f"line {line}: {reason}", line=line, reason=reason)


def _object(number: int, raw: bytes | str) -> dict[str, Any]:
    if not _strip(raw):
        raise _invalid(number, "empty line")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _invalid(number, f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _invalid(number, f"expected a JSON object, got {type(value).__name__}")
    return value


def _header(number: int, raw: bytes | str) -> dict[str, Any]:
    head = _object(number, raw)
    if "agentlog_export" not in head:
        raise _invalid(number, "not an agentlog export: the first line must be its header")
    if head["agentlog_export"] != FORMAT_VERSION:
        raise _invalid(
            number, f"export format {head['agentlog_export']!r}; this agentlog reads format {FORMAT_VERSION}"
        )
    if not is_valid_id(head.get("session_id")):
        raise _invalid(number, f"session_id {head.get('session_id')!r} is not a valid session id")
    if not isinstance(head.get("tenant"), str) or not head["tenant"]:
        raise _invalid(number, "tenant must be a non-empty string")
    count = head.get("events")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise _invalid(number, "events must be the number of event lines (at least 1)")
    return head


def _event(number: int, raw: bytes | str, *, expected_version: int) -> ExportedEvent:
    line = _object(number, raw)
    missing, extra = _EVENT_KEYS - line.keys(), line.keys() - _EVENT_KEYS
    if missing or extra:
        parts = [
            f"missing {', '.join(sorted(missing))}" if missing else "",
            f"unknown {', '.join(sorted(extra))}" if extra else "",
        ]
        raise _invalid(number, "; ".join(p for p in parts if p))
    if line["version"] != expected_version or isinstance(line["version"], bool):
        raise _invalid(number, f"version {line['version']!r}, expected {expected_version} (versions run 1..N in order)")
    for key in ("metadata", "data"):
        if not isinstance(line[key], dict):
            raise _invalid(number, f"{key} must be a JSON object")
    schema_version = line["schema_version"]
    if not isinstance(schema_version, int) or isinstance(schema_version, bool) or schema_version < 1:
        raise _invalid(number, f"schema_version {schema_version!r} must be an integer >= 1")
    try:
        event_id = uuid.UUID(str(line["event_id"]))
    except ValueError:
        raise _invalid(number, f"event_id {line['event_id']!r} is not a UUID") from None
    recorded_at = _instant(number, line["recorded_at"])
    _check_readable(number, line["type"], schema_version, line["data"])
    return ExportedEvent(
        expected_version, event_id, line["type"], schema_version, recorded_at, line["metadata"], line["data"]
    )


def _instant(number: int, value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _invalid(number, f"recorded_at {value!r} is not an ISO 8601 time with an offset")
    return moment


def _check_readable(number: int, event_type: Any, schema_version: int, data: dict[str, Any]) -> None:
    """The event decodes as every reader will decode it: through the upcasters to its model."""
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        raise _invalid(number, f"unknown event type {event_type!r} (this agentlog knows {known})")
    try:
        from_stored(event_type, schema_version, data)
    except UnknownEventTypeError as exc:  # pragma: no cover - checked above
        raise _invalid(number, exc.detail) from None
    except EventDecodingError as exc:
        fields = "; ".join(f"{e['field']}: {e['reason']}" for e in exc.extra.get("errors", ()))
        raise _invalid(number, exc.detail + (f" ({fields})" if fields else "")) from None
