"""Jinja2 for the pages read most (decision 0027): the person page's content and the parts
it shares with other pages. Django's template language walks a tree of nodes and resolves
every variable by trying dict, attribute and index lookups in turn; Jinja2 compiles a
template to Python once, which renders the same markup several times faster.

The environment offers what those templates use of Django's: `url()` (as `{% url %}`, in
the request's council URLs), the `date` filter (as Django's, in the current time zone) and
core's own filters. Autoescaping is always on."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template import defaultfilters, engines
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime
from jinja2 import Environment

from core.templatetags.patchwork import days_ago, nhs_number


def url(name: str, *args: Any) -> str:
    return reverse(name, args=args)


def date(value: Any, format_string: str) -> str:
    """Django's `date` filter, on the value in the current time zone as Django's templates
    give it (an empty string for no date)."""
    return defaultfilters.date(template_localtime(value), format_string)


def environment(**options: Any) -> Environment:
    options.pop("autoescape", None)
    env = Environment(autoescape=True, **options)
    env.globals["url"] = url
    env.filters.update(date=date, days_ago=days_ago, nhs_number=nhs_number)
    return env


def jinja_render(
    name: str, context: dict[str, Any], request: HttpRequest | None = None
) -> SafeString:
    """A Jinja2 template rendered to markup for a Django template to place as it is."""
    html = engines["jinja2"].get_template(name).render(context, request)
    return mark_safe(html)  # noqa: S308 (autoescaped by Jinja2)
