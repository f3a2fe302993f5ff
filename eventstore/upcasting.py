"""Upcasters: a numbered chain of plain dict -> dict functions that lift old stored payloads.

Invariant: UPCASTERS[(type, n)] turns a payload of schema version n into version n + 1, and
nothing else; it works on plain dicts (never on event classes, which only know the current
shape), returns a new dict and leaves its input untouched. Stored rows are never rewritten:
old payloads are lifted every time they are read. Add a step here whenever an event class in
eventstore/events.py gets a new SCHEMA_VERSION, with a stored example under
tests/unit/stored_events/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventstore.errors import MissingUpcasterError

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register `fn` as the step from `from_version` to `from_version + 1` of `event_type`."""

    def register(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in UPCASTERS:
            raise RuntimeError(f"two upcasters for {event_type} v{from_version}")
        UPCASTERS[key] = fn
        return fn

    return register


def upcast(event_type: str, from_version: int, to_version: int, data: Payload) -> Payload:
    """Run the chain from `from_version` up to `to_version`; the same dict back if already there."""
    for version in range(from_version, to_version):
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise MissingUpcasterError(
                f"no upcaster for {event_type} from schema version {version}",
                event_type=event_type,
                schema_version=version,
            )
        data = step(data)
    return data


# --- The chain. Name: <event>_v<n>_to_v<n+1>. ---


@upcaster("MessageAdded", 1)
def message_added_v1_to_v2(data: Payload) -> Payload:
    """v1 called the body `text` and did not say which agent spoke (agents were unnamed)."""
    lifted = {key: value for key, value in data.items() if key != "text"}
    lifted["content"] = data["text"]
    lifted.setdefault("agent", None)
    return lifted


@upcaster("SessionStarted", 1)
def session_started_v1_to_v2(data: Payload) -> Payload:
    """v1 sessions had no budget."""
    return {**data, "budget": None}


@upcaster("ModelCallRecorded", 1)
def model_call_recorded_v1_to_v2(data: Payload) -> Payload:
    """v1 calls were not priced: their cost is unknown, not zero (eventstore/pricing.py)."""
    return {**data, "cost": None}
