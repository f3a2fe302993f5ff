"""The stored-JSON and instant checks: what no store keeps unchanged is refused, naming where."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from commands.json_values import MAX_DEPTH, check_instant, check_json, find_problem, same_json


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "value, path, reason",
    [
        ({"a": "x\x00y"}, ("a",), "NUL"),
        ({"a": [1, {"b\x00": 1}]}, ("a", 1, "b\\u0000"), "key must not contain"),
        ({"n": float("nan")}, ("n",), "finite"),
        ({"n": [float("inf")]}, ("n", 0), "finite"),
        ({"n": -float("inf")}, ("n",), "finite"),
        ({"n": 2**63}, ("n",), "64-bit"),
        ({"n": -(2**63) - 1}, ("n",), "64-bit"),
        ({"n": 10**30}, ("n",), "64-bit"),
    ],
)
def test_json_values_refuse_what_a_store_would_change_naming_the_path(value, path, reason) -> None:
    found = find_problem(value)
    assert found is not None and found[0] == path and reason in found[1]
    with pytest.raises(ValueError, match=reason):
        check_json(value, 10_000)


def test_json_values_accept_unicode_extremes_and_the_depth_limit() -> None:
    value = {"é😀\u2028": ["\t\n", 2**63 - 1, -(2**63), 1e308, -0.0, True, None], "deep": _nested(MAX_DEPTH - 1)}
    assert check_json(value, 100_000) is value


def test_json_values_refuse_nesting_beyond_the_limit_without_recursion() -> None:
    assert find_problem(_nested(MAX_DEPTH)) is None
    assert "nested deeper" in find_problem(_nested(MAX_DEPTH + 1))[1]
    assert "nested deeper" in find_problem(_nested(100_000))[1]


def test_json_values_refuse_more_bytes_than_the_field_allows() -> None:
    with pytest.raises(ValueError, match="at most 10 bytes"):
        check_json({"a": "0123456789"}, 10)


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00"])
def test_instants_outside_years_1_to_9999_in_utc_are_refused(text) -> None:
    with pytest.raises(ValueError, match=r"years 1\.\.9999"):
        check_instant(datetime.fromisoformat(text))


def test_instants_at_the_edges_of_the_range_are_accepted() -> None:
    for text in ["9999-12-31T23:59:59+00:00", "9999-12-31T09:59:59-14:00", "0001-01-01T00:00:00-01:00"]:
        moment = datetime.fromisoformat(text)
        assert check_instant(moment) is moment
    with pytest.raises(ValueError):
        check_instant(datetime(2025, 1, 1))
    assert check_instant(datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=5))))


@pytest.mark.parametrize(
    "text", ["9999-12-31T23:59:59.999999+00:00", "9999-12-31T22:59:59.999999-01:00", "0001-01-01T00:00:00+00:00"]
)
def test_instants_the_postgres_driver_stores_as_infinity_are_refused(text) -> None:
    """Regression (pipeline property test): asyncpg writes the first and last microsecond of the
    range as -infinity/infinity and reads them back naive, so an approval expiring at
    9999-12-31T23:59:59.999999Z showed another (naive) expiry in approvals_v1."""
    with pytest.raises(ValueError, match="strictly between"):
        check_instant(datetime.fromisoformat(text))


def test_instants_one_microsecond_inside_the_range_are_accepted() -> None:
    for text in ("9999-12-31T23:59:59.999998+00:00", "0001-01-01T00:00:00.000001+00:00"):
        moment = datetime.fromisoformat(text)
        assert check_instant(moment) is moment


def test_check_json_refuses_a_lone_surrogate_in_a_value_or_key():
    """Found by the property test: "\\ud800" parses from JSON but is not UTF-8, so orjson (and
    Postgres) refuse it; it must be a 422 naming where it is, not a 500."""
    for value in ({"a": "x\ud800"}, {"k\udc00": 1}, ["ok", "\udfff"]):
        with pytest.raises(ValueError, match="surrogate"):
            check_json(value, 10_000)


@pytest.mark.parametrize(
    "a, b, same",
    [
        (1, 1.0, True),
        (1, True, False),
        (0, False, False),
        (True, True, True),
        (None, None, True),
        ("1", 1, False),
        ([1, {"a": [True]}], [1.0, {"a": [True]}], True),
        ([1, {"a": [True]}], [1, {"a": [1]}], False),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ([1], [1, 1], False),
        ({}, [], False),
        (10**16, 1e16, True),
        # jsonb keeps the float's decimal digits: 3.747113283042022e16 comes back as ...220
        (37471132830420220, 3.747113283042022e16, True),
        (37471132830420224, 3.747113283042022e16, False),
        (-0.0, 0, True),
        (5e-324, 0, False),
    ],
)
def test_same_json_tells_booleans_from_numbers_and_numbers_by_value(a, b, same) -> None:
    assert same_json(a, b) is same
    assert same_json(b, a) is same
