"""What a projection is: a name, the tables it owns, and one handler per event type.

Invariant: a handler is a pure function of the decoded event and its envelope; it returns the SQL
writes that apply the event to the projection's tables and touches nothing itself. The runner
executes the writes in the batch's transaction, so a handler can be tested without a database
(given an event, then these writes) and the runner can send many events' writes in one round trip.
Writes of one projection never read another projection's tables except where documented (tool
statistics read the tool name from tool_calls_v1), so projections can be parked independently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eventstore.envelope import RecordedEvent
from eventstore.events import Event
from eventstore.registry import decode


@dataclass(frozen=True, slots=True)
class Write:
    """One SQL statement and its arguments; equal statements of a batch run as one executemany."""

    sql: str
    args: tuple[Any, ...]


Handler = Callable[[RecordedEvent, Any], Sequence[Write]]


@dataclass(frozen=True, slots=True)
class Bulk:
    """The multi-row form of a single-row statement: a run of several equal writes executes as one
    statement over unnest() of their argument columns (projections/projector/applier.py
    `execute_grouped`) instead of an executemany, which costs Postgres one execution per row.
    Same arguments, in the same order, as arrays; `adapt` turns a column whose values an array
    cannot hold as they are (a list per row) into one it can.

    `key`: the argument positions naming the row a write changes, for a statement whose writes
    of one row depend on each other (an upsert that adds to it). One statement changes a row at
    most once, so the run goes in rounds, each with at most one write per row and every row's
    writes in their order; a run needing more than MAX_ROUNDS goes as an executemany instead.
    Without a key the rows never depend on each other (insert or nothing)."""

    sql: str
    key: tuple[int, ...] = ()
    adapt: Mapping[int, Callable[[list[Any]], list[Any]]] | None = None


MAX_ROUNDS = 4

BULK: dict[str, Bulk] = {}


@dataclass(frozen=True)
class Projection:
    name: str
    tables: tuple[str, ...]
    handlers: Mapping[type[Event], Handler]
    description: str = ""

    @cached_property
    def by_type(self) -> dict[str, Handler]:
        """Handler per stored type name: one dict lookup per (event, projection) on the hot path."""
        return {cls.TYPE: handler for cls, handler in self.handlers.items()}

    @cached_property
    def event_types(self) -> frozenset[str]:
        return frozenset(self.by_type)

    def handles(self, event_type: str) -> bool:
        return event_type in self.by_type

    def writes_for(self, recorded: RecordedEvent, event: Event | Exception) -> list[Write]:
        """The writes applying `recorded`; none for event types this projection ignores.

        `event` is the decoded (upcast) model, or the error decoding raised: such an event fails
        in every projection that handles its type, like any handler error, and is parked there
        instead of stopping the projector.
        """
        handler = self.by_type.get(recorded.type)
        if handler is None:
            return []
        if isinstance(event, Exception):
            raise event
        return list(handler(recorded, event))


def decode_or_error(recorded: RecordedEvent) -> Event | Exception:
    """Decode once per event for all projections; keep the error to raise per projection."""
    try:
        return decode(recorded)
    except Exception as exc:
        return exc


def key(recorded: RecordedEvent) -> tuple[str, str]:
    return recorded.tenant, recorded.session_id
