"""The session id rule shared by both APIs and the command models."""

import pytest

from eventstore.errors import ValidationProblemError
from eventstore.ids import is_valid_id, validate_session_id


@pytest.mark.parametrize("value", ["a", "case-42", "A1.b_c:d@e-f", "0" * 128, "tenant:session@2025-01-01"])
def test_session_id_is_accepted_when_short_printable_without_whitespace(value):
    assert validate_session_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * 129,
        "has space",
        "tab\there",
        "-leading-dash",
        ".hidden",
        "slash/inside",
        "caf\u00e9",
        "abc\n",
        "abc\x00",
        42,
        None,
    ],
)
def test_session_id_is_refused_when_invalid(value):
    assert not is_valid_id(value)
    with pytest.raises(ValidationProblemError) as raised:
        validate_session_id(value)
    assert raised.value.status == 422
    assert raised.value.extra["errors"][0]["field"] == "session_id"
