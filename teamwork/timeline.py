"""The timeline of a person, or of a family: who joined or left the team, contacts,
tasks, meetings, messages and reason-stated openings, newest first.

Access is the network's (`core.selectors.person_viewable`): the team, or someone who has
stated a reason. A sensitive service's entries never appear to anyone outside that service:
they see only the network's brokered notice, "a sensitive service is involved". Who
opened the record is shown to the team only, as on the network page; a message's words to
its sender and recipients only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.models import FamilyRelationship, Involvement, Person, Practitioner, RecordOpening
from core.selectors import Access, person_viewable, practitioner_of, team_person_ids
from teamwork.models import ContactLog, Meeting, Task, TeamMessage
from teamwork.reminders import unconfirmed_since

KINDS = {
    "team": "Team changes",
    "contact": "Contacts",
    "task": "Tasks",
    "meeting": "Meetings",
    "message": "Messages",
    "opening": "Records opened",
}


@dataclass(frozen=True)
class TimelineEntry:
    day: date
    at: datetime | None
    kind: str
    text: str
    person: Person
    overdue: bool = False

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    @property
    def sort_key(self) -> tuple[date, datetime]:
        at = self.at or timezone.make_aware(datetime.combine(self.day, time.min))
        return (self.day, at)


@dataclass
class Timeline:
    person: Person
    entries: list[TimelineEntry]
    # One line per sensitive service involved now, for viewers outside it.
    brokered_notices: int = 0
    people: list[Person] = field(default_factory=list)
    on_team: bool = False


def _day(moment: datetime) -> date:
    return timezone.localdate(moment)


def _hidden_users(person: Person, viewer: Practitioner) -> set[int]:
    """Users whose part in this person's life is known only through a sensitive service
    the viewer is not in: anything they did stays out of the viewer's timeline."""
    involvements = Involvement.objects.filter(person=person).values_list(
        "practitioner__user_id", "sensitive", "organisation_id"
    )
    visible = {
        u for u, sensitive, org in involvements if not sensitive or org == viewer.organisation_id
    }
    return {u for u, _, _ in involvements} - visible


def _entries(
    person: Person, user: User, viewer: Practitioner, team: bool
) -> tuple[list[TimelineEntry], int]:
    hidden = _hidden_users(person, viewer)
    entries: list[TimelineEntry] = []
    notices: set[int] = set()
    involvements = list(
        Involvement.objects.filter(person=person).select_related(
            "practitioner__user", "organisation", "role"
        )
    )
    flagged = unconfirmed_since([i.pk for i in involvements]) if team else {}
    for inv in involvements:
        if inv.sensitive and inv.organisation_id != viewer.organisation_id:
            if inv.end_date is None:
                notices.add(inv.organisation_id)
            continue
        who = f"{inv.practitioner.user.full_name} ({inv.organisation})"
        role = f"{inv.role}" + (", lead professional" if inv.lead_professional else "")
        entries.append(
            TimelineEntry(inv.start_date, None, "team", f"{who} joined the team as {role}", person)
        )
        if inv.end_date:
            reason = f": {inv.get_end_reason_display().lower()}" if inv.end_reason else ""
            entries.append(
                TimelineEntry(inv.end_date, None, "team", f"{who} left the team{reason}", person)
            )
        if inv.pk in flagged:
            entries.append(
                TimelineEntry(
                    flagged[inv.pk],
                    None,
                    "team",
                    f"{who} has not confirmed they are still involved: unconfirmed since "
                    f"{flagged[inv.pk]:%-d %B %Y}",
                    person,
                )
            )
    for contact in ContactLog.objects.filter(person=person).select_related("recorded_by"):
        if contact.recorded_by_id in hidden:
            continue
        verb = "saw" if contact.kind == ContactLog.Kind.SAW else "spoke to"
        entries.append(
            TimelineEntry(
                contact.contact_date,
                None,
                "contact",
                f"{contact.recorded_by.full_name} {verb} {person.given_name}",
                person,
            )
        )
    for task in Task.objects.filter(person=person).select_related(
        "assignee__user", "created_by", "closed_by"
    ):
        if task.assignee.user_id in hidden or task.created_by_id in hidden:
            continue
        entries.append(
            TimelineEntry(
                _day(task.created_at),
                task.created_at,
                "task",
                f"{task.created_by.full_name} set a task for {task.assignee.user.full_name}, due "
                f"{task.due_date:%-d %B %Y}: {task.text}"
                + (" (overdue)" if task.is_overdue else ""),
                person,
                overdue=task.is_overdue,
            )
        )
        if task.closed_at and task.closed_by:
            entries.append(
                TimelineEntry(
                    _day(task.closed_at),
                    task.closed_at,
                    "task",
                    f"{task.closed_by.full_name} marked the task “{task.text}” "
                    f"{task.get_status_display().lower()}",
                    person,
                )
            )
    for meeting in (
        Meeting.objects.filter(person=person)
        .select_related("organiser")
        .prefetch_related("invitations")
    ):
        if meeting.organiser_id in hidden:
            continue
        invited = sum(1 for i in meeting.invitations.all() if i.removed_at is None)
        when = timezone.localtime(meeting.starts_at)
        text = (
            f"{meeting.organiser.full_name} set a meeting, {meeting.title}, for "
            f"{when:%-d %B %Y at %H:%M} with {invited} colleague{'s' if invited != 1 else ''}"
        )
        if meeting.status == Meeting.Status.CANCELLED:
            text += " (cancelled)"
        entries.append(
            TimelineEntry(_day(meeting.created_at), meeting.created_at, "meeting", text, person)
        )
    messages = (
        TeamMessage.objects.filter(person=person)
        .select_related("sender")
        .prefetch_related("recipients")
    )
    for message in messages:
        recipients = list(message.recipients.all())
        if message.sender_id in hidden:
            continue
        if message.sender_id == user.pk or any(r.pk == user.pk for r in recipients):
            text = f"{message.sender.full_name} to {_names(recipients, user)}: {message.text}"
        else:
            count = len([r for r in recipients if r.pk not in hidden])
            plural = "s" if count != 1 else ""
            text = f"{message.sender.full_name} sent a message to {count} colleague{plural}"
        entries.append(
            TimelineEntry(_day(message.sent_at), message.sent_at, "message", text, person)
        )
    if team:
        for opening in RecordOpening.objects.filter(person=person).select_related("user"):
            practitioner = (
                Practitioner.objects.filter(user=opening.user)
                .select_related("organisation")
                .first()
            )
            org = f" ({practitioner.organisation})" if practitioner else ""
            text = (
                f"{opening.user.full_name}{org} opened the record: {opening.get_reason_display()}"
            )
            if opening.break_glass:
                text += " (break-glass, reviewed)"
            entries.append(
                TimelineEntry(_day(opening.opened_at), opening.opened_at, "opening", text, person)
            )
    return entries, len(notices)


