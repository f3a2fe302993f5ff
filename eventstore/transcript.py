"""What the agents knew at a point of a session, besides its sections and status: the conversation,
tool calls with their arguments and results, approvals with their decisions, model calls.

Invariant: `transcript(events)` is a pure function of a lineage (eventstore/lineage.py) cut at a
version, so `agentlog replay --to-version N` and `GET /state?at_version=N` show exactly what the
first N events say, including what a fork inherited from its source. It is not the decision state
(eventstore/state.py keeps that small, for commands); it is built for reading and may be as large
as the session. Every entry names the session and version that recorded it. The fold itself is
eventstore/knowledge.py, which the fold snapshots also carry (in parts), so a reader can start at
one of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventstore.envelope import RecordedEvent
from eventstore.knowledge import PARTS, Knowledge, Transcript

__all__ = ["PARTS", "Transcript", "transcript"]


def transcript(events: Sequence[RecordedEvent]) -> Transcript:
    return Knowledge.of(events).transcript()
