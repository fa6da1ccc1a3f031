"""JSON fields that take exactly the JSON type the schema names, as the API and the
federation protocol document them.

DRF's own fields are lenient: a CharField turns 5 into "5", a BooleanField takes 0, "yes"
and "off", an IntegerField takes "12" and the full-width "１２", a DateField takes
"２０２５-０３-１４". A client reading the published schema cannot know that, and a fuzzer
rightly calls it accepting bad input; these refuse anything but the documented type,
in the user's words."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.validators import date_problem

# PostgreSQL cannot store NUL in text, and DRF refuses it: the schema says so.
NO_NUL = r"^[^\x00]*$"
# Every character Python's str.strip() and str.split() take for a space, spelt out: a
# pattern's \s means other characters to a JavaScript or Rust regex than to Python's.
SPACES = "".join(f"\\u{c:04x}" for c in range(0x10000) if chr(c).isspace())
# Something other than spaces, and no NUL.
SHOWS_SOMETHING = rf"^[^\x00]*[^{SPACES}\x00][^\x00]*$"


class JSONText(serializers.CharField):
    """A JSON string, never a number or a boolean turned into one, checked as sent: its
    length is the length the schema's maxLength counts (no trimming first), and `pattern`
    (published in the schema) says what it must look like."""

    def __init__(self, *, pattern: str = NO_NUL, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        message = self.error_messages.get("pattern", self.error_messages["invalid"])
        self.validators.append(RegexValidator(pattern, message=message))

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class JSONBoolean(serializers.BooleanField):
    """JSON true or false, not 0, 1 or "yes"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class JSONInteger(serializers.IntegerField):
    """A JSON whole number, not "12", 12.0 or true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


# Year-month-day in the digits 0 to 9, from the year 1000 (core.validators.EARLIEST_DATE).
ISO_DATE = r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}$"


@extend_schema_field({"type": "string", "format": "date", "pattern": ISO_DATE})
class JSONDate(serializers.DateField):
    """A date as year-month-day in the digits 0 to 9; with `past_only`, not after today.
    The pages' date field (core.forms.GovukDateField) has the same rules."""

    def __init__(self, *, label: str, past_only: bool = False, **kwargs: Any) -> None:
        self.label_text, self.past_only = label, past_only
        kwargs.setdefault("error_messages", {})
        kwargs["error_messages"].setdefault(
            "invalid", f"Enter the {label} as year-month-day, like 2025-03-14"
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> date:
        if not isinstance(data, str) or not re.fullmatch(ISO_DATE, data):
            self.fail("invalid", format="YYYY-MM-DD")
        value: date = super().to_internal_value(data)
        label = f"The {self.label_text}"
        problem = date_problem(value, label=label, past_only=self.past_only)
        if problem:
            raise serializers.ValidationError(problem)
        return value