def _names(users: list[User], viewer: User) -> str:
    names = ["you" if u.pk == viewer.pk else u.full_name for u in users]
    return ", ".join(names) if len(names) < 5 else f"{len(names)} colleagues"


def _finish(entries: list[TimelineEntry], kinds: list[str] | None) -> list[TimelineEntry]:
    if kinds:
        entries = [e for e in entries if e.kind in kinds]
    return sorted(entries, key=lambda e: e.sort_key, reverse=True)


def person_timeline(*, user: User, person_id: int, kinds: list[str] | None = None) -> Timeline:
    """A person's timeline for someone who may see their network (PermissionDenied for
    someone who must state a reason first; Http404 for someone who may not know of them)."""
    access = person_viewable(user, person_id)
    viewer = practitioner_of(user)
    assert viewer is not None
    person = access.person
    entries, notices = _entries(person, user, viewer, team=access.access == Access.TEAM)
    audit_record(
        actor=user,
        action="timeline_viewed",
        person_id=person.pk,
        detail={"access": access.access.value, "family": False},
    )
    return Timeline(
        person=person,
        entries=_finish(entries, kinds),
        brokered_notices=notices,
        people=[person],
        on_team=access.access == Access.TEAM,
    )


def family_timeline(*, user: User, person_id: int, kinds: list[str] | None = None) -> Timeline:
    """The timeline of a person and their current family (the people the network page
    shows beside them: a shielded relative only to their own team)."""
    access = person_viewable(user, person_id)
    viewer = practitioner_of(user)
    assert viewer is not None
    person = access.person
    relationships = FamilyRelationship.objects.filter(
        Q(person=person) | Q(relative=person), end_date__isnull=True
    )
    relative_ids = {
        r.relative_id if r.person_id == person.pk else r.person_id for r in relationships
    }
    on_team = team_person_ids(user, [person.pk, *relative_ids])
    relatives = [
        p
        for p in Person.objects.filter(
            pk__in=relative_ids, archived_at__isnull=True, merged_into__isnull=True
        )
        if not p.shielded or p.pk in on_team
    ]
    entries, notices = _entries(person, user, viewer, team=access.access == Access.TEAM)
    for relative in relatives:
        more, more_notices = _entries(relative, user, viewer, team=relative.pk in on_team)
        entries += more
        notices += more_notices
    audit_record(
        actor=user,
        action="timeline_viewed",
        person_id=person.pk,
        detail={
            "access": access.access.value,
            "family": True,
            "relative_ids": sorted(r.pk for r in relatives),
        },
    )
    return Timeline(
        person=person,
        entries=_finish(entries, kinds),
        brokered_notices=notices,
        people=[person, *relatives],
        on_team=access.access == Access.TEAM,
    )
