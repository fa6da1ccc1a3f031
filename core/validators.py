"""Rules for what people type that the pages' forms and the API's serializers share, so a
date or a note the page refuses is refused by the API too, in the same words. The rules
about records themselves (who may do what, which dates fit an involvement) stay in the
services, which both call."""

from __future__ import annotations

from datetime import date

from django.utils import timezone

# Before this, a date is a typing slip ("25" for 2025), not a real one.
EARLIEST_DATE = date(1000, 1, 1)


def date_problem(value: date, *, label: str, past_only: bool) -> str | None:
    """What is wrong with a date someone typed, in their words, or None. `label` is the
    field's name as a sentence starts it: "Date of birth"."""
    if value < EARLIEST_DATE:
        return f"{label} must be a real date"
    if past_only and value > timezone.localdate():
        return f"{label} must be today or in the past"
    return None
