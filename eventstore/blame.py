"""Blame: for each leaf value of a session's state, the event that last set it.

Invariant: `blame(events)` has one entry per leaf of the state the same events fold to (the
status, and every leaf of every section: a scalar, an array, or an empty object) and nothing
else, each naming the last event whose write reached that leaf. A merge patch (RFC 7396) sets the
leaves it carries, merges objects member by member (so two agents' overlapping patches each keep
the leaves they set last) and replaces a value it overwrites with another kind; a `null` removes a
value and its blame with it, so a value removed later is never blamed on the patch that added it.
Arrays are whole values, as in RFC 7396. BLAME_FORMAT names this fold's rules and its JSON
(BlameFold.to_json): change either, bump it, and snapshots carrying the old blame go unused. `events` is a lineage (eventstore/lineage.py): values set
before a fork are blamed on the source's events. Pure.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.errors import ReplayTargetError
from eventstore.history import actor_of, agent_of
from eventstore.registry import decode
from eventstore.snapshot_diff import pointer

_CLOSING: dict[type[ev.Event], str] = {
    ev.SessionCompleted: "completed",
    ev.SessionFailed: "failed",
    ev.SessionCancelled: "cancelled",
}
_READ_CLASSES: tuple[type[ev.Event], ...] = (ev.SessionStarted, ev.SessionForked, ev.StateSectionUpdated, *_CLOSING)
_READ = frozenset(cls.TYPE for cls in _READ_CLASSES)
BLAME_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Origin:
    """Who set a value: the event (and its session, for values inherited through a fork)."""

    session_id: str
    version: int
    type: str
    agent: str | None
    actor: str | None
    recorded_at: str
    event_id: str

    @classmethod
    def of(cls, recorded: RecordedEvent) -> Origin:
        return cls(
            session_id=recorded.session_id,
            version=recorded.version,
            type=recorded.type,
            agent=agent_of(recorded),
            actor=actor_of(recorded),
            recorded_at=recorded.recorded_at.isoformat(),
            event_id=str(recorded.event_id),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "version": self.version,
            "type": self.type,
            "agent": self.agent,
            "actor": self.actor,
            "recorded_at": self.recorded_at,
            "event_id": self.event_id,
        }


@dataclass(slots=True)
class _Node:
    """A value in the blame tree: a leaf (children None) with its value, or an object."""

    origin: Origin
    value: Any = None
    children: dict[str, _Node] | None = None


@dataclass(frozen=True, slots=True)
class BlameEntry:
    path: str  # JSON Pointer into the state: /status or /sections/<section>/...
    value: Any
    origin: Origin

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "value": self.value, **self.origin.to_json()}


@dataclass(frozen=True, slots=True)
class Blame:
    entries: list[BlameEntry] = field(default_factory=list)

    def to_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self.entries]


def merge(node: _Node | None, patch: Any, origin: Origin) -> _Node:
    """The blame tree after `patch` (a merge patch member's value) was applied by `origin`."""
    if not isinstance(patch, dict):
        return _Node(origin, copy.deepcopy(patch))
    if node is None or node.children is None:
        node = _Node(origin, children={})  # an object this patch creates (over a scalar, if any)
    assert node.children is not None
    for key, value in patch.items():
        if value is not None:
            node.children[key] = merge(node.children.get(key), value, origin)
        elif node.children.pop(key, None) is not None and not node.children:
            node.origin = origin  # this patch emptied the object: the {} left is its doing
    return node


class BlameFold:
    """The blame of a state as it is folded: the status's origin and each section's tree.

    `to_json` / `from_json` carry it in a fold snapshot (eventstore/fold_snapshots.py), origins
    listed once and referenced by index, so blame to version N can start at a snapshot."""

    def __init__(self) -> None:
        self.status: tuple[str, Origin] | None = None
        self.sections: dict[str, _Node] = {}

    def apply_all(self, events: Sequence[RecordedEvent], *, first: bool = True) -> BlameFold:
        """Apply `events` (a lineage, or its continuation after a snapshot when not `first`)."""
        for i, recorded in enumerate(events):
            if recorded.type in _READ:
                self.apply(recorded, marker=i > 0 or not first)
        return self

    def apply(self, recorded: RecordedEvent, marker: bool) -> None:
        event, origin = decode(recorded), Origin.of(recorded)
        if isinstance(event, ev.StateSectionUpdated):
            self.sections[event.section] = merge(self.sections.get(event.section), event.changes, origin)
        elif isinstance(event, ev.SessionStarted):
            self.status = ("open", origin)
        elif isinstance(event, ev.SessionForked):
            # A fork is open whatever its source was; without its source's events at hand its
            # sections are the snapshot's, set (as far as this session knows) by the fork itself.
            self.status = ("open", origin)
            if not marker:
                sections = event.state.get("sections") or {}
                self.sections = {name: merge(None, value, origin) for name, value in sections.items()}
        else:
            self.status = (_CLOSING[type(event)], origin)

    def result(self, section: str | None = None) -> Blame:
        if section is not None and section not in self.sections:
            known = ", ".join(self.sections) or "none"
            raise ReplayTargetError(
                f"no section {section!r} in this state (sections: {known})",
                field="section",
                sections=list(self.sections),
            )
        entries: list[BlameEntry] = []
        if section is None and self.status is not None:
            entries.append(BlameEntry("/status", self.status[0], self.status[1]))
        for name, node in self.sections.items():
            if section is None or name == section:
                entries.extend(_leaves(node, pointer("/sections", name)))
        return Blame(entries)

    def to_json(self) -> dict[str, Any]:
        origins: dict[Origin, int] = {}

        def ref(origin: Origin) -> int:
            return origins.setdefault(origin, len(origins))

        def node_json(node: _Node) -> list[Any]:
            if node.children is None:
                return [ref(node.origin), node.value]
            return [ref(node.origin), None, {key: node_json(child) for key, child in node.children.items()}]

        status = [self.status[0], ref(self.status[1])] if self.status else None
        sections = [[name, node_json(node)] for name, node in self.sections.items()]
        return {"status": status, "sections": sections, "origins": [o.to_json() for o in origins]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlameFold:
        origins = [Origin(**o) for o in data["origins"]]

        def node_of(item: list[Any]) -> _Node:
            if len(item) == 2:
                return _Node(origins[item[0]], item[1])
            return _Node(origins[item[0]], children={key: node_of(child) for key, child in item[2].items()})

        fold = cls()
        if data["status"] is not None:
            fold.status = (data["status"][0], origins[data["status"][1]])
        fold.sections = {name: node_of(item) for name, item in data["sections"]}
        return fold


def _leaves(node: _Node, path: str) -> Iterator[BlameEntry]:
    if node.children is None:
        yield BlameEntry(path, node.value, node.origin)
    elif not node.children:
        yield BlameEntry(path, {}, node.origin)
    else:
        for key, child in node.children.items():
            yield from _leaves(child, pointer(path, key))


def blame(events: Sequence[RecordedEvent], *, section: str | None = None) -> Blame:
    """The blame of the state `events` fold to; only one section's leaves with `section`."""
    return BlameFold().apply_all(events).result(section)
