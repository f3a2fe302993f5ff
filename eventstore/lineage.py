"""A session's lineage: a fork's history is its source's events up to the fork point, then its own.

Invariant: `read_lineage` returns the events that made a session, oldest first. For a fork (its
first event is SessionForked) that is the source's events 1..source_version (themselves expanded
when the source is a fork too), then the fork's own events from its SessionForked on. The fold of
that list equals the fold of the fork's own events (SessionForked carries exactly the source's
state at that version, and the fold restarts from it), while the events before it say where each
message, call and value came from: every event keeps its own session id and version. A
SessionForked that follows its source's events is a marker (`is_fork_marker`), not a step of the
history. Reading is the caller's `Reader` (Postgres or Kafka).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from eventstore.envelope import RecordedEvent
from eventstore.errors import SessionNotFoundError
from eventstore.events import SessionForked
from eventstore.registry import decode

Reader = Callable[[str, int | None], Awaitable[list[RecordedEvent]]]
"""(session id, up to version or None) -> that session's events in version order from 1 (raises
SessionNotFoundError for an unknown session)."""

MAX_DEPTH = 64  # forks of forks; far beyond any real lineage, and it stops a corrupted loop


def fork_origin(events: Sequence[RecordedEvent]) -> SessionForked | None:
    """The SessionForked a session starts with, if it is a fork."""
    if not events or events[0].type != SessionForked.TYPE:
        return None
    forked = decode(events[0])
    assert isinstance(forked, SessionForked)  # the registry decodes a type to its model
    return forked


def is_fork_marker(events: Sequence[RecordedEvent], index: int) -> bool:
    """Whether events[index] is a SessionForked preceded by its source's events in a lineage."""
    return index > 0 and events[index].type == SessionForked.TYPE


async def read_lineage(read: Reader, session_id: str, to_version: int | None = None) -> list[RecordedEvent]:
    """The session's events up to `to_version`, preceded by its sources' along its fork lineage."""
    own = await read(session_id, to_version)
    chain: list[list[RecordedEvent]] = [own]
    origin = fork_origin(own)
    for _ in range(MAX_DEPTH):
        if origin is None:
            break
        try:
            source = await read(origin.source_session_id, origin.source_version)
        except SessionNotFoundError:
            break  # the source is not readable: the fork stands alone (its SessionForked holds the state)
        chain.append(source)
        origin = fork_origin(source)
    return [event for part in reversed(chain) for event in part]
