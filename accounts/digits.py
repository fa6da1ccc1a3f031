"""Digits as people type them into Patchwork: 0 to 9 only.

Python's `str.isdigit()`, `int()` and a regular expression's `\\d` also take other scripts'
digits ('３', '٣', '²'), so a full-width NHS number would be stored as if it were ASCII and
'²' would pass a check and then break `int()`. Every check of typed digits uses these."""

from __future__ import annotations

import re

DIGITS = re.compile(r"[0-9]+")


def ascii_digits(value: object) -> bool:
    """True for a non-empty string of 0-9 and nothing else."""
    return isinstance(value, str) and DIGITS.fullmatch(value) is not None


def ascii_int(value: object) -> int | None:
    """The number a string of 0-9 spells, or None for anything else."""
    return int(value) if isinstance(value, str) and ascii_digits(value) else None
