"""The issue's "done when", in a real browser: Playwright drives Debian's Chromium against a
live Patchwork server. A practitioner signs in (password and authenticator code), finds a
child, states why, sees the network picture and the list, and adds their involvement; the
child's lead professional then sees them on the team. Neither sees which sensitive service
is involved: only the brokered notice. The sensitive service itself sees its own entry.

The server runs in a thread against the test database with *committed* data (pytest-django's
`live_server` flushes tables, which would destroy the session's councils), so everything is
created under unique names, in a thread of its own (outside the test's transaction, which
only makes pytest-django create the test database), and removed afterwards. The audit events
stay: they are append-only by design. Playwright's sync API keeps an event loop in the test's
thread, so the test itself never touches the database while the browser runs."""

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
    ContactRequest,
    Involvement,
    InvolvementRole,
    Notification,
    Organisation,
    Person,
    Practitioner,
    RecordOpening,
)
from core.services import (
    involvement_add,
    organisation_create,
    person_create,
    practitioner_profile_set,
    role_create,
)
from tests.browser import chromium, committed, live_server, sign_in_page
from tests.factories import valid_nhs_number
from tests.personas import PASSWORD, Persona, World

SCREENSHOT = Path("/tmp/pw-person.png")

pytestmark = pytest.mark.browser


@dataclass
class LiveCouncil:
    base_url: str
    child: Person
    child_dob: date
    newcomer: Persona  # a school nurse outside the team, about to start work
    lead: Persona  # the child's child-protection social worker and lead professional
    camhs: Persona  # a practitioner of the sensitive service involved with the child
    camhs_name: str
    school_role: str
    newcomer_name: str
    lead_name: str


def _persona(world: World, host: str, email: str, name: str) -> tuple[User, Persona]:
    user = User.objects.create_user(email, password=PASSWORD, full_name=name)
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return user, Persona(
        email=email, schema_name=world.brighton.schema_name, host=host, device_key=device.key
    )


@dataclass
class _Made:
    users: list[User]
    organisations: list[Organisation]
    roles: list[InvolvementRole]
    live: LiveCouncil


def _make(world: World, host: str, tag: str) -> _Made:
    with schema_context(world.brighton.schema_name):
        social_care = organisation_create(
            name=f"Brighton Children's Services {tag}", agency_type="social_care"
        )
        school = organisation_create(name=f"Patcham High School {tag}", agency_type="school")
        camhs = organisation_create(name=f"Sussex CAMHS {tag}", agency_type="mental_health")
        cp_role = role_create(name=f"Child protection social worker {tag}", child_protection=True)
        nurse_role = role_create(name=f"School nurse {tag}")
        camhs_role = role_create(name=f"CAMHS clinician {tag}")
        lead_user, lead = _persona(world, host, f"lead-{tag}@brighton.test", f"Lena Lead {tag}")
        nurse_user, newcomer = _persona(
            world, host, f"nurse-{tag}@brighton.test", f"Nell Nurse {tag}"
        )
        camhs_user, camhs_persona = _persona(
            world, host, f"camhs-{tag}@brighton.test", f"Cal Camhs {tag}"
        )
        practitioner_profile_set(
            user=lead_user,
            organisation=social_care,
            job_title="Social worker",
            work_phone="01273 000001",
            child_protection=True,
        )
        practitioner_profile_set(
            user=nurse_user,
            organisation=school,
            job_title="School nurse",
            work_phone="01273 000002",
        )
        practitioner_profile_set(
            user=camhs_user,
            organisation=camhs,
            job_title="CAMHS clinician",
            work_phone="01273 000003",
        )
        dob = date(2014, 6, 9)
        child = person_create(
            actor=None,
            given_name="Maisie",
            family_name=f"Okafor{tag}",
            date_of_birth=dob,
            sex=Person.Sex.FEMALE,
            nhs_number=valid_nhs_number(),
            postcode="BN1 8AA",
        )
        involvement_add(
            actor=lead_user,
            person=child,
            practitioner=lead_user.practitioner,
            role=cp_role,
            lead_professional=True,
            last_contact_date=date.today(),
        )
        involvement_add(
            actor=camhs_user,
            person=child,
            practitioner=camhs_user.practitioner,
            role=camhs_role,
        )
    live = LiveCouncil(
        base_url="",
        child=child,
        child_dob=dob,
        newcomer=newcomer,
        lead=lead,
        camhs=camhs_persona,
        camhs_name=camhs.name,
        school_role=nurse_role.name,
        newcomer_name=nurse_user.full_name,
        lead_name=lead_user.full_name,
    )
    return _Made(
        users=[lead_user, nurse_user, camhs_user],
        organisations=[social_care, school, camhs],
        roles=[cp_role, nurse_role, camhs_role],
        live=live,
    )


def _remove(world: World, made: _Made) -> None:
    """Everything but the audit events, which are append-only."""
    child, users = made.live.child, made.users
    with schema_context(world.brighton.schema_name):
        ContactRequest.objects.filter(person=child).delete()
        Notification.objects.filter(recipient__in=users).delete()
        Notification.objects.filter(person=child).delete()
        RecordOpening.objects.filter(person=child).delete()
        Involvement.objects.filter(person=child).delete()
        Person.objects.filter(pk=child.pk).delete()
        Practitioner.objects.filter(user__in=users).delete()
        TOTPDevice.objects.filter(user__in=users).delete()
        User.objects.filter(pk__in=[u.pk for u in users]).delete()
        Organisation.objects.filter(pk__in=[o.pk for o in made.organisations]).delete()
        InvolvementRole.objects.filter(pk__in=[r.pk for r in made.roles]).delete()


