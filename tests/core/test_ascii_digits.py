"""Typed digits are 0 to 9 only: a full-width '３' is not read as 3 and a superscript '²'
does not pass a check and then break `int()` (issue 14, point 7)."""

from __future__ import annotations

import pytest

from accounts.digits import ascii_digits, ascii_int
from core.forms import GovukDateField
from core.identifiers import nhs_number_is_valid, validate_postcode
from tenants.models import validate_gss_code

FULL_WIDTH_NHS = "９４３４７６５９１９"  # 943 476 5919 in full-width digits


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("12", 12), ("0", 0), ("²", None), ("３", None), ("١٢", None), ("", None), ("-1", None)],
)
def test_it_reads_only_the_digits_0_to_9(typed: str, expected: int | None) -> None:
    """Other scripts' digits and superscripts are not numbers here."""
    assert ascii_int(typed) == expected
    assert ascii_digits(typed) is (expected is not None)


def test_an_nhs_number_in_full_width_digits_is_not_valid() -> None:
    """It would be stored as typed, and never match the same number in ASCII."""
    assert nhs_number_is_valid("9434765919")
    assert not nhs_number_is_valid(FULL_WIDTH_NHS)


def test_a_postcode_or_council_code_with_other_digits_is_refused() -> None:
    """'BN１ 1AA' and 'E０6000043' are not a postcode and a council code."""
    from django.core.exceptions import ValidationError

    validate_postcode("BN1 1AA")
    with pytest.raises(ValidationError):
        validate_postcode("BN１ 1AA")
    with pytest.raises(ValidationError):
        validate_gss_code("E０6000043")


@pytest.mark.parametrize("day", ["３", "²"])
def test_the_date_boxes_refuse_other_digits(day: str) -> None:
    """The page says the date is not a real one, rather than reading '３' as 3."""
    from django import forms

    field = GovukDateField(label="Date of birth")
    with pytest.raises(forms.ValidationError, match="must be a real date"):
        field.clean({"day": day, "month": "3", "year": "2015"})
