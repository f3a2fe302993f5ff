"""Recorded events for the pure time-travel tests (blame, diff, transcript): a session's events as
the store would return them, and a fork of it, with its lineage."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import to_stored
from eventstore.state import fold

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def recorded(
    events: Sequence[ev.Event], session_id: str = "case-42", *, actors: Sequence[str] | None = None, first: int = 1
) -> list[RecordedEvent]:
    rows = []
    for i, event in enumerate(events):
        version = first + i
        kind, schema, data = to_stored(event)
        rows.append(
            RecordedEvent(
                position=version,
                session_id=session_id,
                version=version,
                event_id=uuid.uuid4(),
                type=kind,
                schema_version=schema,
                data=data,
                tenant="acme",
                recorded_at=T0 + timedelta(seconds=version),
                metadata={"actor": actors[i] if actors else "key_1"},
            )
        )
    return rows


def fork_of(source: list[RecordedEvent], at: int, later: Sequence[ev.Event], fork_id: str = "case-42-b"):
    """(the fork's own events, its lineage): SessionForked at version 1, then `later`."""
    forked = ev.SessionForked(
        source_session_id=source[0].session_id, source_version=at, state=fold(source[:at]).to_snapshot()
    )
    own = recorded([forked, *later], fork_id)
    return own, [*source[:at], *own]
