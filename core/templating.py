"""Jinja2 for the pages read most (decision 0027): the person page's content and the parts
it shares with other pages. Django's template language walks a tree of nodes and resolves
every variable by trying dict, attribute and index lookups in turn; Jinja2 compiles a
template to Python once, which renders the same markup several times faster.

The environment offers what those templates use of Django's: `url()` (as `{% url %}`, in
the request's council URLs), the `date` filter (as Django's, in the current time zone) and
core's own filters. Autoescaping is always on."""

from __future__ import annotations

import datetime
import html
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.template import defaultfilters, engines
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS, MONTHS_3
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]
from jinja2 import Environment

from core.identifiers import nhs_number_display


def days_ago(day: datetime.date | None) -> str:
    """'today', 'yesterday', '12 days ago' – or 'Not recorded'."""
    if day is None:
        return "Not recorded"
    if isinstance(day, datetime.datetime):
        day = timezone.localtime(day).date()
    days = (timezone.localdate() - day).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def nhs_number(value: str | None) -> str:
    return nhs_number_display(value) if value else "Not known"


def url(name: str, *args: Any) -> str:
    return reverse(name, args=args)


MONTHS_SHORT = [""] + [str(MONTHS_3[m]).title() for m in range(1, 13)]
MONTHS_LONG = [""] + [str(MONTHS[m]) for m in range(1, 13)]
# The formats the pages use, written directly: Django's general formatter (a regular
# expression and a method call per letter) was a tenth of the person page's CPU.
DATE_FORMATS: dict[str, Callable[[Any], str]] = {
    "j M Y": lambda d: f"{d.day} {MONTHS_SHORT[d.month]} {d.year}",
    "j F Y": lambda d: f"{d.day} {MONTHS_LONG[d.month]} {d.year}",
    "j M Y H:i": lambda d: f"{d.day} {MONTHS_SHORT[d.month]} {d.year} {d.hour:02d}:{d.minute:02d}",
}


def date(value: Any, format_string: str) -> str:
    """Django's `date` filter, on the value in the current time zone as Django's templates
    give it (an empty string for no date)."""
    value = template_localtime(value)
    fast = DATE_FORMATS.get(format_string)
    if fast is not None and isinstance(value, datetime.date):
        if format_string.endswith("H:i") and not isinstance(value, datetime.datetime):
            return defaultfilters.date(value, format_string)
        return fast(value)
    return defaultfilters.date(value, format_string)


def escape(value: Any) -> Any:
    """A value escaped as Django escapes it (&#x27; where markupsafe writes &#39;), so a page
    reads the same whichever engine drew it; markup (`__html__`) as it is.
    (Django's `conditional_escape` does the same, at several times the cost.)"""
    if hasattr(value, "__html__"):
        return value
    return SafeString(html.escape(str(value)))


def environment(**options: Any) -> Environment:
    options.pop("autoescape", None)
    env = Environment(autoescape=True, finalize=escape, **options)
    env.globals["url"] = url
    env.filters.update(date=date, days_ago=days_ago, nhs_number=nhs_number)
    return env


def jinja_render(
    name: str, context: dict[str, Any], request: HttpRequest | None = None
) -> SafeString:
    """A Jinja2 template rendered to markup for a Django template to place as it is."""
    markup = engines["jinja2"].get_template(name).render(context, request)
    return mark_safe(markup)  # noqa: S308 (autoescaped by Jinja2)
