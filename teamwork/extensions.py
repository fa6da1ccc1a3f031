"""Teamwork's places on core's pages and in core's email delivery."""

from __future__ import annotations

from core.delivery.email import email_body_renderer_register
from core.delivery.notifications import (
    Delivery,
    notification_kind_always_emailed,
    notification_kind_register,
)
from core.extensions import (
    PRACTITIONERS,
    NavigationLink,
    PersonPageFragment,
    navigation_link_add,
    person_merge_carry_add,
    person_page_fragment_add,
)
from teamwork.reminders import reminder_email_body


def register() -> None:
    person_page_fragment_add(
        PersonPageFragment("teamwork/person_panel.html", place="panel", team_only=True)
    )
    navigation_link_add(NavigationLink("teamwork:my_tasks", "My tasks", PRACTITIONERS, 30))
    email_body_renderer_register("involvement_reminder", reminder_email_body)
    notification_kind_register(
        "task_assigned", "A task is assigned to you", Delivery.IMMEDIATE, order=40
    )
    notification_kind_register(
        "meeting_set", "A meeting is set, changed or cancelled", Delivery.DIGEST, order=50
    )
    notification_kind_register(
        "involvement_unconfirmed",
        "A colleague has not confirmed they are still involved",
        Delivery.DIGEST,
        order=70,
    )
    notification_kind_always_emailed("team_message")
    # A merge of two records of one person brings the team's shared work with it (contact
    # logs of moved involvements follow them by `person` too; invitations follow meetings).
    for model_label in ("teamwork.ContactLog", "teamwork.Task", "teamwork.TeamMessage"):
        person_merge_carry_add(model_label, "person")
    person_merge_carry_add("teamwork.Meeting", "person")
