"""Adding a person in a real browser at 320 pixels wide: a school nurse's search finds no
one, she follows "Add this person" (what she searched for carried over), is asked "Is it one
of these?" about a child with the same surname and date of birth, adds a new record, and
records her involvement from the confirmation. Chromium via Playwright, a live server and
committed data removed afterwards (as in test_browser.py; audit events stay, append-only)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import (
    Involvement,
    InvolvementRole,
    Notification,
    Organisation,
    Person,
    Practitioner,
)
from core.services import organisation_create, person_create, practitioner_profile_set, role_create
from tests.browser import chromium, committed, live_server, sign_in_page
from tests.personas import PASSWORD, Persona, World

pytestmark = pytest.mark.browser

DOB = date(2017, 8, 21)
SCREENSHOT = Path("/tmp/pw-add-person-matches.png")


@dataclass
class Live:
    base_url: str
    nurse: Persona
    surname: str
    existing_name: str
    role: str
    tag: str
    user_id: int
    organisation_id: int
    role_id: int


def _make(world: World, host: str, tag: str) -> Live:
    with schema_context(world.brighton.schema_name):
        school = organisation_create(name=f"Varndean School {tag}", agency_type="school")
        role = role_create(name=f"School nurse {tag}")
        email = f"nurse-add-{tag}@brighton.test"
        user = User.objects.create_user(email, password=PASSWORD, full_name=f"Nadia Nurse {tag}")
        device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
        practitioner_profile_set(user=user, organisation=school, job_title="School nurse")
        surname = f"Tremayne{tag}"
        existing = person_create(
            actor=None, given_name="Ava", family_name=surname, date_of_birth=DOB
        )
    return Live(
        base_url="",
        nurse=Persona(
            email=email, schema_name=world.brighton.schema_name, host=host, device_key=device.key
        ),
        surname=surname,
        existing_name=existing.full_name,
        role=role.name,
        tag=tag,
        user_id=user.pk,
        organisation_id=school.pk,
        role_id=role.pk,
    )


def _remove(world: World, live: Live) -> None:
    with schema_context(world.brighton.schema_name):
        people = Person.objects.filter(family_name=live.surname)
        Notification.objects.filter(person__in=people).delete()
        Notification.objects.filter(recipient_id=live.user_id).delete()
        Involvement.objects.filter(person__in=people).delete()
        people.delete()
        Practitioner.objects.filter(user_id=live.user_id).delete()
        TOTPDevice.objects.filter(user_id=live.user_id).delete()
        User.objects.filter(pk=live.user_id).delete()
        Organisation.objects.filter(pk=live.organisation_id).delete()
        InvolvementRole.objects.filter(pk=live.role_id).delete()


@pytest.fixture
def live(world: World, db: None) -> Iterator[Live]:
    host = world.brighton.get_primary_domain().domain
    made: Live = committed(lambda: _make(world, host, secrets.token_hex(3)))  # type: ignore[assignment]
    try:
        with live_server(host) as base_url:
            made.base_url = base_url
            yield made
    finally:
        committed(lambda: _remove(world, made))


def _fits(page) -> bool:  # type: ignore[no-untyped-def]
    """Nothing wider than the screen: no sideways scrolling at 320 pixels."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_a_practitioner_adds_a_child_after_the_duplicate_step(live, world) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 320, "height": 640})
        page = context.new_page()
        sign_in_page(page, live.base_url, live.nurse)

        # Her search (Eva, not Ava) finds no one; she adds the child she searched for.
        page.goto(f"{live.base_url}/search/")
        page.get_by_label("Surname").fill(live.surname)
        page.get_by_label("Day").fill(str(DOB.day))
        page.get_by_label("Month").fill(str(DOB.month))
        page.get_by_label("Year").fill(str(DOB.year))
        page.get_by_label("First name").fill("Eva")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.get_by_role("heading", name="0 people found")).to_be_visible()
        page.get_by_role("link", name="Add this person").click()

        expect(page.get_by_role("heading", name="Add a person")).to_be_visible()
        expect(page.get_by_label("Surname")).to_have_value(live.surname)
        expect(page.get_by_label("First name")).to_have_value("Eva")
        expect(page.get_by_label("Year")).to_have_value(str(DOB.year))
        assert _fits(page)
        page.get_by_label("Female").check()
        page.get_by_label("Postcode (optional)").fill("bn1 6ga")
        page.get_by_role("button", name="Continue").click()

        # The child with the same surname and date of birth is offered first.
        expect(page.get_by_role("heading", name="Is it one of these?")).to_be_visible()
        expect(page.get_by_role("link", name=live.existing_name)).to_be_visible()
        assert _fits(page)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.get_by_role("button", name="No, add a new record").click()

        # Added; she records her involvement from the confirmation.
        expect(page.get_by_role("heading", name="Record added")).to_be_visible()
        expect(page.locator(".govuk-panel__body")).to_have_text(f"Eva {live.surname}")
        page.get_by_role("link", name="Add my involvement").click()
        page.get_by_label("Role").select_option(label=live.role)
        page.get_by_role("button", name="Add involvement").click()
        expect(
            page.get_by_text(f"You are now on the team around Eva {live.surname}")
        ).to_be_visible()
        context.close()

    def recorded() -> tuple[int, str, bool]:
        with schema_context(world.brighton.schema_name):
            eva = Person.objects.get(family_name=live.surname, given_name="Eva")
            on_team = Involvement.objects.filter(
                person=eva, practitioner__user_id=live.user_id, end_date__isnull=True
            ).exists()
            return Person.objects.filter(family_name=live.surname).count(), eva.postcode, on_team

    assert committed(recorded) == (2, "BN1 6GA", True)
