"""Template helpers for a council's pages: GOV.UK field kinds, dates in words, the unread
notifications count in the header."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django import template
from django.urls import get_urlconf, reverse

from core.extensions import NAVIGATION, navigation_cache_add
from core.selectors import notifications_unread_count
from core.templating import days_ago, jinja_render, nhs_number

register = template.Library()


@dataclass(frozen=True)
class ShownLink:
    key: str
    label: str
    href: str
    also_active: tuple[str, ...]
    unread_count: bool


@cache
def _navigation(urlconf: str | None, role: str) -> tuple[ShownLink, ...]:
    return tuple(
        ShownLink(
            link.key,
            link.label,
            reverse(link.url_name, urlconf=urlconf),
            link.also_active,
            link.unread_count,
        )
        for link in NAVIGATION
        if role in link.roles
    )


navigation_cache_add(_navigation.cache_clear)


@register.simple_tag
def navigation_for(user: Any) -> tuple[ShownLink, ...]:
    """The navigation's links for the user's role, worked out once per process and role
    rather than on every page (`{% url %}` resolves each one afresh)."""
    return _navigation(get_urlconf(), getattr(user, "role", ""))


register.filter("days_ago", days_ago)
register.filter("nhs_number", nhs_number)


@register.simple_tag(takes_context=True)
def unread_notifications(context: template.Context) -> int:
    request = context.get("request")
    user = getattr(request, "user", None)
    return notifications_unread_count(user) if user is not None else 0


@register.simple_tag(takes_context=True)
def jinja(context: template.Context, template_name: str, **variables: Any) -> str:
    """A part shared with the person page, which is Jinja2 (decision 0027), placed in a
    Django template: `{% jinja "core/includes/team_list.html" groups=r.groups level=3 %}`
    renders it with this template's variables and the ones given."""
    return jinja_render(template_name, {**context.flatten(), **variables})  # type: ignore[dict-item]
