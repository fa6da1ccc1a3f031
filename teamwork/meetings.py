"""Meetings about a person: invite the whole team or chosen colleagues; each invitee gets
an email with an iCalendar invitation that Outlook and Google Calendar understand
(METHOD:REQUEST with ORGANIZER and ATTENDEEs asked to reply). A change sends the same UID
with a higher SEQUENCE; a cancellation sends METHOD:CANCEL with the same UID. Replies are
recorded from buttons in the app or from the signed links in the email."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import icalendar
from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.delivery.email import email_enqueue
from core.delivery.notifications import council_link, email_for, notification_send
from core.models import Person
from teamwork.models import Meeting, MeetingInvitation
from teamwork.team import colleague_pick, person_for_team, team_colleagues
from tenants.db import current_schema

REPLY_SALT = "patchwork.meeting-reply"
Response = MeetingInvitation.Response
# How the reply is written in the calendar file (RFC 5545 PARTSTAT).
PARTSTAT = {
    Response.NEEDS_ACTION: "NEEDS-ACTION",
    Response.ACCEPTED: "ACCEPTED",
    Response.DECLINED: "DECLINED",
}


def _clean_details(
    *, person: Person, title: str, starts_at: datetime, ends_at: datetime, place: str, link: str
) -> dict[str, Any]:
    title = " ".join(title.split())
    if not title:
        raise ValidationError({"title": "Give the meeting a short title, like Core group"})
    if len(title) > 120:
        raise ValidationError({"title": "Keep the title to 120 characters"})
    if ends_at <= starts_at:
        raise ValidationError({"ends_at": "The meeting must end after it starts"})
    if starts_at < timezone.now() - timedelta(minutes=5):
        raise ValidationError({"starts_at": "The meeting must start in the future"})
    if not place.strip() and not link.strip():
        raise ValidationError({"place": "Say where the meeting is, or give a link to join"})
    if names_the_person(place, person):
        raise ValidationError(
            {
                "place": "Leave the child's name out of the place: it goes into colleagues' "
                "calendars outside Patchwork"
            }
        )
    return {
        "title": title,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "place": place.strip()[:200],
        "link": link.strip(),
    }


# What calendars outside Patchwork are told about any meeting: never the child's name (a
# calendar is synced to phones and shared with assistants), only a link back to the page.
NEUTRAL_SUMMARY = "Team around the child meeting"
PLACE_ON_THE_PAGE = "See the meeting page in Patchwork"


def _names_of(person: Person) -> set[str]:
    """Every name the person is or was known by (whole given and family names)."""
    names = {person.given_name, person.family_name}
    for given, family in person.names.values_list("given_name", "family_name"):
        names.update({given, family})
    return {name.strip() for name in names if name and name.strip()}


def names_the_person(text: str, person: Person) -> bool:
    """Whether `text` holds one of the person's names as a whole word (any case)."""
    return any(
        re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, flags=re.IGNORECASE)
        for name in _names_of(person)
    )


