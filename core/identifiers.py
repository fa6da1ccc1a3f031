"""Identifiers and the normalisation that makes names, postcodes and NHS numbers
comparable: case, accents, hyphens, apostrophes and spacing never decide a match."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError

SPACES_AND_HYPHENS = re.compile(r"[\s-]")


def nhs_number_clean(value: str) -> str:
    return SPACES_AND_HYPHENS.sub("", value or "")


def nhs_number_check_digit(first_nine: str) -> int | None:
    """The NHS number's modulus-11 check digit over its first nine digits (weights 10 down
    to 2), or None when it would be 10: no NHS number begins with those nine digits."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def nhs_number_is_valid(value: str) -> bool:
    """Ten digits, the last the check digit of the nine before it."""
    digits = nhs_number_clean(value)
    if not re.fullmatch(r"[0-9]{10}", digits):
        return False
    return nhs_number_check_digit(digits[:9]) == int(digits[9])


def validate_nhs_number(value: str) -> None:
    if not nhs_number_is_valid(value):
        raise ValidationError(
            "Enter a valid NHS number: 10 digits, like 943 476 5919 (check for a mistyped digit)"
        )


def nhs_number_display(value: str) -> str:
    digits = nhs_number_clean(value)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}" if len(digits) == 10 else value


NOT_A_LETTER = re.compile(r"[^a-z]")


def name_key(value: str) -> str:
    """A name folded for comparison: 'Zoë O'Brien-Smith' -> 'zoeobriensmith'."""
    value = value or ""
    if not value.isascii():
        decomposed = unicodedata.normalize("NFKD", value)
        value = "".join(c for c in decomposed if not unicodedata.combining(c))
    return NOT_A_LETTER.sub("", value.lower())


POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")


# A postcode as someone types it (any case, spaces around or between its halves): what the
# API's schema publishes, so a client can check before sending.
POSTCODE_TYPED = r"^ *[A-Za-z]{1,2}[0-9][A-Za-z0-9]? *[0-9][A-Za-z]{2} *$"


def postcode_key(value: str) -> str:
    """A UK postcode without spaces, upper case: 'bn1 1aa' -> 'BN11AA'."""
    return "".join((value or "").split()).upper()


def postcode_display(value: str) -> str:
    key = postcode_key(value)
    return f"{key[:-3]} {key[-3:]}" if len(key) >= 5 else key


def validate_postcode(value: str) -> None:
    if value and not POSTCODE.match(postcode_key(value)):
        raise ValidationError("Enter a real postcode, like BN1 1AA")