@pytest.fixture
def live_council(world: World, db: None) -> Iterator[LiveCouncil]:
    """A live server on 127.0.0.1 (a free port) for Brighton, with a child and their team.
    `db` is requested only so that pytest-django creates the test database."""
    host = world.brighton.get_primary_domain().domain
    made: _Made = committed(lambda: _make(world, host, secrets.token_hex(3)))  # type: ignore[assignment]
    try:
        with live_server(host) as base_url:
            made.live.base_url = base_url
            yield made.live
    finally:
        committed(lambda: _remove(world, made))


def _sign_in(page, live: LiveCouncil, persona: Persona) -> None:  # type: ignore[no-untyped-def]
    sign_in_page(page, live.base_url, persona)


def test_a_practitioner_finds_a_child_joins_the_team_and_the_lead_sees_it(live_council) -> None:
    """Search, the picture and the list, adding an involvement, and what a colleague sees."""
    live = live_council
    from playwright.sync_api import expect

    with chromium() as browser:
        browser.new_context().close()  # fail fast on a broken browser, before any timeouts
        child = live.child

        # A school nurse outside the team finds the child by surname and date of birth.
        newcomer = browser.new_context(viewport={"width": 1100, "height": 900})
        page = newcomer.new_page()
        _sign_in(page, live, live.newcomer)
        page.get_by_role("link", name="Search", exact=True).click()
        page.get_by_label("Surname").fill(child.family_name.lower())
        page.get_by_label("Day").fill(str(live.child_dob.day))
        page.get_by_label("Month").fill(str(live.child_dob.month))
        page.get_by_label("Year").fill(str(live.child_dob.year))
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.get_by_role("heading", name="1 person found")).to_be_visible()
        page.get_by_role("link", name=child.full_name).click()

        # Outside the team: state a reason first, and the network is not shown until then.
        expect(
            page.get_by_role("heading", name="Tell us why you need to see this record")
        ).to_be_visible()
        assert page.locator("svg.pw-network").count() == 0
        page.get_by_label("About to start work with this person").check()
        page.get_by_label("Say in a sentence what this is about").fill(
            "I am the new school nurse at Patcham High and will see Maisie weekly."
        )
        page.get_by_role("button", name="Open the record").click()

        # The picture and the list, with the lead marked in words and the sensitive service
        # shown only as the brokered notice.
        picture = page.locator("svg.pw-network")
        expect(picture).to_be_visible()
        expect(picture).to_contain_text(live.lead_name)
        expect(picture).to_contain_text("LEAD PROFESSIONAL")
        expect(picture).to_contain_text("A sensitive service")
        team_list = page.locator(".pw-team-list")
        expect(team_list.get_by_role("heading", name=live.lead_name)).to_be_visible()
        expect(team_list).to_contain_text("A sensitive service is involved")
        expect(team_list.get_by_role("link", name="Request contact")).to_be_visible()
        assert live.camhs_name not in page.content()
        assert "Cal Camhs" not in page.content()

        # She adds her own involvement.
        page.get_by_role("link", name="Add my involvement").click()
        page.get_by_label("Role").select_option(label=live.school_role)
        page.get_by_role("button", name="Add involvement").click()
        expect(
            page.get_by_text(f"You are now on the team around {child.full_name}")
        ).to_be_visible()
        expect(
            page.locator(".pw-team-list").get_by_role("heading", name=live.newcomer_name)
        ).to_be_visible()
        expect(page.locator("svg.pw-network")).to_contain_text(live.newcomer_name)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        # It prints cleanly: no header, navigation or buttons; the picture and list stay.
        page.emulate_media(media="print")
        expect(page.locator("header.govuk-header")).to_be_hidden()
        expect(page.get_by_role("link", name="Add my involvement")).to_be_hidden()
        expect(page.locator("svg.pw-network")).to_be_visible()
        expect(page.locator(".pw-team-list")).to_be_visible()
        page.emulate_media(media="screen")

        # She asks the sensitive service to get in touch, without learning who it is.
        page.get_by_role("link", name="Request contact").click()
        page.get_by_label("What would you like to discuss?").fill(
            "Maisie mentioned appointments; I would like to coordinate school support."
        )
        page.get_by_role("button", name="Send request").click()
        expect(page.get_by_text("Your request is sent")).to_be_visible()
        newcomer.close()

        # The lead professional signs in and sees the newcomer on the team, and who looked.
        lead = browser.new_context()
        page = lead.new_page()
        _sign_in(page, live, live.lead)
        page.goto(f"{live.base_url}/people/{child.pk}/")
        team_list = page.locator(".pw-team-list")
        expect(team_list.get_by_role("heading", name=live.newcomer_name)).to_be_visible()
        expect(team_list).to_contain_text(live.school_role)
        expect(page.locator("svg.pw-network")).to_contain_text(live.newcomer_name)
        expect(team_list).to_contain_text("A sensitive service is involved")
        assert live.camhs_name not in page.content()
        expect(page.get_by_role("heading", name="Who has viewed this record")).to_be_visible()
        expect(
            page.get_by_text("Opened the record, stating a reason: About to start work")
        ).to_be_visible()
        lead.close()

        # The sensitive service itself sees its own entry in full, and the request.
        camhs = browser.new_context()
        page = camhs.new_page()
        _sign_in(page, live, live.camhs)
        page.goto(f"{live.base_url}/people/{child.pk}/")
        expect(page.locator(".pw-team-list")).to_contain_text(live.camhs_name)
        expect(page.locator(".pw-team-list")).not_to_contain_text("A sensitive service is involved")
        page.goto(f"{live.base_url}/my/contact-requests/")
        expect(page.get_by_role("cell", name=live.newcomer_name, exact=True)).to_be_visible()
        camhs.close()
