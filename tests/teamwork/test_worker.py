"""Teamwork on the real Celery worker and the real Redis: emails sent once despite
retries, the daily digest, reminders answered by link, calendar invitations, and every
task kept to the council that enqueued it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes
from urllib.parse import urlparse

import icalendar
import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from core.delivery.email import email_send
from core.delivery.notifications import notifications_digest_send_task as notifications_digest_send
from core.models import EmailOutbox, Involvement, Notification
from teamwork.meetings import meeting_cancel, meeting_change, meeting_schedule
from teamwork.models import InvolvementReminder, Meeting, Task
from teamwork.tasks import reminders_run
from teamwork.team_tasks import task_create
from tests.teamwork.team import build_team, days_ago

pytestmark = pytest.mark.redis


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the worker")


def test_it_sends_an_assignment_email_once_although_the_first_attempt_failed(
    world, committed_team, celery_worker, flaky_smtp
) -> None:
    """The server refuses the first try; the retry delivers it; a repeated task sends nothing."""
    team = committed_team
    flaky_smtp.refuse = 1
    with schema_context(team.schema):
        task = task_create(
            actor=team.lead,
            person=team.child,
            assignee=team.nurse,
            text="Book the health assessment",
            due_date=days_ago(-7),
        )
        told = Notification.objects.get(recipient=team.nurse, kind="task_assigned")
        key = f"notification:{told.pk}"
        wait_for(lambda: EmailOutbox.objects.filter(idempotency_key=key, status="sent").exists())
        outbox = EmailOutbox.objects.get(idempotency_key=key)
        assert email_send.delay(outbox.pk).get(timeout=30) == "skipped"
        outbox.refresh_from_db()
    assert flaky_smtp.refused == 1
    assert outbox.attempts == 2
    delivered = [message_from_bytes(m) for m in flaky_smtp.received]
    to_nurse = [m for m in delivered if m["To"] == team.nurse.email]
    assert len(to_nurse) == 1
    assert task.text in to_nurse[0].get_payload(decode=True).decode()


def test_it_collects_a_days_changes_into_one_digest(world, committed_team, celery_worker) -> None:
    """Yesterday's team changes reach the nurse as one email, and only once."""
    team = committed_team
    yesterday = timezone.localdate() - timedelta(days=1)
    noon = timezone.make_aware(datetime.combine(yesterday, datetime.min.time())) + timedelta(
        hours=12
    )
    texts = [
        "Gil joined the team as GP",
        "Pat left the team",
        "Ann joined the team as Health visitor",
    ]
    with schema_context(team.schema):
        rows = [
            Notification.objects.create(
                recipient=team.nurse, person=team.child, kind=kind, text=text
            )
            for kind, text in zip(["team_joined", "team_left", "team_joined"], texts, strict=True)
        ]
        Notification.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=noon)
        assert notifications_digest_send.delay(yesterday.isoformat()).get(timeout=30) >= 1
        wait_for(lambda: any(team.nurse.email in m.to for m in mail.outbox))
        assert notifications_digest_send.delay(yesterday.isoformat()).get(timeout=30) == 0
    digests = [m for m in mail.outbox if team.nurse.email in m.to]
    assert len(digests) == 1
    assert all(text in digests[0].body for text in texts)
    assert "3 changes" in digests[0].subject


def _links(body: str) -> dict[str, str]:
    still = re.findall(r"Still involved: (\S+)", body)
    ended = re.findall(r"No longer involved: (\S+)", body)
    return {"still": urlparse(still[0]).path, "ended": urlparse(ended[0]).path}


def test_it_reminds_confirms_by_link_and_refuses_the_link_again(
    world, committed_team, celery_worker
) -> None:
    """The GP is reminded after 90 days, confirms by link, and the link then says it was used."""
    team = committed_team
    host = world.brighton.get_primary_domain().domain
    with schema_context(team.schema):
        involvement = Involvement.objects.get(person=team.child, practitioner__user=team.gp)
        Involvement.objects.filter(pk=involvement.pk).update(
            last_confirmed_at=timezone.now() - timedelta(days=100)
        )
        result = reminders_run.delay().get(timeout=60)
        assert result["schema"] == world.brighton.schema_name
        assert result["reminded"] >= 1
        wait_for(lambda: any(team.gp.email in m.to for m in mail.outbox))
    body = next(m.body for m in mail.outbox if team.gp.email in m.to)
    assert str(team.child) in body
    links = _links(body)
    client = Client(HTTP_HOST=host)
    assert "I am still involved" in client.get(links["still"]).content.decode()
    response = client.post(links["still"])
    assert response.status_code == 200
    assert "still involved" in response.content.decode()
    with schema_context(team.schema):
        involvement.refresh_from_db()
    assert involvement.last_confirmed_at > timezone.now() - timedelta(minutes=5)
    again = client.post(links["ended"])
    assert again.status_code == 400
    assert "already used" in again.content.decode()
    with schema_context(team.schema):
        assert Involvement.objects.get(pk=involvement.pk).end_date is None