def meeting_ics(
    meeting: Meeting, *, method: str | None = "REQUEST", only: list[User] | None = None
) -> str:
    """The meeting as an iCalendar file (RFC 5545): the emailed invitation (METHOD REQUEST
    or CANCEL) or, with `method=None`, the plain event a colleague downloads into their own
    calendar. Times are in Europe/London with the VTIMEZONE that defines it. `only` limits
    the attendees (e.g. to the one person a cancellation is for).

    Nothing in it names the person the meeting is about: the summary is neutral, the
    description links to the meeting's page, and a place that names them is left out."""
    local = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    page = council_link(f"/meetings/{meeting.pk}/")
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Patchwork//Team meetings//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method is not None:
        calendar.add("method", method)
    event = icalendar.Event()
    event.add("uid", meeting.uid)
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", timezone.now())
    event.add("dtstart", meeting.starts_at.astimezone(local))
    event.add("dtend", meeting.ends_at.astimezone(local))
    event.add("summary", NEUTRAL_SUMMARY)
    place = meeting.place
    if place and names_the_person(place, meeting.person):
        place = PLACE_ON_THE_PAGE
    if place:
        event.add("location", place)
    elif meeting.link:
        event.add("location", meeting.link)
    description = f"A team around the child meeting, set up in Patchwork.\nDetails: {page}"
    if meeting.link:
        description += f"\nJoin: {meeting.link}"
    event.add("description", description)
    if page.startswith("http"):
        event.add("url", page)
    cancelled = method == "CANCEL" or meeting.status == Meeting.Status.CANCELLED
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    organiser = icalendar.vCalAddress(f"mailto:{email_for(meeting.organiser)}")
    organiser.params["cn"] = icalendar.vText(meeting.organiser.full_name)
    event.add("organizer", organiser)
    invitations = meeting.invitations.filter(removed_at__isnull=True).select_related("invitee")
    for invitation in invitations:
        if only is not None and invitation.invitee not in only:
            continue
        attendee = icalendar.vCalAddress(f"mailto:{email_for(invitation.invitee)}")
        attendee.params["cn"] = icalendar.vText(invitation.invitee.full_name)
        attendee.params["role"] = icalendar.vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = icalendar.vText(PARTSTAT[invitation.response])  # type: ignore[index]
        attendee.params["rsvp"] = icalendar.vText("TRUE")
        event.add("attendee", attendee, encode=False)
    calendar.add_component(event)
    # The zone's rules for the year around the meeting, not fifty years of them.
    calendar.add_missing_timezones(
        first_date=(meeting.starts_at - timedelta(days=366)).date(),
        last_date=(meeting.ends_at + timedelta(days=366)).date(),
    )
    return calendar.to_ical().decode()


def reply_token(invitation: MeetingInvitation, response: str) -> str:
    return signing.Signer(salt=REPLY_SALT).sign_object(
        {"s": current_schema(), "i": invitation.pk, "r": response}
    )


def reply_from_token(token: str) -> tuple[MeetingInvitation, str]:
    """The invitation and answer a signed reply link stands for; ValidationError if the
    link is altered, for another council, for a meeting now over or cancelled."""
    try:
        data = signing.Signer(salt=REPLY_SALT).unsign_object(token)
    except signing.BadSignature as exc:
        raise ValidationError("This link is not valid: reply from the meeting's page") from exc
    if data.get("s") != current_schema() or data.get("r") not in {
        Response.ACCEPTED,
        Response.DECLINED,
    }:
        raise ValidationError("This link is not valid: reply from the meeting's page")
    invitation = (
        MeetingInvitation.objects.select_related("meeting__person", "invitee")
        .filter(pk=data.get("i"), removed_at__isnull=True)
        .first()
    )
    if invitation is None:
        raise ValidationError("You are no longer invited to this meeting")
    meeting = invitation.meeting
    if meeting.status == Meeting.Status.CANCELLED:
        raise ValidationError("This meeting was cancelled")
    if meeting.ends_at < timezone.now():
        raise ValidationError("This meeting is over")
    return invitation, data["r"]


