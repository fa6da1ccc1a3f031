"""Canonical JSON written by Python's encoder where it gives JCS's bytes (tenants.canonical,
decision 0025): on generated JSON values, and on the edges where the two encoders could
differ, it writes exactly what the `rfc8785` library writes, or fails as the library
fails. (The RFC 8785 test vectors go through it in tests/federation/test_interop.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tenants import canonical
from tenants.canonical import canonical_json

SAFE = 2**53 - 1

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def both(value: Any) -> tuple[Any, Any]:
    """What each encoder makes of `value`: its bytes, or the kind of error it raised."""
    results = []
    for encode in (canonical_json, rfc8785.dumps):
        try:
            results.append(encode(value))
        except Exception as exc:  # noqa: BLE001 - the kind is what is compared
            results.append(type(exc))
    return results[0], results[1]


@settings(max_examples=3000, deadline=None)
@given(json_values)
def test_it_writes_what_the_library_writes_for_any_json_value(value: Any) -> None:
    ours, library = both(value)
    assert ours == library


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, False, None], "c": {"z": "", "y": "x"}},
        {"control": "".join(chr(i) for i in range(32)) + '"\\/\x7f'},
        {"line separators": "\u2028\u2029", "bom": "\ufeff", "nul": "\x00"},
        {"astral": "\U0001f600 \U00010000", "private use": "\ue000\uffff"},
        # Member names JCS sorts by UTF-16 code units: the library writes these.
        {"\U0001f600": 1, "\ue000": 2, "é": 3, "a": 4},
        {"edge": [SAFE, -SAFE, SAFE + 1, -(SAFE + 1), 2**60, 0, -0]},
        {"floats": [0.1, 1.0, -0.0, 1e21, 5e-324]},
        {"tuple": (1, 2)},
        ["\ud800"],
        {"\ud800": 1},
        [],
        {},
        "plain",
        SAFE,
    ],
)
def test_the_edges_where_the_encoders_could_differ(value: Any) -> None:
    ours, library = both(value)
    assert ours == library


def test_only_values_both_write_alike_take_the_fast_path() -> None:
    """The check itself: what goes to Python's encoder, and what to the library."""
    assert canonical._plain({"a": [1, "é", None, True, {"b": SAFE}]})
    for value in (
        {"é": 1},
        {"a": 0.5},
        {"a": SAFE + 1},
        {"a": (1,)},
        {1: "a"},
        [object()],
    ):
        assert not canonical._plain(value), value
