"""The lookup document's plain check (documents.lookup_well_formed, read on every lookup
answered) accepts and refuses exactly what the DRF serializer (documents.Lookup) does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation import documents

KEY = "a" * 64
# Keys near each edge: empty, whitespace only, the longest allowed and one more, NUL, a lone
# surrogate, non-ASCII, and JSON values that are not strings.
EDGE_KEYS = [
    "",
    " ",
    "\n",
    "x" * documents.KEY_MAX,
    "x" * (documents.KEY_MAX + 1),
    " " + "x" * (documents.KEY_MAX - 1),
    "ab\x00",
    "\ud800",
    "é" * 10,
    KEY,
    5,
    1.5,
    True,
    None,
    [],
    {},
]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
key_values = st.one_of(st.sampled_from(EDGE_KEYS), st.text(max_size=140), json_scalars)
key_lists = st.one_of(
    st.lists(key_values, max_size=20),
    st.lists(st.just(KEY), min_size=14, max_size=18),
    json_scalars,
    st.dictionaries(st.text(max_size=3), key_values, max_size=2),
)
match_keys = st.one_of(
    st.dictionaries(
        st.sampled_from(["nhs", "demographic", "nhs_and_birth_date", "other"]),
        key_lists,
        max_size=4,
    ),
    json_scalars,
    st.lists(key_values, max_size=2),
)
lookups = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(
            st.sampled_from(["patchwork.lookup", "patchwork.lookup ", "Patchwork.lookup", ""]),
            json_scalars,
        ),
        "match_keys": match_keys,
        "extra": json_scalars,
    },
)


def drf(payload: Any) -> bool:
    return documents.well_formed(documents.Lookup, payload)


@settings(max_examples=1500, deadline=None)
@given(lookups)
def test_plain_check_agrees_with_the_serializer(payload: dict[str, Any]) -> None:
    assert documents.lookup_well_formed(payload) == drf(payload)


@pytest.mark.parametrize(
    ("payload", "accepted"),
    [
        ({"type": "patchwork.lookup", "match_keys": {}}, True),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": [KEY], "demographic": []}}, True),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": [KEY] * 16}}, True),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": [KEY] * 17}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"demographic": [KEY] * 1024}}, True),
        ({"type": "patchwork.lookup", "match_keys": {"demographic": [KEY] * 1025}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"demographic": 5}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": None}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": KEY}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": [""]}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": ["  "]}}, True),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": ["x" * 128]}}, True),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": ["x" * 129]}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": ["a\x00"]}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": ["\udfff"]}}, False),
        ({"type": "patchwork.lookup", "match_keys": {"nhs": [5]}}, False),
        ({"type": "patchwork.lookup", "match_keys": None}, False),
        ({"type": "patchwork.lookup", "match_keys": []}, False),
        ({"type": "patchwork.lookup"}, False),
        ({"match_keys": {}}, False),
        ({"type": None, "match_keys": {}}, False),
        ({"type": "patchwork.pointer-update", "match_keys": {}}, False),
        ({"type": "patchwork.lookup", "match_keys": {}, "more": 1}, True),
        ([], False),
        (None, False),
        ("patchwork.lookup", False),
    ],
)
def test_known_documents(payload: Any, accepted: bool) -> None:
    assert drf(payload) is accepted
    assert documents.lookup_well_formed(payload) is accepted