def _email_invitation(meeting: Meeting, invitation: MeetingInvitation, *, method: str) -> None:
    invitee = invitation.invitee
    when = timezone.localtime(meeting.starts_at)
    where = meeting.place or meeting.link
    if method == "CANCEL":
        subject = f"Cancelled: {meeting.title} ({when:%-d %B %Y, %H:%M})"
        body = (
            f"{meeting.organiser} cancelled the meeting about {meeting.person} on "
            f"{when:%-d %B %Y at %H:%M}.\n"
        )
    else:
        verb = "invites you to" if meeting.sequence == 0 else "changed"
        accept = council_link(f"/meetings/reply/{reply_token(invitation, Response.ACCEPTED)}/")
        decline = council_link(f"/meetings/reply/{reply_token(invitation, Response.DECLINED)}/")
        subject = f"{'Invitation' if meeting.sequence == 0 else 'Updated'}: {meeting.title} "
        subject += f"({when:%-d %B %Y, %H:%M})"
        body = (
            f"{meeting.organiser} {verb} a meeting about {meeting.person}.\n\n"
            f"{meeting.title}\n{when:%A %-d %B %Y, %H:%M} to "
            f"{timezone.localtime(meeting.ends_at):%H:%M}\n{where}\n\n"
            f"I can come: {accept}\nI cannot come: {decline}\n\n"
            "The attached invitation adds it to your calendar.\n"
        )
    email_enqueue(
        key=f"meeting:{meeting.pk}:{meeting.sequence}:{method}:{invitee.pk}",
        kind="meeting",
        to_email=email_for(invitee),
        subject=subject,
        body=body,
        ics=meeting_ics(meeting, method=method, only=[invitee] if method == "CANCEL" else None),
    )


@transaction.atomic
def meeting_schedule(
    *,
    organiser: User,
    person: Person,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    place: str = "",
    link: str = "",
    invitee_ids: list[int] | None = None,
) -> Meeting:
    """Set up a meeting and invite the chosen colleagues, or (with no ids) the whole team
    the organiser may name. Each invitee is emailed an invitation for their calendar."""
    person_for_team(organiser, person.pk)
    details = _clean_details(
        person=person, title=title, starts_at=starts_at, ends_at=ends_at, place=place, link=link
    )
    if invitee_ids:
        invitees = colleague_pick(organiser, person, invitee_ids)
    else:
        invitees = [c.user for c in team_colleagues(organiser, person)]
    invitees = [u for u in invitees if u.pk != organiser.pk]
    if not invitees:
        raise ValidationError({"invitees": "Choose at least one colleague to invite"})
    domain = settings.PLATFORM_DOMAIN
    meeting = Meeting.objects.create(
        person=person,
        organiser=organiser,
        uid=f"{uuid4()}@{current_schema()}.{domain}",
        **details,
    )
    MeetingInvitation.objects.bulk_create(
        MeetingInvitation(meeting=meeting, invitee=u) for u in invitees
    )
    audit_record(
        actor=organiser,
        action="meeting_scheduled",
        person_id=person.pk,
        detail={"meeting_id": meeting.pk, "invitee_ids": [u.pk for u in invitees]},
    )
    when = timezone.localtime(meeting.starts_at)
    notification_send(
        recipients=invitees,
        person=person,
        kind="meeting_set",
        text=f"{organiser} set a meeting about {person}: {meeting.title}, "
        f"{when:%-d %B %Y at %H:%M}",
    )
    for invitation in meeting.invitations.select_related("invitee"):
        _email_invitation(meeting, invitation, method="REQUEST")
    return meeting


def _organiser_only(actor: User, meeting: Meeting) -> None:
    if actor.pk != meeting.organiser_id:
        raise PermissionDenied("Only the person who set up the meeting can change it")
    if meeting.status == Meeting.Status.CANCELLED:
        raise ValidationError("This meeting was cancelled")


@transaction.atomic
def meeting_change(
    *,
    actor: User,
    meeting: Meeting,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    place: str = "",
    link: str = "",
) -> Meeting:
    """Change a meeting's details; every invitee gets the updated invitation (same UID,
    next SEQUENCE), and earlier replies are asked again if the time moved."""
    meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
    _organiser_only(actor, meeting)
    details = _clean_details(
        person=meeting.person,
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        place=place,
        link=link,
    )
    moved = details["starts_at"] != meeting.starts_at or details["ends_at"] != meeting.ends_at
    for name, value in details.items():
        setattr(meeting, name, value)
    meeting.sequence += 1
    meeting.save()
    if moved:
        meeting.invitations.update(response=Response.NEEDS_ACTION, responded_at=None)
    audit_record(
        actor=actor,
        action="meeting_changed",
        person_id=meeting.person_id,
        detail={"meeting_id": meeting.pk, "sequence": meeting.sequence},
    )
    invitations = list(
        meeting.invitations.filter(removed_at__isnull=True).select_related("invitee")
    )
    notification_send(
        recipients=[i.invitee for i in invitations],
        person=meeting.person,
        kind="meeting_set",
        text=f"{actor} changed the meeting about {meeting.person}: {meeting.title}, "
        f"{timezone.localtime(meeting.starts_at):%-d %B %Y at %H:%M}",
    )
    for invitation in invitations:
        _email_invitation(meeting, invitation, method="REQUEST")
    return meeting


