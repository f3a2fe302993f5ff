"""Hypothesis strategies for JSON values as careless and hostile clients write them: integers near
and past 2**31, 2**53, 2**63 and 2**64; floats from 5e-324 to 1.7976931348623157e308 and the
non-finite ones (NaN, Infinity, 1e400) as JSON text; any unicode, including NUL, lone surrogates
(as `\ud800` escapes: the only way JSON carries one) and astral characters; objects deep, wide
and just under or over a size limit; instants of years 1..9999 in any offset, and beyond.

Bodies are Python values written by `to_json_text`, where `Raw` stands for JSON text no Python
value serialises to (NaN, 1e400, a 30-digit integer, an array nested 3000 deep).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

KIB = 1024


@dataclass(frozen=True)
class Raw:
    """JSON text sent exactly as written."""

    text: str


def to_json_text(value: Any, *, ascii_only: bool = True) -> str:
    """`value` as JSON text; a lone surrogate is always written as a `\\udXXX` escape (the only way
    JSON can carry one), other non-ASCII characters raw (UTF-8) unless `ascii_only`."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        items = (
            f"{to_json_text(k, ascii_only=ascii_only)}:{to_json_text(v, ascii_only=ascii_only)}"
            for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json_text(v, ascii_only=ascii_only) for v in value) + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=ascii_only)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only its escape is JSON
            text = json.dumps(value, ensure_ascii=True)
        return text
    return json.dumps(value)  # None, bool, int, float (NaN and Infinity as JavaScript writes them)


# --- scalars --------------------------------------------------------------------------------

EDGE_INTS = [
    *(2**31 + d for d in (-1, 0, 1)),
    *(-(2**31) + d for d in (-1, 0)),
    *(2**53 + d for d in (-1, 0, 1)),
    -(2**53) - 1,
    *(2**63 + d for d in (-1, 0, 1)),
    *(-(2**63) + d for d in (-1, 0)),
    *(2**64 + d for d in (-1, 0)),
    10**30,
    -(10**30),
]
EDGE_FLOATS = [
    0.0,
    -0.0,
    0.1,
    1.5,
    -2.5e-7,
    1e16,
    1e23,
    2.0**53 + 2,
    3.747113283042022e16,  # stored by jsonb as the integer 37471132830420220
    2.0**63,
    2.0**64,
    1e308,
    1.7976931348623157e308,
    5e-324,
]
NON_FINITE = [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e400")]
# Number texts json.loads reads as ordinary values (0.0, 0, 100.0, 1.0) or as integers past 64 bits.
ODD_NUMBER_TEXTS = [
    Raw("1e-400"),
    Raw("-0"),
    Raw("1E2"),
    Raw("0.1e1"),
    Raw("1.00000000000000000000001"),
    Raw("123456789012345678901234567890"),
]

AWKWARD = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\ud83d",
    "😀",
    "\U0010ffff",
    "\u2028",
    "\ufeff",
    "\x01",
    "\x1f",
    "\x7f",
    "\t\r\n",
    "e\u0301",
    "\u202e",
    '"\\/',
    "%00",
    "",
    " ",
]


def storable(text: str) -> bool:
    """No NUL and no lone surrogate: what Postgres text and jsonb keep."""
    return "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)


clean_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.sampled_from(
    [0, 1, -1, 2**31 - 1, 2**53, 2**63 - 1]
)
clean_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(EDGE_FLOATS)
clean_numbers = st.one_of(clean_ints, clean_floats)
hostile_numbers = st.sampled_from(EDGE_INTS + NON_FINITE + ODD_NUMBER_TEXTS)

clean_text = st.text(max_size=16).filter(storable) | st.sampled_from([a for a in AWKWARD if storable(a)])
any_text = st.one_of(
    clean_text, clean_text, clean_text, st.sampled_from(AWKWARD), st.text(st.characters(codec=None), max_size=8)
)

clean_scalars = st.none() | st.booleans() | clean_numbers | clean_text
scalars = st.one_of(clean_scalars, clean_scalars, clean_scalars, hostile_numbers, any_text)


