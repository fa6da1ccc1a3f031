"""In a real browser (Playwright driving Debian's Chromium against a live server on
127.0.0.1), what issue 15's loose ends look like to the practitioners: the school nurse reads
the CAMHS worker's reply to her contact request on the child's page and in her
notifications; the lead professional finds the task she set in "Tasks I set", downloads the
meeting's calendar file from its page, and reaches "Other councils" from the navigation.

Data is committed on a connection of its own under unique names (tests/browser.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import icalendar
import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import ContactRequest, EmailOutbox, Notification, Person
from core.services import contact_request_decide, contact_request_send
from teamwork.meetings import meeting_schedule
from teamwork.models import Meeting, Task
from teamwork.team_tasks import task_create
from tests.browser import chromium, committed, live_server, sign_in_page
from tests.personas import PASSWORD, Persona, World
from tests.teamwork.team import build_team

pytestmark = pytest.mark.browser

REPLY = "Happy to talk — I'll call after 2pm"


@dataclass
class LooseEnds:
    base_url: str
    child: Person
    lead: Persona
    nurse: Persona
    nurse_name: str
    task_text: str
    meeting_id: int
    emails: list[str]


def _persona(user: User, host: str, schema: str) -> Persona:
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return Persona(email=user.email, schema_name=schema, host=host, device_key=device.key)


def _make(world: World, host: str) -> LooseEnds:
    team = build_team(world.brighton.schema_name)
    task_text = f"Share the attendance record {uuid.uuid4().hex[:4]}"
    with schema_context(team.schema):
        # A name no other word in the calendar file could hold by chance.
        Person.objects.filter(pk=team.child.pk).update(
            given_name="Ottoline", family_name="Quarrington-Vale"
        )
        team.child.refresh_from_db()
        camhs = team.camhs.practitioner.organisation
        request = contact_request_send(
            user=team.nurse,
            person=team.child,
            organisation=camhs,
            message="The child mentioned appointments during school hours.",
        )
        contact_request_decide(user=team.camhs, request=request, accept=True, response=REPLY)
        task_create(
            actor=team.lead,
            person=team.child,
            assignee=team.nurse,
            text=task_text,
            due_date=timezone.localdate() + timedelta(days=7),
        )
        starts = timezone.now().replace(microsecond=0) + timedelta(days=5)
        meeting = meeting_schedule(
            organiser=team.lead,
            person=team.child,
            title=f"Core group for {team.child.given_name}",
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            place="Hove Town Hall, room 2",
            invitee_ids=[team.nurse.pk],
        )
        return LooseEnds(
            base_url="",
            child=team.child,
            lead=_persona(team.lead, host, team.schema),
            nurse=_persona(team.nurse, host, team.schema),
            nurse_name=team.nurse.full_name,
            task_text=task_text,
            meeting_id=meeting.pk,
            emails=[u.email for u in (team.lead, team.nurse, team.gp, team.camhs)],
        )


def _forget(world: World, live: LooseEnds) -> None:
    """Remove the committed request, notifications, task, meeting and emails, which later
    tests counting such rows in Brighton must not find (the audit events stay: append-only)."""
    with schema_context(world.brighton.schema_name):
        child = live.child.pk
        ContactRequest.objects.filter(person_id=child).delete()
        Notification.objects.filter(person_id=child).delete()
        Task.objects.filter(person_id=child).delete()
        Meeting.objects.filter(person_id=child).delete()
        EmailOutbox.objects.filter(to_email__in=live.emails).delete()


@pytest.fixture
def loose_ends(world: World, db: None) -> Iterator[LooseEnds]:
    host = world.brighton.get_primary_domain().domain
    live: LooseEnds = committed(lambda: _make(world, host))  # type: ignore[assignment]
    try:
        with live_server(host) as base_url:
            live.base_url = base_url
            yield live
    finally:
        committed(lambda: _forget(world, live))


def test_what_the_nurse_and_the_lead_see_of_replies_tasks_calendars_and_councils(
    loose_ends, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    live = loose_ends
    with chromium() as browser:
        nurse = browser.new_context().new_page()
        sign_in_page(nurse, live.base_url, live.nurse)
        nurse.goto(f"{live.base_url}/people/{live.child.pk}/")
        mine = nurse.locator("section", has=nurse.get_by_role("heading", name="Your requests"))
        expect(mine).to_contain_text("Accepted")
        expect(mine.get_by_test_id("contact-reply")).to_contain_text(REPLY)
        nurse.goto(f"{live.base_url}/my/notifications/")
        expect(nurse.get_by_text(REPLY, exact=False)).to_be_visible()

        lead = browser.new_context(accept_downloads=True).new_page()
        sign_in_page(lead, live.base_url, live.lead)
        lead.goto(f"{live.base_url}/tasks/")
        row = lead.locator("#tasks-i-set tr", has_text=live.task_text)
        expect(row).to_contain_text(live.nurse_name)
        expect(row).to_contain_text("Open")

        lead.goto(f"{live.base_url}/meetings/{live.meeting_id}/")
        expect(lead.get_by_role("link", name="Add to calendar")).to_be_visible()
        with lead.expect_download() as download:
            lead.get_by_role("link", name="Download the invitation (.ics file)").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        text = saved.read_text()
        calendar = icalendar.Calendar.from_ical(text)
        assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/London"]
        (event,) = calendar.walk("VEVENT")
        assert str(event["SUMMARY"]) == "Team around the child meeting"
        for name in ("Ottoline", "Quarrington"):
            assert name.lower() not in text.replace("\r\n ", "").lower()

        lead.locator("#navigation").get_by_role("link", name="Other councils").click()
        expect(lead.get_by_role("heading", level=1, name="Other councils")).to_be_visible()
