"""Pages for working as one team: timeline, contacts, tasks, messages, meetings,
notifications, reminder and meeting-reply links, and the administrators' email pages.
Thin: they call the services and selectors of those modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.access import practitioner_required
from accounts.forms import errors_onto_form
from accounts.models import User
from accounts.redirects import next_url_or
from core.services import contact_request_send
from teamwork.contacts import contact_log
from teamwork.forms import (
    BrokeredRequestForm,
    ContactForm,
    MeetingForm,
    MessageForm,
    TaskCloseForm,
    TaskForm,
)
from teamwork.meetings import (
    invitation_of,
    meeting_calendar_file,
    meeting_cancel,
    meeting_change,
    meeting_for_user,
    meeting_respond,
    meeting_schedule,
    meetings_upcoming,
    reply_from_token,
)
from teamwork.messages import team_message_send
from teamwork.models import Task
from teamwork.reminders import reminder_answer, reminder_from_token
from teamwork.team import person_for_team, sensitive_services_involved, team_colleagues
from teamwork.team_tasks import (
    task_close,
    task_create,
    task_for_actor,
    tasks_mine,
    tasks_set_by,
)
from teamwork.timeline import KINDS, family_timeline, person_timeline


def _timeline(request: HttpRequest, person_id: int, *, family: bool) -> HttpResponse:
    kinds = [k for k in request.GET.getlist("kind") if k in KINDS]
    build = family_timeline if family else person_timeline
    timeline = build(user=request.user, person_id=person_id, kinds=kinds or None)  # type: ignore[arg-type]
    context = {
        "timeline": timeline,
        "kinds": KINDS,
        "chosen": kinds,
        "family": family,
        "contact_form": ContactForm(),
        "today": timezone.localdate(),
    }
    return render(request, "teamwork/timeline.html", context)


@practitioner_required
def timeline(request: HttpRequest, person_id: int) -> HttpResponse:
    return _timeline(request, person_id, family=False)


@practitioner_required
def timeline_family(request: HttpRequest, person_id: int) -> HttpResponse:
    return _timeline(request, person_id, family=True)


@practitioner_required
@require_POST
def contact_new(request: HttpRequest, person_id: int) -> HttpResponse:
    person = person_for_team(request.user, person_id)  # type: ignore[arg-type]
    form = ContactForm(request.POST)
    if form.is_valid():
        try:
            log = contact_log(
                actor=request.user,  # type: ignore[arg-type]
                person=person,
                kind=form.cleaned_data["kind"],
                contact_date=form.cleaned_data["contact_date"],
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"Contact recorded: {log.get_kind_display().lower()} {person.given_name} "
                f"on {log.contact_date:%-d %B %Y}.",
            )
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return redirect("teamwork:timeline", person_id=person.pk)


def _colleague_choices(user: User, person: Any) -> list[tuple[int, str]]:
    return [
        (c.user.pk, ("You – " if c.user.pk == user.pk else "") + c.label)
        for c in team_colleagues(user, person)
    ]


@practitioner_required
def task_new(request: HttpRequest, person_id: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    person = person_for_team(user, person_id)
    form = TaskForm(request.POST or None, colleagues=_colleague_choices(user, person))
    if request.method == "POST" and form.is_valid():
        try:
            task = task_create(
                actor=user,
                person=person,
                assignee=User.objects.get(pk=form.cleaned_data["assignee"]),
                text=form.cleaned_data["text"],
                due_date=form.cleaned_data["due_date"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, f"Task set for {task.assignee.user.full_name}.")
            return redirect("teamwork:timeline", person_id=person.pk)
    return render(request, "teamwork/task_new.html", {"form": form, "person": person})


@practitioner_required
def my_tasks(request: HttpRequest) -> HttpResponse:
    tasks = list(tasks_mine(request.user))  # type: ignore[arg-type]
    done = list(
        tasks_mine(request.user, include_closed=True).exclude(status=Task.Status.OPEN)[:20]  # type: ignore[arg-type]
    )
    context = {
        "tasks": tasks,
        "closed": done,
        "set_by_me": list(tasks_set_by(request.user)[:200]),  # type: ignore[arg-type]
        "meetings": meetings_upcoming(request.user),  # type: ignore[arg-type]
    }
    return render(request, "teamwork/my_tasks.html", context)


@practitioner_required
@require_POST
def task_update(request: HttpRequest, task_id: int) -> HttpResponse:
    task = task_for_actor(request.user, task_id)  # type: ignore[arg-type]
    form = TaskCloseForm(request.POST)
    if form.is_valid():
        try:
            task_close(actor=request.user, task=task, status=form.cleaned_data["status"])  # type: ignore[arg-type]
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request, f"Task marked {task.get_status_display().lower()}: {task.text}"
            )
    return redirect(next_url_or(request, reverse("teamwork:my_tasks")))


@practitioner_required
def message_new(request: HttpRequest, person_id: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    person = person_for_team(user, person_id)
    colleagues = [(pk, label) for pk, label in _colleague_choices(user, person) if pk != user.pk]
    services = sensitive_services_involved(user, person)
    form = MessageForm(
        request.POST if request.POST.get("form") == "message" else None, colleagues=colleagues
    )
    brokered = BrokeredRequestForm(
        request.POST if request.POST.get("form") == "brokered" else None, services=len(services)
    )
    if request.method == "POST" and form.is_bound and form.is_valid():
        try:
            team_message_send(
                sender=user,
                person=person,
                text=form.cleaned_data["text"],
                recipient_ids=None
                if form.cleaned_data["whole_team"]
                else form.cleaned_data["recipients"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, "Message sent.")
            return redirect("teamwork:timeline", person_id=person.pk)
    if request.method == "POST" and brokered.is_bound and brokered.is_valid():
        try:
            contact_request_send(
                user=user,
                person=person,
                organisation=services[brokered.cleaned_data["service"]],
                message=brokered.cleaned_data["message"],
            )
        except ValidationError as exc:
            errors_onto_form(brokered, exc)
        else:
            messages.success(
                request, "Your request was sent. The service will decide whether to get in touch."
            )
            return redirect("teamwork:timeline", person_id=person.pk)
    context = {"form": form, "brokered": brokered, "person": person, "services": len(services)}
    return render(request, "teamwork/message_new.html", context)


def _meeting_times(data: dict[str, Any]) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    starts = timezone.make_aware(datetime.combine(data["day"], data["starts"]), tz)
    ends = timezone.make_aware(datetime.combine(data["day"], data["ends"]), tz)
    return starts, ends


@practitioner_required
def meeting_new(request: HttpRequest, person_id: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    person = person_for_team(user, person_id)
    colleagues = [(pk, label) for pk, label in _colleague_choices(user, person) if pk != user.pk]
    form = MeetingForm(request.POST or None, colleagues=colleagues)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        starts, ends = _meeting_times(data)
        try:
            meeting = meeting_schedule(
                organiser=user,
                person=person,
                title=data["title"],
                starts_at=starts,
                ends_at=ends,
                place=data["place"],
                link=data["link"],
                invitee_ids=None if data["whole_team"] else data["invitees"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(
                request,
                f"Meeting set: invitations sent to {meeting.invitations.count()} colleagues.",
            )
            return redirect("teamwork:meeting", meeting_id=meeting.pk)
    return render(request, "teamwork/meeting_form.html", {"form": form, "person": person})


@practitioner_required
def meeting_detail(request: HttpRequest, meeting_id: int) -> HttpResponse:
    meeting = meeting_for_user(request.user, meeting_id)  # type: ignore[arg-type]
    if request.method == "POST":
        invitation = invitation_of(request.user, meeting)  # type: ignore[arg-type]
        if invitation is None:
            raise PermissionDenied("Only invitees can reply")
        try:
            meeting_respond(invitation=invitation, response=request.POST.get("response", ""))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request, f"Your reply is recorded: {invitation.get_response_display().lower()}."
            )
        return redirect("teamwork:meeting", meeting_id=meeting.pk)
    context = {
        "meeting": meeting,
        "invitations": meeting.invitations.filter(removed_at__isnull=True).select_related(
            "invitee"
        ),
        "mine": invitation_of(request.user, meeting),  # type: ignore[arg-type]
        "is_organiser": meeting.organiser_id == request.user.pk,
    }
    return render(request, "teamwork/meeting_detail.html", context)


@practitioner_required
def meeting_calendar(request: HttpRequest, meeting_id: int) -> HttpResponse:
    """The meeting as an .ics file: opened by the device's calendar ("Add to calendar") or,
    with `?download=1`, saved as a file."""
    user: User = request.user  # type: ignore[assignment]
    meeting = meeting_for_user(user, meeting_id)
    response = HttpResponse(
        meeting_calendar_file(user=user, meeting=meeting), content_type="text/calendar"
    )
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="meeting-{meeting.pk}.ics"'
    response["Cache-Control"] = "no-store"
    return response


@practitioner_required
def meeting_edit(request: HttpRequest, meeting_id: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    meeting = meeting_for_user(user, meeting_id)
    if meeting.organiser_id != user.pk:
        raise PermissionDenied("Only the person who set up the meeting can change it")
    local_start, local_end = (
        timezone.localtime(meeting.starts_at),
        timezone.localtime(meeting.ends_at),
    )
    initial = {
        "title": meeting.title,
        "day": local_start.date(),
        "starts": local_start.time(),
        "ends": local_end.time(),
        "place": meeting.place,
        "link": meeting.link,
    }
    form = MeetingForm(request.POST or None, initial=initial, colleagues=[])
    if request.method == "POST" and request.POST.get("cancel_meeting"):
        try:
            meeting_cancel(actor=user, meeting=meeting)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Meeting cancelled: every invitee's calendar is updated.")
        return redirect("teamwork:meeting", meeting_id=meeting.pk)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        starts, ends = _meeting_times(data)
        try:
            meeting_change(
                actor=user,
                meeting=meeting,
                title=data["title"],
                starts_at=starts,
                ends_at=ends,
                place=data["place"],
                link=data["link"],
            )
        except ValidationError as exc:
            errors_onto_form(form, exc)
        else:
            messages.success(request, "Meeting changed: updated invitations sent.")
            return redirect("teamwork:meeting", meeting_id=meeting.pk)
    return render(
        request,
        "teamwork/meeting_form.html",
        {"form": form, "person": meeting.person, "meeting": meeting},
    )


def meeting_reply_link(request: HttpRequest, token: str) -> HttpResponse:
    """The "I can come" / "I cannot come" links in an invitation email. The link is the
    proof of who is answering, so no sign-in is needed; the answer is recorded by a button
    (POST), because mail scanners open every link in an email."""
    try:
        invitation, response = reply_from_token(token)
    except ValidationError as exc:
        return render(request, "teamwork/link_refused.html", {"reasons": exc.messages}, status=400)
    if request.method == "POST":
        meeting_respond(invitation=invitation, response=response)
        return render(
            request,
            "teamwork/link_done.html",
            {
                "heading": "Your reply is recorded",
                "text": f"You told {invitation.meeting.organiser} you "
                + ("can come" if response == "accepted" else "cannot come")
                + f" to {invitation.meeting.title}.",
            },
        )
    return render(
        request,
        "teamwork/link_confirm.html",
        {
            "heading": f"Reply to {invitation.meeting.title}",
            "text": f"{timezone.localtime(invitation.meeting.starts_at):%A %-d %B %Y, %H:%M}",
            "button": "I can come" if response == "accepted" else "I cannot come",
        },
    )


def reminder_link(request: HttpRequest, token: str) -> HttpResponse:
    """A reminder email's "still involved" / "no longer involved" link: signed, single use
    and expiring. Recorded by one button (POST) so a mail scanner's visit changes nothing."""
    try:
        reminder, answer = reminder_from_token(token)
    except ValidationError as exc:
        return render(request, "teamwork/link_refused.html", {"reasons": exc.messages}, status=400)
    involvement = reminder.involvement
    still = answer == "still"
    if request.method == "POST":
        try:
            reminder_answer(token=token)
        except ValidationError as exc:
            return render(
                request, "teamwork/link_refused.html", {"reasons": exc.messages}, status=400
            )
        return render(
            request,
            "teamwork/link_done.html",
            {
                "heading": "Thank you",
                "text": f"You are recorded as still involved with {involvement.person} "
                f"as {involvement.role}."
                if still
                else f"Your involvement with {involvement.person} as {involvement.role} has ended. "
                "It stays on the record as history.",
            },
        )
    return render(
        request,
        "teamwork/link_confirm.html",
        {
            "heading": (
                "Confirm you are still involved" if still else "Confirm you are no longer involved"
            ),
            "text": f"{involvement.person}, {involvement.role}, "
            f"since {involvement.start_date:%-d %B %Y}",
            "button": "I am still involved" if still else "I am no longer involved",
        },
    )