def test_it_refuses_an_expired_reminder_link(world, committed_team, celery_worker) -> None:
    """A reminder link past its expiry changes nothing and says so."""
    team = committed_team
    host = world.brighton.get_primary_domain().domain
    with schema_context(team.schema):
        involvement = Involvement.objects.get(person=team.child, practitioner__user=team.nurse)
        Involvement.objects.filter(pk=involvement.pk).update(
            last_confirmed_at=timezone.now() - timedelta(days=95)
        )
        reminders_run.delay().get(timeout=60)
        wait_for(lambda: any(team.nurse.email in m.to for m in mail.outbox))
        InvolvementReminder.objects.filter(involvement=involvement).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
    body = next(m.body for m in mail.outbox if team.nurse.email in m.to)
    response = Client(HTTP_HOST=host).post(_links(body)["ended"])
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    with schema_context(team.schema):
        assert Involvement.objects.get(pk=involvement.pk).end_date is None


def _calendars(address: str) -> list[icalendar.Calendar]:
    found = []
    for message in mail.outbox:
        if address not in message.to:
            continue
        for name, content, _ in message.attachments:
            if name == "invite.ics":
                found.append(icalendar.Calendar.from_ical(content))
    return found


def _event(calendar: icalendar.Calendar) -> icalendar.Event:
    return next(c for c in calendar.walk("VEVENT"))


def test_it_sends_calendar_invitations_that_keep_their_uid_through_change_and_cancel(
    world, committed_team, celery_worker
) -> None:
    """Invitees get a REQUEST with every attendee; change and cancel carry the same UID."""
    team = committed_team
    starts = timezone.now().replace(microsecond=0) + timedelta(days=3)
    with schema_context(team.schema):
        meeting = meeting_schedule(
            organiser=team.lead,
            person=team.child,
            title="Core group",
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            place="Hove Town Hall, room 2",
            invitee_ids=[team.nurse.pk, team.gp.pk],
        )
        wait_for(
            lambda: len(_calendars(team.nurse.email)) == 1 and len(_calendars(team.gp.email)) == 1
        )
        meeting_change(
            actor=team.lead,
            meeting=meeting,
            title="Core group",
            starts_at=starts + timedelta(hours=2),
            ends_at=starts + timedelta(hours=3),
            place="Hove Town Hall, room 2",
        )
        wait_for(lambda: len(_calendars(team.nurse.email)) == 2)
        meeting_cancel(actor=team.lead, meeting=Meeting.objects.get(pk=meeting.pk))
        wait_for(lambda: len(_calendars(team.nurse.email)) == 3)
    invite, update, cancel = _calendars(team.nurse.email)
    event = _event(invite)
    assert str(invite["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == meeting.uid
    attendees = {str(a).removeprefix("mailto:") for a in event.get("ATTENDEE")}
    assert attendees == {team.nurse.email, team.gp.email}
    assert all(a.params["RSVP"] == "TRUE" for a in event.get("ATTENDEE"))
    assert str(event["ORGANIZER"]) == f"mailto:{team.lead.email}"
    assert event.decoded("DTSTART") == starts
    assert str(update["METHOD"]) == "REQUEST"
    assert str(_event(update)["UID"]) == meeting.uid
    assert int(_event(update)["SEQUENCE"]) == 1
    assert _event(update).decoded("DTSTART") == starts + timedelta(hours=2)
    assert str(cancel["METHOD"]) == "CANCEL"
    assert str(_event(cancel)["UID"]) == meeting.uid
    assert int(_event(cancel)["SEQUENCE"]) == 2
    assert str(_event(cancel)["STATUS"]) == "CANCELLED"


def test_a_task_enqueued_under_brighton_touches_only_brighton(
    world, django_db_blocker, committed_team, celery_worker
) -> None:
    """Brighton's reminder run reminds Brighton's team and leaves Staffordshire's alone."""
    staffs = build_team(world.staffordshire.schema_name)
    with schema_context(staffs.schema):
        Involvement.objects.filter(person=staffs.child).update(
            last_confirmed_at=timezone.now() - timedelta(days=120)
        )
        staffs_outbox = EmailOutbox.objects.count()
    with schema_context(committed_team.schema):
        Involvement.objects.filter(person=committed_team.child).update(
            last_confirmed_at=timezone.now() - timedelta(days=120)
        )
        result = reminders_run.delay().get(timeout=60)
        assert result["schema"] == world.brighton.schema_name
        assert (
            InvolvementReminder.objects.filter(involvement__person=committed_team.child).count()
            == 4
        )
        wait_for(lambda: not EmailOutbox.objects.filter(status="queued").exists())
    with schema_context(staffs.schema):
        assert not InvolvementReminder.objects.filter(involvement__person=staffs.child).exists()
        assert EmailOutbox.objects.count() == staffs_outbox
    assert not any(staffs.gp.email in m.to for m in mail.outbox)
    assert any(committed_team.gp.email in m.to for m in mail.outbox)
    with schema_context(committed_team.schema):
        assert Task.objects.count() >= 0


def test_it_refuses_a_brighton_reminder_link_on_staffordshires_host(world, db) -> None:
    """A link signed for one council is refused by another, whatever reminder id it names."""
    from teamwork.reminders import reminder_token

    with schema_context(world.brighton.schema_name):
        token = reminder_token(1, "ended")
    response = Client(HTTP_HOST=world.staffordshire.get_primary_domain().domain).get(
        f"/reminders/{token}/"
    )
    assert response.status_code == 400
    assert "not valid" in response.content.decode()