@transaction.atomic
def meeting_cancel(*, actor: User, meeting: Meeting) -> Meeting:
    """Cancel a meeting: every invitee's calendar is told to remove it (same UID)."""
    meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
    _organiser_only(actor, meeting)
    meeting.status = Meeting.Status.CANCELLED
    meeting.sequence += 1
    meeting.save(update_fields=["status", "sequence", "updated_at"])
    audit_record(
        actor=actor,
        action="meeting_cancelled",
        person_id=meeting.person_id,
        detail={"meeting_id": meeting.pk},
    )
    invitations = list(
        meeting.invitations.filter(removed_at__isnull=True).select_related("invitee")
    )
    notification_send(
        recipients=[i.invitee for i in invitations],
        person=meeting.person,
        kind="meeting_set",
        text=f"{actor} cancelled the meeting about {meeting.person}: {meeting.title}",
    )
    for invitation in invitations:
        _email_invitation(meeting, invitation, method="CANCEL")
    return meeting


@transaction.atomic
def meeting_respond(*, invitation: MeetingInvitation, response: str) -> MeetingInvitation:
    """Record an invitee's reply (they may change their mind until the meeting)."""
    if response not in {Response.ACCEPTED, Response.DECLINED}:
        raise ValidationError({"response": "Choose whether you can come"})
    meeting = invitation.meeting
    if meeting.status == Meeting.Status.CANCELLED:
        raise ValidationError("This meeting was cancelled")
    invitation.response = response
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["response", "responded_at"])
    audit_record(
        actor=invitation.invitee,
        action="meeting_replied",
        person_id=meeting.person_id,
        detail={"meeting_id": meeting.pk, "response": response},
    )
    return invitation


def meeting_for_user(user: User, meeting_id: int) -> Meeting:
    """A meeting the user organised or is invited to, or 404."""
    meeting = (
        Meeting.objects.select_related("person", "organiser")
        .filter(pk=meeting_id)
        .filter(
            Q(organiser=user) | Q(invitations__invitee=user, invitations__removed_at__isnull=True)
        )
        .distinct()
        .first()
    )
    if meeting is None:
        raise Http404("No such meeting")
    return meeting


def meeting_calendar_file(*, user: User, meeting: Meeting) -> str:
    """The meeting for the user's own calendar (from `meeting_for_user`, so theirs to
    have), recorded in the audit as every copy of a meeting that leaves Patchwork is."""
    audit_record(
        actor=user,
        action="meeting_calendar_downloaded",
        person_id=meeting.person_id,
        detail={"meeting_id": meeting.pk},
    )
    return meeting_ics(meeting, method=None)


def invitation_of(user: User, meeting: Meeting) -> MeetingInvitation | None:
    return meeting.invitations.filter(invitee=user, removed_at__isnull=True).first()


def meetings_upcoming(user: User) -> QuerySet[Meeting]:
    return (
        Meeting.objects.filter(
            Q(organiser=user) | Q(invitations__invitee=user, invitations__removed_at__isnull=True),
            ends_at__gte=timezone.now(),
            status=Meeting.Status.SCHEDULED,
        )
        .distinct()
        .select_related("person")
        .order_by("starts_at")
    )
