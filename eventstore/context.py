"""The exact request a model got at a call, rebuilt from the log through its references.

Invariant: `ContextIndex(events).context(call_id).request` equals, as JSON, the request the agent
had in hand when it recorded the call: references (eventstore/message_refs.py) are replaced by the
messages they stand for, in order; `system_from` / `tools_from` by the earlier call's system
prompt and tools. `events` is a session's lineage (eventstore/lineage.py), oldest first, so a fork
resolves references to its source's messages and calls. Resolution walks references with an
explicit stack, taking only the window a reference asks for: a chain of N calls each referencing
the previous one costs O(N + messages out), never O(N^2), and never hits the recursion limit.

The index holds plain JSON (each call's payload as `model_dump(mode="json")`, the call a
`system_from` / `tools_from` chain ends at, resolved when the call is added), so it is built one
event at a time and stored in parts beside the fold snapshots (eventstore/knowledge.py): a reader
continues it from there instead of decoding the session from version 1. Pure: reading the events
is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventstore.envelope import RecordedEvent
from eventstore.errors import ContextReferenceError, ModelCallNotFoundError
from eventstore.events import ContextCompacted, MessageAdded, ModelCallRecorded
from eventstore.message_refs import (
    CallRef,
    CompactionRef,
    MessageRef,
    call_window,
    is_reference,
    item_count,
    parse_ref,
    response_message,
)
from eventstore.registry import decode

INDEXED = frozenset({MessageAdded.TYPE, ModelCallRecorded.TYPE, ContextCompacted.TYPE})


@dataclass(slots=True)
class RecordedCall:
    """A model call as the index keeps it: where it was recorded and its payload, as JSON. Never
    changed once built; not frozen only because a frozen dataclass is built five times slower
    (20,000 of them for the 100k-event bench session each time its knowledge parts are read)."""

    session_id: str
    version: int
    recorded_at: str  # ISO 8601
    data: dict[str, Any]  # ModelCallRecorded.model_dump(mode="json")
    message_count: int  # messages its request stands for, references resolved
    # the call whose system prompt / tools this one sent (itself without *_from); None: a
    # reference the log lacks, named by `missing`
    system_origin: str | None
    tools_origin: str | None

    @property
    def call_id(self) -> str:
        return str(self.data["call_id"])

    def to_json(self) -> list[Any]:
        return [
            self.session_id,
            self.version,
            self.recorded_at,
            self.data,
            self.message_count,
            self.system_origin,
            self.tools_origin,
        ]

    @classmethod
    def from_json(cls, item: Sequence[Any]) -> RecordedCall:
        return cls(*item)


@dataclass(frozen=True, slots=True)
class ModelContext:
    """One model call with its request rebuilt: what the model got, and what it answered."""

    call: RecordedCall
    request: dict[str, Any]  # {"system", "messages", "tools", "parameters"}

    def to_json(self) -> dict[str, Any]:
        d = self.call.data
        return {
            "session_id": self.call.session_id,
            "version": self.call.version,
            "recorded_at": self.call.recorded_at,
            "call_id": d["call_id"],
            "agent": d["agent"],
            "provider": d["provider"],
            "model": d["model"],
            "request": self.request,
            "response": d["response"],
            "usage": d["usage"],
            "latency_ms": d["latency_ms"],
        }


class ContextIndex:
    """What references resolve against: a session's messages, model calls and compactions."""

    def __init__(self, events: Iterable[RecordedEvent] = ()) -> None:
        self.messages: list[dict[str, Any]] = []  # {"role", "content"} of each MessageAdded
        self.calls: dict[str, RecordedCall] = {}
        self.compactions: dict[str, list[Any]] = {}  # id -> [replacement items, message count]
        self._call_counts: dict[str, int] = {}
        self._compaction_counts: dict[str, int] = {}
        for recorded in events:
            if recorded.type in INDEXED:
                self.add(recorded, decode(recorded))

    def add(self, recorded: RecordedEvent, event: Any) -> None:
        """Index one decoded event of the lineage (others are ignored)."""
        if isinstance(event, MessageAdded):
            self.messages.append({"role": event.role, "content": event.content})
        elif isinstance(event, ModelCallRecorded):
            request = event.request
            call = RecordedCall(
                recorded.session_id,
                recorded.version,
                recorded.recorded_at.isoformat(),
                event.model_dump(mode="json"),
                self._items_count(request.messages),
                self._origin(event.call_id, request.system_from, "system"),
                self._origin(event.call_id, request.tools_from, "tools"),
            )
            self.add_call(call)
        elif isinstance(event, ContextCompacted):
            self.add_compaction(event.compaction_id, [event.replacement, self._items_count(event.replacement)])

    def add_call(self, call: RecordedCall) -> None:
        call_id = call.call_id  # once: run for every model call each time knowledge parts are read
        self.calls[call_id] = call
        self._call_counts[call_id] = call.message_count

    def add_compaction(self, compaction_id: str, entry: list[Any]) -> None:
        self.compactions[compaction_id] = entry
        self._compaction_counts[compaction_id] = entry[1]

    def _origin(self, call_id: str, earlier: str | None, part: str) -> str | None:
        """The call whose `part` a request with `<part>_from = earlier` sent (its own: None)."""
        if earlier is None:
            return call_id
        found = self.calls.get(earlier)
        if found is None:
            return None
        return found.system_origin if part == "system" else found.tools_origin

    def _items_count(self, items: Sequence[Mapping[str, Any]]) -> int:
        return sum(item_count(item, self._call_counts, self._compaction_counts) for item in items)

    def latest_call(self) -> RecordedCall | None:
        return next(reversed(self.calls.values()), None)

    def call(self, call_id: str) -> RecordedCall:
        found = self.calls.get(call_id)
        if found is None:
            raise ModelCallNotFoundError(
                f"no model call {call_id!r} in this session ({len(self.calls)} model calls recorded)",
                call_id=call_id,
            )
        return found

    def context(self, call_id: str) -> ModelContext:
        call = self.call(call_id)
        request = call.data["request"]
        rebuilt = {
            "system": self._inherited(call, "system"),
            "messages": self.resolve(request["messages"]),
            "tools": self._inherited(call, "tools"),
            "parameters": request["parameters"],
        }
        return ModelContext(call, rebuilt)

    def _inherited(self, call: RecordedCall, part: str) -> Any:
        """`system` / `tools` of the call, from the call its `<part>_from` chain ends at."""
        origin = call.system_origin if part == "system" else call.tools_origin
        if origin is None:
            earlier = call.data["request"][f"{part}_from"]
            raise ContextReferenceError(f"a stored request references model call {earlier!r}, which the log lacks")
        return self.calls[origin].data["request"][part]

    def summaries(self) -> list[dict[str, Any]]:
        """One entry per model call, in order: for `GET /model-calls` and the replayed state."""
        return [self.summary(call) for call in self.calls.values()]

    def summary(self, call: RecordedCall) -> dict[str, Any]:
        d = call.data
        response = d["response"]
        return {
            "call_id": d["call_id"],
            "session_id": call.session_id,
            "version": call.version,
            "recorded_at": call.recorded_at,
            "agent": d["agent"],
            "provider": d["provider"],
            "model": d["model"],
            "messages": call.message_count,
            "tools": len(self._inherited(call, "tools")),
            "finish_reason": response["finish_reason"],
            "error": response["error"],
            "tool_calls": len(response["tool_calls"]),
            "usage": d["usage"],
            "latency_ms": d["latency_ms"],
        }

    def resolve(self, items: Sequence[dict[str, Any]], start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """The messages `items[start:stop]` (counted in messages, references expanded) stand for."""
        out: list[dict[str, Any]] = []
        append, messages, calls, counts = out.append, self.messages, self.calls, self._call_counts
        # frame: [items, next index, position of that index in messages, window start, window stop,
        # the call or compaction whose messages these are (None: the request itself)]
        stack: list[list[Any]] = [[items, 0, 0, start, self._items_count(items) if stop is None else stop, None]]
        active: set[str] = set()  # the sources of the frames on the stack (a set: chains run 20,000 deep)
        while stack:
            frame = stack[-1]
            frame_items, i, pos, lo, hi, _ = frame
            if i >= len(frame_items) or pos >= hi:
                active.discard(stack.pop()[5])
                continue
            item = frame_items[i]
            # The common shapes are dispatched on the plain JSON (no model per item: this loop runs
            # once per message of the answer); anything else goes through message_refs as written.
            kind = item.get("ref") if "ref" in item and len(item) == 2 else None
            if kind == "message" and type(index := item.get("index")) is int and index >= 0:
                frame[1], frame[2] = i + 1, pos + 1
                if pos + 1 > lo:
                    if index >= len(messages):
                        raise ContextReferenceError(f"a stored request references message {index}, which the log lacks")
                    append(messages[index])
            elif kind == "response" and type(call_id := item.get("call_id")) is str:
                frame[1], frame[2] = i + 1, pos + 1
                if pos + 1 > lo:
                    response = self._referenced_call(call_id).data["response"]
                    append(response_message(response["content"], response["tool_calls"]))
            elif kind == "call" and type(call_id := item.get("call_id")) is str:
                n = counts.get(call_id, 0)
                frame[1], frame[2] = i + 1, pos + n
                if pos + n > lo:
                    call = calls.get(call_id) or self._referenced_call(call_id)
                    _push(
                        stack,
                        active,
                        [call.data["request"]["messages"], 0, 0, max(lo - pos, 0), min(hi - pos, n), call_id],
                    )
            else:
                self._general(frame, item, out, stack, active)
        return out

    def _general(
        self,
        frame: list[Any],
        item: dict[str, Any],
        out: list[dict[str, Any]],
        stack: list[list[Any]],
        active: set[str],
    ) -> None:
        """`resolve`'s step for a message object or a reference of a less common shape."""
        _, i, pos, lo, hi, _ = frame
        n = item_count(item, self._call_counts, self._compaction_counts)
        frame[1], frame[2] = i + 1, pos + n
        if pos + n <= lo:
            return
        a, b = max(lo - pos, 0), min(hi - pos, n)  # the part of this item inside the window
        if not is_reference(item):
            out.append(item)
        else:
            child = self._expand(parse_ref(item), a, b, out)
            if child is not None:
                _push(stack, active, child)

    def _expand(self, ref: Any, a: int, b: int, out: list[dict[str, Any]]) -> list[Any] | None:
        """Append a one-message reference to `out`, or return the frame that expands a range."""
        if isinstance(ref, MessageRef):
            if ref.index >= len(self.messages):
                raise ContextReferenceError(f"a stored request references message {ref.index}, which the log lacks")
            out.append(self.messages[ref.index])
            return None
        if isinstance(ref, CompactionRef):
            compaction = self.compactions.get(ref.compaction_id)
            if compaction is None:
                raise ContextReferenceError(f"a stored request references compaction {ref.compaction_id!r}")
            return [compaction[0], 0, 0, a, b, f"compaction {ref.compaction_id}"]
        call = self._referenced_call(ref.call_id)
        if isinstance(ref, CallRef):
            first, _ = call_window(ref, call.message_count)
            return [call.data["request"]["messages"], 0, 0, first + a, first + b, ref.call_id]
        response = call.data["response"]
        out.append(response_message(response["content"], response["tool_calls"]))
        return None

    def _referenced_call(self, call_id: str) -> RecordedCall:
        found = self.calls.get(call_id)
        if found is None:
            raise ContextReferenceError(f"a stored request references model call {call_id!r}, which the log lacks")
        return found

    def context_of(self, call_id: str | None, last_version: int) -> ModelContext:
        """The request of model call `call_id`, or of the last call indexed; raises
        ModelCallNotFoundError when there is none (`last_version`: where the index was cut)."""
        if call_id is not None:
            return self.context(call_id)
        latest = self.latest_call()
        if latest is None:
            raise ModelCallNotFoundError(
                f"no model call at or before version {last_version} of this session", version=last_version
            )
        return self.context(latest.call_id)


def context_at(events: Sequence[RecordedEvent], *, call_id: str | None = None) -> ModelContext:
    """The request of model call `call_id`, or of the last model call among `events` (a lineage
    read up to the version asked); raises ModelCallNotFoundError when there is none."""
    return ContextIndex(events).context_of(call_id, events[-1].version if events else 0)


def _push(stack: list[list[Any]], active: set[str], frame: list[Any]) -> None:
    """Expand a call's or compaction's messages, unless they are being expanded already: the decider
    only lets a request reference what was recorded before it, but the fold never refuses what is in
    the log (an imported file, an old version), and a reference to itself would expand forever."""
    source = frame[5]
    if source in active:
        kind, name = (
            ("compaction", source[len("compaction ") :]) if source.startswith("compaction ") else ("model call", source)
        )
        raise ContextReferenceError(f"{kind} {name!r} references itself through its messages")
    active.add(source)
    stack.append(frame)
