"""Registry of event types: stored type name -> (current schema version, model).

Invariant: `from_stored(*to_stored(event)) == event` for every registered event, and
`from_stored` accepts every payload ever written under an older schema version (through the
upcaster chain). Type names are the explicit `TYPE` strings of eventstore/events.py, never
Python import paths, so moving or renaming a class never orphans stored events.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from eventstore.envelope import RecordedEvent
from eventstore.errors import EventSchemaTooNewError, StoredEventInvalidError, UnknownEventTypeError
from eventstore.events import ALL_EVENT_CLASSES, Event
from eventstore.upcasting import upcast


def _build(classes: tuple[type[Event], ...]) -> dict[str, type[Event]]:
    registry: dict[str, type[Event]] = {}
    for cls in classes:
        if cls.TYPE in registry:
            raise RuntimeError(f"event type {cls.TYPE!r} registered twice")
        registry[cls.TYPE] = cls
    return registry


EVENT_TYPES: dict[str, type[Event]] = _build(ALL_EVENT_CLASSES)


def event_class(event_type: str) -> type[Event]:
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventTypeError(f"unknown event type {event_type!r}", event_type=event_type) from None


def current_version(event_type: str) -> int:
    return event_class(event_type).SCHEMA_VERSION


def to_stored(event: Event) -> tuple[str, int, dict[str, Any]]:
    """(type, schema version, JSON-ready data) for the events row and the Kafka record."""
    cls = type(event)
    if EVENT_TYPES.get(cls.TYPE) is not cls:
        raise UnknownEventTypeError(f"{cls.__name__} is not a registered event", event_type=cls.TYPE)
    return cls.TYPE, cls.SCHEMA_VERSION, event.model_dump(mode="json")


def from_stored(event_type: str, schema_version: int, data: dict[str, Any]) -> Event:
    """The current model of a stored event, lifting old payloads through the upcasters."""
    cls = event_class(event_type)
    if schema_version > cls.SCHEMA_VERSION:
        raise EventSchemaTooNewError(
            f"{event_type} v{schema_version} is newer than this reader (v{cls.SCHEMA_VERSION})",
            event_type=event_type,
            schema_version=schema_version,
        )
    lifted = (
        data if schema_version == cls.SCHEMA_VERSION else upcast(event_type, schema_version, cls.SCHEMA_VERSION, data)
    )
    try:
        event: Event = cls.__pydantic_validator__.validate_python(lifted)  # model_validate, one frame less
        return event
    except ValidationError as exc:
        raise StoredEventInvalidError(
            f"stored {event_type} v{schema_version} does not fit its model: {exc.error_count()} error(s)",
            event_type=event_type,
            schema_version=schema_version,
            errors=[
                {"field": ".".join(map(str, err["loc"])), "reason": err["msg"]}
                for err in exc.errors(include_url=False, include_input=False)
            ],
        ) from exc


def decode(recorded: RecordedEvent) -> Event:
    """The current model of a row read from the store or a record read from Kafka."""
    return from_stored(recorded.type, recorded.schema_version, recorded.data)
