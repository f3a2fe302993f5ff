"""What the integrations store for a framework's values and ids: JSON as JSON only when it comes
back equal and of the same types, everything else through the framework's serializer, losslessly;
framework ids as session ids, one to one."""

from __future__ import annotations

import datetime as dt
import enum

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from agentlog.integrations import values
from agentlog.integrations.ids import framework_id, session_id_for

SERDE = JsonPlusSerializer()


class Color(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


JSON = [None, True, 0, -(2**63), 2**63 - 1, 1.5, "text", [], {}, {"a": [1, {"b": None}], "c": "d"}]
NOT_JSON = [
    (1, 2),  # a tuple would come back a list
    Color.RED,  # a str subclass would come back a plain str
    Level.HIGH,
    2**63,  # beyond 64 bits
    float("nan"),
    -0.0,  # jsonb keeps no negative zero
    "nul\x00",
    "\ud800",  # a lone surrogate
    {1: "int key"},
    {"k": {1, 2}},
    b"bytes",
    dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
]


@pytest.mark.parametrize("value", JSON)
def test_json_values_are_stored_as_json_and_come_back_equal(value) -> None:
    stored = values.dump(SERDE, value)
    assert (stored.kind, stored.value) == ("json", value)
    back = values.load(SERDE, stored)
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value", NOT_JSON, ids=repr)
def test_other_values_go_through_the_serializer_and_come_back_as_it_loads_them(value) -> None:
    stored = values.dump(SERDE, value)
    assert stored.kind == "bytes" and stored.type and stored.base64
    back = values.load(SERDE, {"kind": "bytes", "type": stored.type, "base64": stored.base64})
    assert back == SERDE.loads_typed(SERDE.dumps_typed(value)) or back != back  # nan is not equal to itself


def test_json_values_can_be_turned_off_so_every_value_keeps_its_bytes() -> None:
    stored = values.dump(SERDE, {"b": 1, "a": 2}, json_values=False)
    assert stored.kind == "bytes"
    assert list(values.load(SERDE, stored)) == ["b", "a"]  # key order kept, which jsonb would not


def test_nesting_beyond_the_limit_is_not_json() -> None:
    deep: list = []
    for _ in range(values.MAX_DEPTH + 1):
        deep = [deep]
    assert not values.is_json(deep)
    assert values.dump(SERDE, deep).kind == "bytes"


def test_an_empty_value_is_refused_by_load() -> None:
    with pytest.raises(values.EmptyValue):
        values.load(SERDE, {"kind": "empty"})


@pytest.mark.parametrize("thread", ["refund-7", "a" * 128, "550e8400-e29b-41d4-a716-446655440000", "x:y@z.w"])
def test_an_id_that_is_a_session_id_is_the_session_id(thread: str) -> None:
    assert session_id_for(thread, "lg") == thread and framework_id(thread, "lg") == thread


@pytest.mark.parametrize("thread", ["user 42", "a/b", "ünïcode", "lg.x.616263", "", "-leading"])
def test_any_other_id_is_mapped_and_read_back(thread: str) -> None:
    sid = session_id_for(thread, "lg")
    assert sid.startswith("lg.x.") and sid != thread
    assert framework_id(sid, "lg") == thread


def test_a_long_id_is_hashed_and_ids_never_collide() -> None:
    long = "thread " * 40
    sid = session_id_for(long, "lg")
    assert sid.startswith("lg.h.") and len(sid) <= 128 and framework_id(sid, "lg") is None
    ids = ["a b", "a_b", "a-b", "lg.a-b", long, long + "!"]
    assert len({session_id_for(i, "lg") for i in ids}) == len(ids)
