"""Pure parts of the command API and the store: headers, request fingerprints, expected versions."""

from __future__ import annotations

import pytest

from agentlog.edge.problems import field_errors
from commands import models as cmd
from commands.api.dependencies import parse_idempotency_key, parse_if_match, request_hash
from eventstore.errors import ValidationProblemError
from eventstore.positions import ANY, NO_STREAM, expected_code


@pytest.mark.parametrize("value, expected", [('"7"', 7), ("7", 7), (' "12" ', 12), (None, None)])
def test_if_match_accepts_quoted_and_bare_versions(value, expected) -> None:
    assert parse_if_match(value) == expected


@pytest.mark.parametrize("value", ['W/"1"', '"-1"', "*", '"1", "2"', "", '"1'])
def test_if_match_refuses_anything_else(value) -> None:
    with pytest.raises(ValidationProblemError) as caught:
        parse_if_match(value)
    assert caught.value.extra["errors"][0]["field"] == "header.If-Match"


def test_idempotency_key_must_be_visible_ascii() -> None:
    assert parse_idempotency_key("order-42:retry") == "order-42:retry"
    for bad in ("", "with space", "é", "x" * 256):
        with pytest.raises(ValidationProblemError):
            parse_idempotency_key(bad)


def test_request_hash_tells_requests_apart_but_not_key_order() -> None:
    a = [cmd.AddMessage(role="user", content="hi")]
    assert request_hash("POST", "/v1/sessions/s/messages", a) == request_hash(
        "POST", "/v1/sessions/s/messages", [cmd.AddMessage(content="hi", role="user")]
    )
    assert request_hash("POST", "/v1/sessions/s/messages", a) != request_hash("POST", "/v1/sessions/t/messages", a)
    assert request_hash("POST", "/x", a) != request_hash("POST", "/x", [cmd.AddMessage(role="user", content="ho")])


def test_field_errors_name_body_fields_without_prefix() -> None:
    errors = [
        {"loc": ("body", "commands", 0, "content"), "msg": "too long"},
        {"loc": ("path", "session_id"), "msg": "bad"},
        {"loc": ("body",), "msg": "missing"},
    ]
    assert field_errors(errors) == [
        {"field": "commands.0.content", "reason": "too long"},
        {"field": "path.session_id", "reason": "bad"},
        {"field": "body", "reason": "missing"},
    ]


def test_expected_code_maps_sentinels_and_refuses_negative_numbers() -> None:
    assert (expected_code(0), expected_code(5), expected_code(NO_STREAM), expected_code(ANY)) == (0, 5, -1, -2)
    for bad in (-1, True, "3"):
        with pytest.raises(ValueError):
            expected_code(bad)
