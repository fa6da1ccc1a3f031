"""Short messages to one, several or all of a person's team: shown in the app and emailed.
A sensitive service is never messaged by name from outside it: the sender asks it to get
in touch through the brokered contact request instead (`core.services.contact_request_send`)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.models import User
from core.audit import audit_record
from core.delivery.email import email_enqueue
from core.delivery.notifications import email_for, notification_send
from core.models import NotificationEmail, Person
from teamwork.models import TeamMessage
from teamwork.team import colleague_pick, person_for_team, team_colleagues
from teamwork.team_tasks import _coordination_text


@transaction.atomic
def team_message_send(
    *, sender: User, person: Person, text: str, recipient_ids: list[int] | None = None
) -> TeamMessage:
    """Send `text` to the chosen colleagues, or (with no ids) to the whole team the sender
    may name. Each gets it in the app and by email."""
    person_for_team(sender, person.pk)
    text = _coordination_text(text)
    whole_team = not recipient_ids
    if whole_team:
        recipients = [c.user for c in team_colleagues(sender, person) if c.user.pk != sender.pk]
    else:
        recipients = [
            u for u in colleague_pick(sender, person, recipient_ids or []) if u.pk != sender.pk
        ]
    if not recipients:
        raise ValidationError({"recipients": "Choose at least one colleague other than yourself"})
    message = TeamMessage.objects.create(
        person=person, sender=sender, text=text, whole_team=whole_team
    )
    message.recipients.set(recipients)
    audit_record(
        actor=sender,
        action="team_message_sent",
        person_id=person.pk,
        detail={"message_id": message.pk, "recipient_ids": [u.pk for u in recipients]},
    )
    notifications = notification_send(
        recipients=recipients,
        person=person,
        kind="team_message",
        text=f"{sender} to the team about {person}: {text}",
    )
    for notification in notifications:
        outbox = email_enqueue(
            key=f"team-message:{message.pk}:{notification.recipient_id}",
            kind="team_message",
            to_email=email_for(notification.recipient),
            subject=f"Patchwork: a message from {sender} about {person}",
            body=f"{sender} wrote to {person}'s team:\n\n{text}\n\n"
            "Reply to them directly; Patchwork is for coordinating, not for case notes.\n",
        )
        NotificationEmail.objects.create(
            notification=notification, delivery="immediate", outbox=outbox
        )
    return message


def team_messages_for(user: User, person: Person) -> QuerySet[TeamMessage]:
    """Messages about `person` the user sent or received."""
    return (
        TeamMessage.objects.filter(Q(sender=user) | Q(recipients=user), person=person)
        .distinct()
        .select_related("sender")
        .prefetch_related("recipients")
    )
