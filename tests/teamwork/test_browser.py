"""In a real browser (Playwright driving Debian's Chromium against a live server on
127.0.0.1): a lead professional sets a task for the school nurse, who finds it in "My
tasks" and marks it done; the lead invites the team to a meeting; the timeline shows both.

The server runs in a thread with committed data (pytest-django's `live_server` would flush
the session's councils); everything is made under unique names on a connection of its own.
`db` is requested only so pytest-django creates the test database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import Person
from tests.browser import chromium, committed, live_server, sign_in_page
from tests.personas import Persona, World
from tests.teamwork.team import build_team

pytestmark = pytest.mark.browser


@dataclass
class LiveTeam:
    base_url: str
    child: Person
    lead: Persona
    nurse: Persona
    nurse_name: str


def _persona(user: User, host: str, schema: str) -> Persona:
    from tests.personas import PASSWORD

    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return Persona(email=user.email, schema_name=schema, host=host, device_key=device.key)


def _make(world: World, host: str) -> LiveTeam:
    team = build_team(world.brighton.schema_name)
    with schema_context(team.schema):
        return LiveTeam(
            base_url="",
            child=team.child,
            lead=_persona(team.lead, host, team.schema),
            nurse=_persona(team.nurse, host, team.schema),
            nurse_name=team.nurse.full_name,
        )


@pytest.fixture
def live_team(world: World, db: None) -> Iterator[LiveTeam]:
    host = world.brighton.get_primary_domain().domain
    live: LiveTeam = committed(lambda: _make(world, host))  # type: ignore[assignment]
    with live_server(host) as base_url:
        live.base_url = base_url
        yield live


def _sign_in(page, live: LiveTeam, persona: Persona) -> None:  # type: ignore[no-untyped-def]
    sign_in_page(page, live.base_url, persona)


def test_a_task_goes_to_a_colleague_and_a_meeting_to_the_team(live_team) -> None:
    """Assign, see it in My tasks, mark it done, invite the team; the timeline shows both."""
    from playwright.sync_api import expect

    live = live_team
    task_text = f"Share the attendance record {uuid.uuid4().hex[:4]}"
    due = timezone.localdate() + timedelta(days=7)
    meeting_day = timezone.localdate() + timedelta(days=10)
    # Through tests/browser.py, so a page that violates the Content-Security-Policy fails.
    with chromium() as browser:
        lead = browser.new_context().new_page()
        _sign_in(lead, live, live.lead)
        lead.goto(f"{live.base_url}/people/{live.child.pk}/tasks/new/")
        expect(lead.get_by_text("do not write case notes here")).to_be_visible()
        lead.get_by_label("What needs doing").fill(task_text)
        lead.get_by_label("Who will do it").select_option(
            label=next(
                o
                for o in lead.locator("#id_assignee option").all_inner_texts()
                if live.nurse_name in o
            )
        )
        due_date = lead.get_by_role("group", name="Due date")
        due_date.get_by_label("Day").fill(str(due.day))
        due_date.get_by_label("Month").fill(str(due.month))
        due_date.get_by_label("Year").fill(str(due.year))
        lead.get_by_role("button", name="Set the task").click()
        expect(lead.get_by_text(f"Task set for {live.nurse_name}")).to_be_visible()

        nurse = browser.new_context().new_page()
        _sign_in(nurse, live, live.nurse)
        nurse.goto(f"{live.base_url}/tasks/")
        row = nurse.locator("#my-tasks tr", has_text=task_text)
        expect(row).to_be_visible()
        row.get_by_role("button", name="Mark done").click()
        expect(nurse.locator("#closed-tasks")).to_contain_text(task_text)
        expect(nurse.locator("#my-tasks tr", has_text=task_text)).to_have_count(0)

        lead.goto(f"{live.base_url}/people/{live.child.pk}/meetings/new/")
        lead.get_by_label("Title").fill("Core group")
        meeting_date = lead.get_by_role("group", name="Date of the meeting")
        meeting_date.get_by_label("Day").fill(str(meeting_day.day))
        meeting_date.get_by_label("Month").fill(str(meeting_day.month))
        meeting_date.get_by_label("Year").fill(str(meeting_day.year))
        lead.get_by_label("Starts at").fill("10:00")
        lead.get_by_label("Ends at").fill("11:00")
        lead.get_by_label("Place (optional if there is a link)").fill("Hove Town Hall, room 2")
        lead.get_by_label("The whole team").check()
        lead.get_by_role("button", name="Send the invitations").click()
        expect(lead.get_by_role("heading", name="Core group")).to_be_visible()
        expect(lead.get_by_role("cell", name=live.nurse_name)).to_be_visible()

        lead.goto(f"{live.base_url}/people/{live.child.pk}/timeline/")
        timeline = lead.locator("#timeline")
        expect(timeline).to_contain_text(f"set a task for {live.nurse_name}")
        expect(timeline).to_contain_text(f"marked the task “{task_text}” done")
        expect(timeline).to_contain_text("set a meeting, Core group")
        lead.get_by_label("Meetings").check()
        lead.get_by_role("button", name="Filter").click()
        expect(lead.locator("#timeline")).not_to_contain_text(task_text)
        expect(lead.locator("#timeline")).to_contain_text("Core group")
