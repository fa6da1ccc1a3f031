"""Working as one team around a person: contacts, tasks, messages, meetings and reminders.

These tables were created by `core` and keep their names (`db_table`): the move into this
app changed Django's state only, never a council's data."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import Involvement, Person, Practitioner

# Patchwork records who and when, never case notes: the free text below is short
# coordination text, and its length is capped in the database as well as on the pages.

COORDINATION_TEXT_MAX = 280


class ContactLog(models.Model):
    """A practitioner saw or spoke to the person on a day (no notes: just the fact)."""

    class Kind(models.TextChoices):
        SAW = "saw", "Saw"
        SPOKE = "spoke", "Spoke to"

    involvement = models.ForeignKey(Involvement, on_delete=models.CASCADE, related_name="contacts")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="contacts")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    contact_date = models.DateField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "core_contactlog"
        indexes = [models.Index(fields=["person", "contact_date"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.person} on {self.contact_date}"


class Task(models.Model):
    """A short piece of coordination work on a person, assigned to one of their team."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="tasks")
    text = models.CharField(max_length=COORDINATION_TEXT_MAX)
    assignee = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="tasks")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    due_date = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "core_task"
        ordering = ["due_date", "pk"]
        indexes = [
            models.Index(fields=["assignee", "status", "due_date"]),
            models.Index(fields=["person", "created_at"]),
        ]

    def __str__(self) -> str:
        return self.text

    @property
    def is_overdue(self) -> bool:
        from django.utils import timezone

        return self.status == self.Status.OPEN and self.due_date < timezone.localdate()


class TeamMessage(models.Model):
    """A short message to some or all of a person's team, shown in the app and emailed."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="team_messages")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recipients = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="team_messages")
    text = models.CharField(max_length=COORDINATION_TEXT_MAX)
    whole_team = models.BooleanField(default=False)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "core_teammessage"
        ordering = ["-sent_at"]
        indexes = [models.Index(fields=["person", "sent_at"])]

    def __str__(self) -> str:
        return self.text


class Meeting(models.Model):
    """A meeting about a person. `uid` stays the same for the meeting's whole life so
    calendars update (or cancel) the same event; `sequence` rises with every change."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CANCELLED = "cancelled", "Cancelled"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="meetings")
    organiser = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    title = models.CharField(max_length=120)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    place = models.CharField(max_length=200, blank=True)
    link = models.URLField(blank=True)
    uid = models.CharField(max_length=120, unique=True)
    sequence = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "core_meeting"
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["person", "starts_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="meeting_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return self.title


class MeetingInvitation(models.Model):
    """One invitee of a meeting and their reply."""

    class Response(models.TextChoices):
        NEEDS_ACTION = "needs_action", "Not replied"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="invitations")
    invitee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="meeting_invitations"
    )
    response = models.CharField(
        max_length=12, choices=Response.choices, default=Response.NEEDS_ACTION
    )
    responded_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "core_meetinginvitation"
        constraints = [
            models.UniqueConstraint(fields=["meeting", "invitee"], name="one_invitation_each")
        ]

    def __str__(self) -> str:
        return f"{self.invitee} – {self.get_response_display()}"


class InvolvementReminder(models.Model):
    """One "are you still involved?" reminder. Its links are single use (`answered_at`) and
    expire (`expires_at`); an unanswered one is flagged to the team after the grace period."""

    class Answer(models.TextChoices):
        STILL_INVOLVED = "still", "Still involved"
        NO_LONGER = "ended", "No longer involved"

    involvement = models.ForeignKey(Involvement, on_delete=models.CASCADE, related_name="reminders")
    sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    answer = models.CharField(max_length=10, choices=Answer.choices, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "core_involvementreminder"
        indexes = [models.Index(fields=["involvement", "sent_at"])]

    def __str__(self) -> str:
        return f"Reminder for involvement {self.involvement_id}, sent {self.sent_at:%Y-%m-%d}"
