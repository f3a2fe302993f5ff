"""RFC 7396 JSON merge patch, checked against the RFC's own examples (appendix A)."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.merge_patch import apply_merge_patch, changed_keys, merge_patch_in_place

RFC_7396_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("target, patch, expected", RFC_7396_APPENDIX_A)
def test_apply_merge_patch_matches_rfc_7396_examples(target, patch, expected):
    assert apply_merge_patch(target, patch) == expected


def test_apply_merge_patch_leaves_its_arguments_untouched():
    target = {"a": {"b": 1}, "keep": [1]}
    patch = {"a": {"c": {"d": 2}}, "keep": None}
    result = apply_merge_patch(target, patch)
    result["a"]["c"]["d"] = 99
    assert target == {"a": {"b": 1}, "keep": [1]}
    assert patch == {"a": {"c": {"d": 2}}, "keep": None}


def test_apply_merge_patch_is_idempotent():
    target = {"a": 1, "b": {"c": 2}}
    patch = {"a": None, "b": {"d": 3}}
    once = apply_merge_patch(target, patch)
    assert apply_merge_patch(once, patch) == once


def test_changed_keys_lists_added_removed_and_changed_top_level_keys():
    assert changed_keys({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}) == ["b", "c", "d"]


keys = st.sampled_from(["a", "b", "c"])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(keys, inner, max_size=3), max_leaves=8
)
objects = st.dictionaries(keys, values, max_size=3)


@settings(max_examples=200, deadline=None)
@given(target=objects, patch=objects)
def test_merge_patch_in_place_gives_what_apply_merge_patch_gives_and_shares_nothing_with_the_patch(target, patch):
    expected = apply_merge_patch(target, patch)
    patch_before = copy.deepcopy(patch)
    merge_patch_in_place(target, patch)
    assert target == expected
    for key, value in patch.items():  # a container of the patch is never put into the target
        if isinstance(value, list | dict):
            assert target.get(key) is not value
    assert patch == patch_before
