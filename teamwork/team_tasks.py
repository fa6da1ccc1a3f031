"""Tasks on a person: short coordination work assigned to someone on the team, with a due
date. Not case notes: the text is limited to a sentence or two."""

from __future__ import annotations

from datetime import date, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, Q, QuerySet, When
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.delivery.notifications import notification_send
from core.models import Person, Practitioner
from teamwork.models import COORDINATION_TEXT_MAX, Task
from teamwork.team import colleague_pick, person_for_team


def _coordination_text(text: str, field: str = "text") -> str:
    text = " ".join(text.split())
    if not text:
        raise ValidationError({field: "Say in a few words what needs doing"})
    if len(text) > COORDINATION_TEXT_MAX:
        raise ValidationError(
            {
                field: f"Keep it to {COORDINATION_TEXT_MAX} characters: Patchwork is for "
                "coordinating, not for case notes"
            }
        )
    return text


@transaction.atomic
def task_create(*, actor: User, person: Person, assignee: User, text: str, due_date: date) -> Task:
    """Add a task on `person` for a colleague on the team (or oneself); they are told."""
    person_for_team(actor, person.pk)
    (assignee,) = colleague_pick(actor, person, [assignee.pk])
    text = _coordination_text(text)
    if due_date < timezone.localdate():
        raise ValidationError({"due_date": "The due date must be today or in the future"})
    task = Task.objects.create(
        person=person,
        text=text,
        assignee=Practitioner.objects.get(user=assignee),
        created_by=actor,
        due_date=due_date,
    )
    audit_record(
        actor=actor,
        action="task_created",
        person_id=person.pk,
        detail={"task_id": task.pk, "assignee_id": assignee.pk, "due": due_date.isoformat()},
    )
    if assignee.pk != actor.pk:
        notification_send(
            recipients=[assignee],
            person=person,
            kind="task_assigned",
            text=f"{actor} gave you a task about {person}, due {due_date:%-d %B %Y}: {text}",
        )
    return task


@transaction.atomic
def task_close(*, actor: User, task: Task, status: str) -> Task:
    """Mark a task done or cancelled. The assignee or the person who set it may close it."""
    if status not in {Task.Status.DONE, Task.Status.CANCELLED}:
        raise ValidationError({"status": "Choose done or cancelled"})
    if actor.pk not in {task.assignee.user_id, task.created_by_id}:
        raise PermissionDenied("Only the person the task is for, or who set it, can close it")
    if task.status != Task.Status.OPEN:
        raise ValidationError("This task is already closed")
    task.status = status
    task.closed_at = timezone.now()
    task.closed_by = actor
    task.save(update_fields=["status", "closed_at", "closed_by"])
    audit_record(
        actor=actor,
        action="task_closed",
        person_id=task.person_id,
        detail={"task_id": task.pk, "status": status},
    )
    return task


def tasks_mine(user: User, *, include_closed: bool = False) -> QuerySet[Task]:
    """The user's own tasks: open ones first by due date (overdue at the top)."""
    tasks = Task.objects.filter(assignee__user=user).select_related("person", "created_by")
    if not include_closed:
        tasks = tasks.filter(status=Task.Status.OPEN)
    return tasks.order_by("status", "due_date", "pk")


def tasks_set_by(user: User, *, closed_within_days: int = 14) -> QuerySet[Task]:
    """Tasks the user set for colleagues (not for themselves: those are in their own list):
    the open ones by due date, then those closed in the last fortnight, newest first."""
    recent = timezone.now() - timedelta(days=closed_within_days)
    return (
        Task.objects.filter(created_by=user)
        .exclude(assignee__user=user)
        .filter(Q(status=Task.Status.OPEN) | Q(closed_at__gte=recent))
        .select_related("person", "assignee__user", "assignee__organisation")
        .order_by(
            Case(When(status=Task.Status.OPEN, then=0), default=1),
            "due_date",
            "-closed_at",
            "pk",
        )
    )


def tasks_on(person: Person) -> QuerySet[Task]:
    return Task.objects.filter(person=person).select_related("assignee__user", "created_by")


def task_for_actor(user: User, task_id: int) -> Task:
    """A task the user may close (theirs, or one they set), or 404."""
    task = (
        Task.objects.select_related("assignee__user", "person", "created_by")
        .filter(pk=task_id)
        .first()
    )
    if task is None or user.pk not in {task.assignee.user_id, task.created_by_id}:
        raise Http404("No such task")
    return task
