"""Template helpers for a council's pages: GOV.UK field kinds, dates in words, the unread
notifications count in the header."""

from __future__ import annotations

from typing import Any

from django import template

from core.selectors import notifications_unread_count
from core.templating import days_ago, jinja_render, nhs_number

register = template.Library()


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
