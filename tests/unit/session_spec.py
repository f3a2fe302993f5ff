"""Given/when/then for deciders: given past events, when commands are decided, then these events
(or this error). Decisions go through decide_many, the path every API takes, with a fixed clock
and deterministic ids so expected events can be written out in full."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

from commands.decide import decide_many
from commands.models import Command
from eventstore.errors import AgentlogError
from eventstore.events import Event, SessionStarted
from eventstore.state import SessionState, fold

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def started(**fields) -> SessionStarted:
    return SessionStarted(**{"agents": ["billing", "account"], **fields})


@dataclass
class Outcome:
    events: list[Event] | None
    error: AgentlogError | None

    def then(self, *expected: Event) -> None:
        assert self.error is None, f"refused: {self.error!r}"
        assert self.events == list(expected)

    def then_nothing(self) -> None:
        self.then()

    def then_raises(self, error_type: type[AgentlogError], code: str) -> AgentlogError:
        assert self.error is not None, f"decided {self.events!r}"
        assert isinstance(self.error, error_type), repr(self.error)
        assert self.error.code == code
        return self.error


@dataclass
class Given:
    state: SessionState

    def when(self, *commands: Command, now: datetime = NOW) -> Outcome:
        counter = itertools.count(1)
        try:
            events = decide_many(commands, self.state, now=now, new_id=lambda: f"id-{next(counter)}").events
        except AgentlogError as exc:
            return Outcome(None, exc)
        return Outcome(events, None)


def given(*events: Event) -> Given:
    return Given(fold(events, SessionState.new("case-42", "acme")))
