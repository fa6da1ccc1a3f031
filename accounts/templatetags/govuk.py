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


@register.simple_tag(takes_context=True)
def error_prefix(context: template.Context) -> str:
    """ "Error: " before the page title when the page shows an error (a form's, or a message
    of level error), as the GOV.UK error summary pattern asks."""
    for value in context.flatten().values():
        if isinstance(value, forms.BaseForm) and value.is_bound and value.errors:
            return "Error: "
    for message in context.get("messages") or ():
        if getattr(message, "level_tag", "") == "error":
            return "Error: "
    return ""


@register.filter
def errors_shown(field: forms.BoundField) -> list[str]:
    """The errors shown beside a field: its own, and on the form's first visible field the
    form's errors that belong to no field (the error summary links to that field)."""
    errors = [str(error) for error in field.errors]
    visible = field.form.visible_fields()
    if visible and visible[0].name == field.name:
        errors = [*(str(error) for error in field.form.non_field_errors()), *errors]
    return errors


@register.filter
def first_field_id(form: forms.BaseForm) -> str:
    """The id the error summary links a form-wide error to: the first visible field's."""
    visible = form.visible_fields()
    if not visible:
        return ""
    return str(visible[0].id_for_label or visible[0].auto_id)
