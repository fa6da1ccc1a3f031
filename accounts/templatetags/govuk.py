"""How a Django form field is drawn as a GOV.UK Design System component
(`includes/field.html`). Here, at the bottom layer, so every app's pages can use it; a widget
of an app above says which component it wants with a `govuk_kind` attribute (core's date
input) instead of this module knowing its class."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms, template

register = template.Library()

DATE_PARTS = ("day", "month", "year")


@register.filter
def field_kind(field: forms.BoundField) -> str:
    """Which GOV.UK component draws this field."""
    widget = field.field.widget
    declared = getattr(widget, "govuk_kind", None)
    if declared:
        return str(declared)
    if isinstance(widget, forms.HiddenInput):
        return "hidden"
    if isinstance(widget, forms.RadioSelect):
        return "radios"
    if isinstance(widget, forms.Textarea):
        return "textarea"
    if isinstance(widget, forms.CheckboxInput):
        return "checkbox"
    if isinstance(widget, forms.Select):
        return "select"
    return "input"


@register.filter
def date_parts(field: forms.BoundField) -> dict[str, str]:
    """The day, month and year to show in a GOV.UK date input (as typed, or from a date)."""
    value = field.value()
    if isinstance(value, date):
        return {"day": str(value.day), "month": str(value.month), "year": str(value.year)}
    if isinstance(value, dict):
        return {k: str(value.get(k, "")) for k in DATE_PARTS}
    return dict.fromkeys(DATE_PARTS, "")


@register.filter
def is_selected(field: forms.BoundField, value: Any) -> bool:
    current = field.value()
    return current is not None and str(current) == str(value)
