"""The exact request a model got at a call, rebuilt from the log through its references.

Invariant: `ContextIndex(events).context(call_id).request` equals, as JSON, the request the agent
had in hand when it recorded the call: references (eventstore/message_refs.py) are replaced by the
messages they stand for, in order; `system_from` / `tools_from` by the earlier call's system
prompt and tools. `events` is a session's lineage (eventstore/lineage.py), oldest first, so a fork
resolves references to its source's messages and calls. Resolution walks references with an
explicit stack, taking only the window a reference asks for: a chain of N calls each referencing
the previous one costs O(N + messages out), never O(N^2), and never hits the recursion limit.
Pure: reading the events is the caller's job.
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

_INDEXED = frozenset({MessageAdded.TYPE, ModelCallRecorded.TYPE, ContextCompacted.TYPE})


@dataclass(frozen=True, slots=True)
class RecordedCall:
    recorded: RecordedEvent
    event: ModelCallRecorded
    message_count: int  # messages its request stands for, references resolved


@dataclass(frozen=True, slots=True)
class ModelContext:
    """One model call with its request rebuilt: what the model got, and what it answered."""

    call: RecordedCall
    request: dict[str, Any]  # {"system", "messages", "tools", "parameters"}

    def to_json(self) -> dict[str, Any]:
        e, r = self.call.event, self.call.recorded
        return {
            "session_id": r.session_id,
            "version": r.version,
            "recorded_at": r.recorded_at.isoformat(),
            "call_id": e.call_id,
            "agent": e.agent,
            "provider": e.provider,
            "model": e.model,
            "request": self.request,
            "response": e.response.model_dump(mode="json"),
            "usage": e.usage.model_dump(mode="json"),
            "latency_ms": e.latency_ms,
        }


class ContextIndex:
    """What references resolve against: a session's messages, model calls and compactions."""

    def __init__(self, events: Iterable[RecordedEvent]) -> None:
        self.messages: list[dict[str, Any]] = []
        self.calls: dict[str, RecordedCall] = {}
        self.compactions: dict[str, ContextCompacted] = {}
        self._call_counts: dict[str, int] = {}
        self._compaction_counts: dict[str, int] = {}
        for recorded in events:
            if recorded.type in _INDEXED:
                self._add(recorded, decode(recorded))

    def _add(self, recorded: RecordedEvent, event: Any) -> None:
        if isinstance(event, MessageAdded):
            self.messages.append({"role": event.role, "content": event.content})
        elif isinstance(event, ModelCallRecorded):
            count = self._items_count(event.request.messages)
            self.calls[event.call_id] = RecordedCall(recorded, event, count)
            self._call_counts[event.call_id] = count
        elif isinstance(event, ContextCompacted):
            self.compactions[event.compaction_id] = event
            self._compaction_counts[event.compaction_id] = self._items_count(event.replacement)

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
        request = call.event.request
        rebuilt = {
            "system": self._inherited(call, "system"),
            "messages": self.resolve(request.messages),
            "tools": self._inherited(call, "tools"),
            "parameters": request.parameters,
        }
        return ModelContext(call, rebuilt)

    def _inherited(self, call: RecordedCall, part: str) -> Any:
        """`system` / `tools` of the call, following `<part>_from` back to the call that sent it."""
        seen: set[str] = set()
        request = call.event.request
        while (earlier := getattr(request, f"{part}_from")) is not None:
            if earlier in seen:
                raise ContextReferenceError(f"{part}_from loops at model call {earlier!r}", call_id=earlier)
            seen.add(earlier)
            request = self._referenced_call(earlier).event.request
        return getattr(request, part)

    def _referenced_call(self, call_id: str) -> RecordedCall:
        found = self.calls.get(call_id)
        if found is None:
            raise ContextReferenceError(f"a stored request references model call {call_id!r}, which the log lacks")
        return found

    def summaries(self) -> list[dict[str, Any]]:
        """One entry per model call, in order: for `GET /model-calls` and the replayed state."""
        return [self.summary(call) for call in self.calls.values()]

    def summary(self, call: RecordedCall) -> dict[str, Any]:
        e, r = call.event, call.recorded
        return {
            "call_id": e.call_id,
            "session_id": r.session_id,
            "version": r.version,
            "recorded_at": r.recorded_at.isoformat(),
            "agent": e.agent,
            "provider": e.provider,
            "model": e.model,
            "messages": call.message_count,
            "tools": len(self._inherited(call, "tools")),
            "finish_reason": e.response.finish_reason,
            "error": e.response.error,
            "tool_calls": len(e.response.tool_calls),
            "usage": e.usage.model_dump(mode="json"),
            "latency_ms": e.latency_ms,
        }

    def resolve(self, items: Sequence[dict[str, Any]], start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """The messages `items[start:stop]` (counted in messages, references expanded) stand for."""
        out: list[dict[str, Any]] = []
        # frame: [items, next index, position of that index in messages, window start, window stop]
        stack: list[list[Any]] = [[items, 0, 0, start, self._items_count(items) if stop is None else stop]]
        while stack:
            frame = stack[-1]
            frame_items, i, pos, lo, hi = frame
            if i >= len(frame_items) or pos >= hi:
                stack.pop()
                continue
            item = frame_items[i]
            n = item_count(item, self._call_counts, self._compaction_counts)
            frame[1], frame[2] = i + 1, pos + n
            if pos + n <= lo:
                continue
            a, b = max(lo - pos, 0), min(hi - pos, n)  # the part of this item inside the window
            if not is_reference(item):
                out.append(item)
            else:
                child = self._expand(parse_ref(item), a, b, out)
                if child is not None:
                    stack.append(child)
        return out

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
            return [compaction.replacement, 0, 0, a, b]
        call = self._referenced_call(ref.call_id)
        if isinstance(ref, CallRef):
            first, _ = call_window(ref, call.message_count)
            return [call.event.request.messages, 0, 0, first + a, first + b]
        out.append(response_message(call.event.response.content, call.event.response.tool_calls))
        return None


def context_at(events: Sequence[RecordedEvent], *, call_id: str | None = None) -> ModelContext:
    """The request of model call `call_id`, or of the last model call among `events` (a lineage
    read up to the version asked); raises ModelCallNotFoundError when there is none."""
    index = ContextIndex(events)
    if call_id is not None:
        return index.context(call_id)
    latest = index.latest_call()
    if latest is None:
        last = events[-1].version if events else 0
        raise ModelCallNotFoundError(f"no model call at or before version {last} of this session", version=last)
    return index.context(latest.event.call_id)
