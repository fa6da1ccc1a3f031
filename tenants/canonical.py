"""RFC 8785 (JCS) canonical JSON, written by Python's own C encoder wherever that gives the
same bytes, and by the `rfc8785` library everywhere else (decision 0025).

Canonical JSON is hashed into every audit event and signed into every federation document:
a check across 150 councils writes it some thousand times, and the library, written in
pure Python, escaping each string in a Python loop, was a fifth of a federation answer's
CPU. For the values Patchwork writes, `json.dumps` with sorted keys, no whitespace and
UTF-8 produces exactly JCS's bytes:

- objects whose member names are all ASCII: JCS sorts names by UTF-16 code units and
  Python by code points, which differ only for characters past U+FFFF;
- strings: both escape `"`, `\\`, and the control characters U+0000 to U+001F (as `\\b`,
  `\\t`, `\\n`, `\\f`, `\\r`, else `\\u00xx` in lower case), and write everything else as
  it is, in UTF-8;
- integers within ±(2^53 − 1), `true`, `false`, `null`, arrays.

Anything else (a float, a larger integer, a non-ASCII member name, a tuple, a lone
surrogate) goes to the library, unchanged. tests/platform/test_canonical_json.py compares
the two on generated documents, and the RFC 8785 vectors still run through this function."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

SAFE_INTEGER = 2**53 - 1
_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def _plain(value: Any) -> bool:
    """True when every part of `value` is written the same by both encoders."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if -SAFE_INTEGER <= item <= SAFE_INTEGER:
                continue
            return False
        if kind is dict:
            for key, member in item.items():
                if type(key) is not str or not key.isascii():
                    return False
                stack.append(member)
            continue
        if kind is list:
            stack.extend(item)
            continue
        return False
    return True


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of `value`. Raises what `rfc8785.dumps` raises for a value it
    cannot write (rfc8785.CanonicalizationError and its kinds)."""
    if _plain(value):
        try:
            return _encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the library says what is wrong with it
    return rfc8785.dumps(value)
