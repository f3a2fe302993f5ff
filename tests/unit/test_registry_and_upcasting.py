"""Stored events stay readable: every stored example decodes to the current model, old payloads
through the upcaster chain, current ones unchanged (a field change without a new schema version
fails here)."""

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.errors import (
    EventSchemaTooNewError,
    MissingUpcasterError,
    StoredEventInvalidError,
    UnknownEventTypeError,
)
from eventstore.registry import EVENT_TYPES, current_version, decode, from_stored, to_stored
from eventstore.upcasting import UPCASTERS, message_added_v1_to_v2, upcast

STORED = Path(__file__).parent / "stored_events"


FIXTURES = [json.loads(path.read_text()) for path in sorted(STORED.glob("*.json"))]


def _examples(current: bool) -> list:
    return [
        pytest.param(body["type"], body["schema_version"], example, id=f"{body['type']}.v{body['schema_version']}-{i}")
        for body in FIXTURES
        if (body["schema_version"] == current_version(body["type"])) == current
        for i, example in enumerate(body["examples"])
    ]


def test_stored_examples_cover_every_event_type_at_its_current_version():
    covered = {body["type"] for body in FIXTURES if body["schema_version"] == current_version(body["type"])}
    assert covered == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type, version, example", _examples(current=True))
def test_from_stored_reads_current_payloads_unchanged(event_type, version, example):
    event = from_stored(event_type, version, example["data"])
    assert to_stored(event) == (event_type, version, example["data"])


@pytest.mark.parametrize("event_type, version, example", _examples(current=False))
def test_from_stored_upcasts_old_payloads_to_the_current_model(event_type, version, example):
    event = from_stored(event_type, version, example["data"])
    assert to_stored(event) == (event_type, current_version(event_type), example["current"])


def test_message_added_v1_to_v2_renames_text_and_adds_no_agent_without_touching_input():
    old = {"role": "user", "text": "hello"}
    assert message_added_v1_to_v2(old) == {"role": "user", "content": "hello", "agent": None}
    assert old == {"role": "user", "text": "hello"}


def test_upcast_returns_payload_unchanged_when_already_current():
    data = {"role": "user", "content": "hi", "agent": None}
    assert upcast("MessageAdded", 2, 2, data) is data


def test_upcasters_form_an_unbroken_chain_for_every_event_type():
    for name, cls in EVENT_TYPES.items():
        for version in range(1, cls.SCHEMA_VERSION):
            assert (name, version) in UPCASTERS, f"{name} v{version}"


def test_to_stored_uses_explicit_type_names_not_import_paths():
    for name, cls in EVENT_TYPES.items():
        assert name == cls.TYPE and "." not in name


def test_from_stored_is_refused_when_type_unknown():
    with pytest.raises(UnknownEventTypeError) as raised:
        from_stored("eventstore.events.MessageAdded", 1, {})
    assert raised.value.code == "unknown_event_type"


def test_from_stored_is_refused_when_schema_newer_than_reader():
    with pytest.raises(EventSchemaTooNewError):
        from_stored("MessageAdded", 3, {"role": "user", "content": "hi"})


def test_from_stored_is_refused_when_payload_does_not_fit_model():
    with pytest.raises(StoredEventInvalidError) as raised:
        from_stored("MessageAdded", 2, {"role": "robot", "content": "hi"})
    assert raised.value.extra["errors"][0]["field"] == "role"


def test_upcast_is_refused_when_a_step_is_missing():
    with pytest.raises(MissingUpcasterError):
        upcast("SessionStarted", 2, 3, {})


def test_decode_reads_a_recorded_event():
    recorded = RecordedEvent(
        position=7,
        session_id="case-42",
        version=2,
        event_id=uuid4(),
        type="MessageAdded",
        schema_version=1,
        data={"role": "user", "text": "hi"},
        tenant="acme",
        recorded_at=datetime(2025, 3, 1, tzinfo=UTC),
    )
    assert decode(recorded) == ev.MessageAdded(role="user", content="hi")