def near_limit_text(limit: int, *, chars: str = "aé€😀", unit: str = "bytes") -> st.SearchStrategy[str]:
    """One repeated character filling `limit` (bytes of UTF-8, or characters) give or take two."""

    def build(char: str, delta: int) -> str:
        size = len(char.encode()) if unit == "bytes" else 1
        return char * max(1, limit // size + delta)

    return st.builds(build, st.sampled_from(chars), st.integers(min_value=-2, max_value=2))


def mostly(common: st.SearchStrategy[Any], weight: int, *rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`common` drawn `weight` times as often as each of `rare` (one_of picks branches evenly)."""
    return st.one_of(*([common] * weight), *rare)


# --- free-form JSON -------------------------------------------------------------------------


def json_trees(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str], max_leaves: int = 20):
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=max_leaves,
    )


@st.composite
def deep_values(draw) -> Any:
    """Nested objects and arrays around the depth limit (64), well past it, or past any parser's."""
    depth = draw(st.integers(55, 70) | st.sampled_from([1, 2, 200, 253, 254, 300]))
    value: Any = draw(clean_scalars)
    for _ in range(depth):
        value = {draw(st.sampled_from(["a", "", "é"])): value} if draw(st.booleans()) else [value]
    return value


def too_deep_for_parsers() -> st.SearchStrategy[Raw]:
    return st.sampled_from([Raw("[" * 3000 + "1" + "]" * 3000), Raw('{"a":' * 2000 + "1" + "}" * 2000)])


def wide_object(max_keys: int = 3000) -> st.SearchStrategy[dict]:
    return st.builds(lambda n, v: {f"k{i}": v for i in range(n)}, st.integers(1, max_keys), clean_scalars)


def near_size_object(limit: int) -> st.SearchStrategy[dict]:
    """`{"blob": "xx…"}` of `limit` + delta bytes as compact UTF-8 JSON ({"blob":"" is 11 bytes);
    with "€" (3 bytes, 6 as the `\u20ac` an ASCII body writes) the limit is on the stored size."""

    def build(char: str, delta: int) -> dict:
        return {"blob": char * ((limit - 11) // len(char.encode()) + delta)}

    return st.builds(build, st.sampled_from("x€"), st.integers(-2, 2))


# Keys and values that collide under Python's == but not in JSON (True == 1 == 1.0, False == 0).
COLLIDING_VALUES = [0, 1, 1.0, True, False, None, [1], [True]]
# Pairs Python holds equal (True == 1 == 1.0) that are different JSON values, bar 1 and 1.0 (one number).
RETYPED = [(1, True), (True, 1), (1.0, True), (0, False), (False, 0), ([1], [True]), ({"x": 0}, {"x": False})]
colliding_patches = st.dictionaries(
    st.sampled_from(["a", "b"]), st.sampled_from(COLLIDING_VALUES), min_size=1, max_size=2
)
nested_colliding = st.dictionaries(
    st.sampled_from(["a", "n"]), colliding_patches | st.sampled_from(COLLIDING_VALUES), min_size=1, max_size=2
)


def objects(limit: int) -> st.SearchStrategy[Any]:
    """JSON objects for a free-form field of at most `limit` bytes."""
    clean = st.dictionaries(clean_text, json_trees(clean_scalars, clean_text), max_size=5)
    hostile = st.dictionaries(any_text, json_trees(scalars, any_text), max_size=5)
    return st.one_of(
        clean,
        clean,
        clean,
        colliding_patches,
        colliding_patches,
        nested_colliding,
        hostile,
        deep_values().map(lambda v: v if isinstance(v, dict) else {"v": v}),
        wide_object(),
        near_size_object(limit),
        too_deep_for_parsers(),
        st.sampled_from([[], "not an object", 1, None]),
    )


def any_json(limit: int) -> st.SearchStrategy[Any]:
    """Any JSON value (a tool result) of at most `limit` bytes."""
    return st.one_of(json_trees(clean_scalars, clean_text), objects(limit), scalars, near_size_object(limit))


# --- dates, ids, names ----------------------------------------------------------------------

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets).map(
        datetime.isoformat
    ),
    st.datetimes(min_value=datetime(2200, 1, 1), max_value=datetime(9999, 12, 30), timezones=offsets).map(
        datetime.isoformat
    ),
    st.sampled_from(
        [
            "9999-12-31T23:59:59.999999Z",  # asyncpg's infinity
            "9999-12-31T22:59:59.999999-01:00",
            "9999-12-31T23:59:59.999998Z",
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T23:59:59+14:00",
            "9999-12-31T23:59:59.9999999Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "2999-01-01T00:00:00",
            "2999-01-01",
            "+10000-01-01T00:00:00Z",
            "2999-02-30T00:00:00Z",
            253402300799999,
            -62135596800,
            1e20,
            True,
        ]
    ),
)
