"""Teamwork's places on core's pages and in core's email delivery."""

from __future__ import annotations

from core.delivery.email import email_body_renderer_register
from core.extensions import (
    PRACTITIONERS,
    NavigationLink,
    PersonPageFragment,
    navigation_link_add,
    person_page_fragment_add,
)
from teamwork.reminders import reminder_email_body


def register() -> None:
    person_page_fragment_add(
        PersonPageFragment("teamwork/person_panel.html", place="panel", team_only=True)
    )
    navigation_link_add(NavigationLink("teamwork:my_tasks", "My tasks", PRACTITIONERS, 30))
    email_body_renderer_register("involvement_reminder", reminder_email_body)
